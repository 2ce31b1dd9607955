"""``dropsearch serve`` as a real subprocess: API + runner + local Ray + SQLite, driven by the CLI itself.

Slow (Ray starts in each test): run with ``pytest -m slow tests/cli``.
"""

from __future__ import annotations

import json
import signal
import stat
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from dropsearch.regularizers.pattern import Pattern
from dropsearch.store.db import make_engine, session_scope
from dropsearch.store.searches import load_search
from tests.api.server import free_port, wait_healthy
from tests.cli._helpers import CLI, cli_env

pytestmark = pytest.mark.slow

TINY = {
    "name": "e2e-tiny",
    "model": {"name": "convnet", "params": {"widths": [8, 16]}},
    "dataset": {"name": "digits"},
    "space": {"variants": ["bernoulli", "dropblock"]},
    "controller": {"name": "reinforce", "batch_size": 2},
    "budget": {"trials": 2, "epochs_per_trial": 1, "max_concurrent": 2, "early_stopping": "none"},
    "validation": {"enabled": False},  # this test counts the search trials only
}


def _run(*args: object, env: dict[str, str], timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *map(str, args)], env=env, capture_output=True, text=True, timeout=timeout)


def test_serve_demo_runs_the_demo_and_exits(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = cli_env(2, DROPSEARCH_DEMO_TRIALS="2", DROPSEARCH_DEMO_EPOCHS="1")
    args = ["serve", "--port", free_port(), "--data-dir", data, "--demo", "--exit-after-demo"]
    proc = _run(*args, env=env, timeout=400)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]

    key_path = data / "admin.key"
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    key = key_path.read_text().strip()
    assert key.startswith("ds_") and key not in proc.stdout + proc.stderr  # piped output: never the key...
    assert "admin API key" in proc.stdout and "admin.key" in proc.stdout  # ...only where its file is
    document = json.loads((data / "demo-best-pattern.json").read_text())
    pattern = Pattern.from_dict(document)
    assert pattern.to_dict()["variant"] == document["variant"]
    assert document["provenance"]["model"] == "convnet" and document["provenance"]["dataset"] == "digits"
    assert "demo-best-pattern.json" in proc.stdout and "succeeded" in proc.stdout

    import torch

    import dropsearch
    from dropsearch.workers.models.convnet import ConvNet

    torch.manual_seed(0)
    applied = dropsearch.apply(ConvNet(1, 10, (32, 64)), document)  # what the README tells users to do
    loss = applied.training_step(torch.rand(4, 1, 8, 8), torch.tensor([0, 1, 2, 3]), torch.nn.functional.cross_entropy)
    assert torch.isfinite(torch.as_tensor(loss)).all()

    # A restart reuses the stored key and does not print it again (no runner: this start needs no Ray).
    port = free_port()
    restarted = subprocess.Popen(
        [*CLI, "serve", "--port", str(port), "--data-dir", str(data), "--no-runner"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    wait_healthy(f"http://127.0.0.1:{port}", restarted, timeout=90)
    restarted.send_signal(signal.SIGINT)
    out, _ = restarted.communicate(timeout=60)
    assert restarted.returncode == 0 and "SIGINT: stopping" in out
    assert key not in out and "admin API key" not in out
    assert key_path.read_text().strip() == key


def test_serve_then_submit_watch_best_and_sigterm(tmp_path: Path) -> None:
    data, port = tmp_path / "data", free_port()
    url = f"http://127.0.0.1:{port}"
    env = cli_env(2, DROPSEARCH_DATA_DIR=str(data), DROPSEARCH_URL=url)
    log = (tmp_path / "serve.log").open("w")
    server = subprocess.Popen(
        [*CLI, "serve", "--port", str(port), "--no-dashboard"], env=env, stdout=log, stderr=subprocess.STDOUT, text=True
    )
    try:
        wait_healthy(url, server, timeout=90)
        docs = httpx.get(f"{url}/docs", timeout=10)
        assert docs.status_code == 200 and "text/html" in docs.headers["content-type"]

        spec = tmp_path / "spec.json"
        spec.write_text(json.dumps(TINY))
        submitted = _run("submit", spec, env=env)  # key from <data>/admin.key, URL from DROPSEARCH_URL
        assert submitted.returncode == 0, submitted.stderr
        search_id = submitted.stdout.strip()

        watched = _run("watch", search_id, env=env)
        assert watched.returncode == 0, watched.stdout[-3000:] + watched.stderr[-3000:]
        assert "2/2" in watched.stdout and "trial_finished" in watched.stdout

        target = tmp_path / "best.json"
        best = _run("best", search_id, "-o", target, env=env)
        assert best.returncode == 0, best.stderr
        document = json.loads(target.read_text())
        Pattern.from_dict(document)
        assert document["provenance"]["search_id"] == search_id and document["variant"] in ("bernoulli", "dropblock")

        # A longer search, stopped by SIGTERM while it runs: the runner releases its lease for a later resume.
        spec.write_text(json.dumps({**TINY, "budget": {**TINY["budget"], "trials": 8, "epochs_per_trial": 30}}))
        long_id = _run("submit", spec, env=env).stdout.strip()
        key = (data / "admin.key").read_text().strip()
        deadline = time.monotonic() + 120
        while (
            httpx.get(f"{url}/v1/searches/{long_id}/trials", headers={"Authorization": f"Bearer {key}"}).json()["count"]
            == 0
        ):
            assert time.monotonic() < deadline, "the long search never started a trial"
            time.sleep(0.5)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            code = server.wait(timeout=90)
        finally:
            if server.poll() is None:
                server.kill()
            log.close()
    output = (tmp_path / "serve.log").read_text()
    assert code == 0, output[-4000:]
    assert "SIGTERM: stopping" in output and "stopped" in output
    assert key not in output and f"http://127.0.0.1:{port}/docs" in output  # the URLs, never the key (not a TTY)

    engine = make_engine(f"sqlite:///{(data / 'dropsearch.db').resolve()}")
    try:
        with session_scope(engine, read_only=True) as session:
            record = load_search(session=session, search_id=long_id)
    finally:
        engine.dispose()
    assert record.status == "running" and record.lease_owner is None  # left to be resumed, lease released
