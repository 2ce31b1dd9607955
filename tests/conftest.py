"""Suite-wide fixtures.

Ray 2.60 can leave a dead session's ``ray::DashboardAgent`` and ``ray::RuntimeEnvAgent`` running under PID 1
after ``ray.shutdown()`` or a killed driver; on a 2-core machine they steal CPU from the next tests. After each
test module, such orphans (parent PID 1) are stopped.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

ORPHAN_NAMES = ("ray::DashboardAgent", "ray::RuntimeEnvAgent")


def _orphaned_ray_agents() -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid == 1 and cmdline.startswith(ORPHAN_NAMES):
            found.append(int(proc.name))
    return found


@pytest.fixture(scope="module", autouse=True)
def _stop_orphaned_ray_agents() -> Iterator[None]:
    yield
    for pid in _orphaned_ray_agents():
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


@pytest.fixture
def fresh_ray() -> Iterator[None]:
    """No Ray before or after the test (one the test starts, or its runner starts, is shut down afterwards)."""
    import ray

    ray.shutdown()
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    """A fresh 2-CPU local Ray (no dashboard) for one test module; use with ``pytest.mark.usefixtures``."""
    import ray

    ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()
