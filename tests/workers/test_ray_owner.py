"""An embedded Ray started from a thread that ends keeps running (its head processes live with the process)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from dropsearch.workers.ray_owner import init_ray, owner_thread

SCRIPT = textwrap.dedent(
    """
    import os, threading, time
    import psutil, ray
    from dropsearch.workers.setup import ensure_ray

    starter = threading.Thread(target=lambda: ensure_ray(num_cpus=1), name="short-lived")
    starter.start()
    starter.join()
    time.sleep(3)  # a parent-death signal would have killed the GCS by now
    names = [p.name() for p in psutil.Process().children(recursive=True)]
    print("gcs alive:", any("gcs_server" in n for n in names), flush=True)

    @ray.remote
    def answer():
        return 42

    print("answer:", ray.get(answer.remote(), timeout=60), flush=True)
    ray.shutdown()
    """
)


def test_ray_started_from_a_thread_that_ended_still_answers() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"},
    )
    assert "gcs alive: True" in proc.stdout, proc.stdout + proc.stderr[-3000:]
    assert "answer: 42" in proc.stdout, proc.stdout + proc.stderr[-3000:]


def test_an_init_error_is_raised_in_the_caller_and_the_owner_survives_it() -> None:
    import ray

    if ray.is_initialized():
        pytest.skip("Ray is already running in this test process")
    with pytest.raises(RuntimeError, match="not_an_argument_of_ray_init"):
        init_ray(not_an_argument_of_ray_init=1)
    assert owner_thread().is_alive() and owner_thread().daemon
    assert not ray.is_initialized()
