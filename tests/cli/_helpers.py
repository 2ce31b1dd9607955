"""Helpers of the tests that run ``dropsearch`` as a real subprocess (``serve`` and the client commands)."""

from __future__ import annotations

import os
import sys

#: ``dropsearch`` as a subprocess of this interpreter.
CLI = [sys.executable, "-m", "dropsearch.cli"]


def cli_env(ray_num_cpus: int, **extra: str) -> dict[str, str]:
    """This process's environment without its DROPSEARCH_* settings: one torch thread, ``ray_num_cpus`` Ray CPUs,
    120 columns, then ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DROPSEARCH_")}
    env.update(
        OMP_NUM_THREADS="1", RAY_USAGE_STATS_ENABLED="0", DROPSEARCH_RAY_NUM_CPUS=str(ray_num_cpus), COLUMNS="120"
    )
    env.update(extra)
    return env
