"""Start a separate local Ray head with ``ray start --head --block`` (token auth on) and stop it by its pid.

Why ``--block`` and not ``ray stop``: ``ray stop`` kills every Ray process of the user on the machine (other
tests' and colleagues' clusters too). A blocking ``ray start`` owns its processes: SIGTERM drains and stops
exactly them. Every port is picked free and the head gets its own ``--temp-dir``, so it never collides with an
in-process ``ray.init`` cluster.

Token auth (Ray >= 2.52): the head runs with ``RAY_AUTH_MODE=token`` and the default token (``RAY_AUTH_TOKEN``,
else ``RAY_AUTH_TOKEN_PATH``, else ``~/.ray/auth_token``, created by ``ray get-auth-token --generate`` when
missing). A driver that joins with an explicit address must be in token mode too: in a fresh process
``RAY_AUTH_MODE=token`` in the environment is enough (what docker-compose sets); a test process may have read
Ray's config already, so :func:`enable_driver_token_auth` does what ``ray.init()`` itself does for a local
cluster (set the variable and re-read the config).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

RAY = str(Path(sys.executable).with_name("ray"))
_PORT_FLAGS = (
    "dashboard-port",
    "ray-client-server-port",
    "dashboard-agent-listen-port",
    "dashboard-agent-grpc-port",
    "metrics-export-port",
    "runtime-env-agent-port",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def enable_driver_token_auth() -> None:
    from ray._private.authentication.authentication_token_setup import _enable_token_auth

    _enable_token_auth()


@contextmanager
def ray_head(num_cpus: int = 2, timeout: float = 120.0) -> Iterator[str]:
    """Yield ``"127.0.0.1:<port>"`` of a running head with ``num_cpus`` CPUs and no GPU; stop it afterwards."""
    env = dict(os.environ, RAY_AUTH_MODE="token", RAY_USAGE_STATS_ENABLED="0")
    subprocess.run([RAY, "get-auth-token", "--generate"], env=env, capture_output=True, check=True, timeout=60)
    port = free_port()
    temp_dir = tempfile.mkdtemp(prefix="dsray", dir="/tmp")  # short: Ray's unix socket paths must stay < 108 chars
    log_path = Path(temp_dir) / "ray-start.log"
    cmd = [RAY, "start", "--head", "--block", f"--port={port}", f"--num-cpus={num_cpus}", "--num-gpus=0"]
    cmd += ["--include-dashboard=false", f"--temp-dir={temp_dir}", "--disable-usage-stats"]
    cmd += [f"--{flag}={free_port()}" for flag in _PORT_FLAGS]
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        while "Ray runtime started" not in log_path.read_text():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"ray start failed (rc={proc.poll()}):\n{log_path.read_text()[-3000:]}")
            time.sleep(0.5)
        yield f"127.0.0.1:{port}"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the session we started, and nothing else
            proc.wait(timeout=30)
        shutil.rmtree(temp_dir, ignore_errors=True)
