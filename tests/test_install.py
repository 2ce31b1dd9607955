"""Installing dropsearch into fresh virtual environments (no system site packages).

* The light install: the core wheel with torch alone gives ``dropsearch.apply`` and ``find_sites``; Ray, FastAPI
  and SQLAlchemy are not installed.
* The plugin route: the same wheel with ``[service]`` plus ``examples/dropsearch-plugin-example``; ``dropsearch
  serve`` from that environment lists the plugin's model and dataset in ``GET /v1/catalog``, refuses an unknown
  model with a 422 naming the installed ones, and runs a tiny search over them to ``succeeded``.

Slow (pip installs torch and the service dependencies from the configured package index, then Ray starts).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.api.server import free_port, wait_healthy

pytestmark = [pytest.mark.slow, pytest.mark.drill]

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "dropsearch-plugin-example"
TORCH = os.environ.get("DROPSEARCH_TORCH_VERSION", "2.13.0")

APPLY_PROBE = """
import importlib.util, json, torch, dropsearch
from torch import nn
net = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Dropout2d(0.1), nn.AdaptiveAvgPool2d(1),
                    nn.Flatten(), nn.Dropout(0.5), nn.Linear(8, 3))
sites = dropsearch.find_sites(net, torch.zeros(2, 1, 8, 8))
pattern = {"variant": "bernoulli", "sites": [{"site": s.name, "rate": 0.2} for s in sites]}
applied = dropsearch.apply(net, pattern, sites=sites)
opt = torch.optim.SGD(net.parameters(), lr=0.1)
x, y = torch.randn(12, 1, 8, 8), torch.arange(12) % 3
losses = [float(applied.training_step(x, y, nn.functional.cross_entropy, opt)) for _ in range(3)]
gsnr = dropsearch.apply(nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)), {"variant": "gsnr"})
gsnr.training_step(torch.randn(8, 4), torch.arange(8) % 2, nn.functional.cross_entropy)
print(json.dumps({"sites": [[s.name, s.kind] for s in sites], "installed": type(net[5]).__name__,
                  "losses": losses, "helper": type(gsnr.helper).__name__,
                  "absent": {m: importlib.util.find_spec(m) is None
                             for m in ("ray", "fastapi", "sqlalchemy", "pydantic", "uvicorn", "typer")}}))
"""


def _pip(python: Path, *args: str, timeout: float = 900) -> None:
    proc = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The dropsearch wheel, built from a copy of the sources (the working tree gets no build/ or egg-info)."""
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "dropsearch", src / "dropsearch", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    dist = tmp_path_factory.mktemp("dist")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(dist), str(src)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (built,) = dist.glob("dropsearch-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory, wheel: Path) -> Path:
    """A fresh environment (no system site packages) with torch and the core dropsearch wheel: its ``bin``."""
    root = tmp_path_factory.mktemp("venv") / "env"
    subprocess.run([sys.executable, "-m", "venv", str(root)], check=True, timeout=300)
    python = root / "bin" / "python"
    _pip(python, f"torch=={TORCH}")  # the way scripts/setup installs it (the CPU build)
    _pip(python, str(wheel))
    return root / "bin"


def test_the_light_install_applies_patterns_with_torch_alone(venv: Path) -> None:
    cfg = subprocess.run(
        [str(venv / "python"), "-c", "import sys; print(sys.prefix != sys.base_prefix)"], capture_output=True, text=True
    )
    assert cfg.stdout.strip() == "True"
    probe = subprocess.run([str(venv / "python"), "-c", APPLY_PROBE], capture_output=True, text=True, timeout=300)
    assert probe.returncode == 0, probe.stderr[-3000:]
    result = json.loads(probe.stdout.strip().splitlines()[-1])
    assert result["absent"] == {m: True for m in ("ray", "fastapi", "sqlalchemy", "pydantic", "uvicorn", "typer")}
    assert result["sites"] == [["2", "conv"], ["5", "features"]]
    assert result["installed"] == "BernoulliDropout" and result["helper"] == "GSNRDropout"
    assert all(loss > 0 for loss in result["losses"])


def test_a_plugin_model_and_dataset_are_served_and_searched(venv: Path, wheel: Path, tmp_path: Path) -> None:
    _pip(venv / "python", f"dropsearch[service] @ {wheel.as_uri()}")
    example = tmp_path / "example"
    shutil.copytree(EXAMPLE, example)
    _pip(venv / "python", "-e", str(example))  # what the README shows

    data, port = tmp_path / "data", free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DROPSEARCH_", "VIRTUAL_ENV", "PYTHON"))}
    env.update(OMP_NUM_THREADS="1", RAY_USAGE_STATS_ENABLED="0", DROPSEARCH_RAY_NUM_CPUS="2")
    env["PATH"] = f"{venv}{os.pathsep}{env.get('PATH', '')}"
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        server = subprocess.Popen(
            [str(venv / "dropsearch"), "serve", "--port", str(port), "--data-dir", str(data), "--no-dashboard"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )
    try:
        wait_healthy(url, server, timeout=180, poll_s=0.5, log=log)
        headers = {"Authorization": f"Bearer {(data / 'admin.key').read_text().strip()}"}
        catalog = httpx.get(f"{url}/v1/catalog", headers=headers, timeout=30).json()
        models = {m["name"]: m for m in catalog["models"]}
        datasets = {d["name"]: d for d in catalog["datasets"]}
        assert "example-cnn" in models and models["example-cnn"]["builtin"] is False
        assert "example-blobs" in datasets and datasets["example-blobs"]["builtin"] is False

        spec = {
            "name": "plugin-e2e",
            "model": {"name": "example-cnn", "params": {"width": 8}},
            "dataset": {"name": "example-blobs"},
            "space": {"variants": ["bernoulli"]},
            "controller": {"name": "reinforce", "batch_size": 2},
            "budget": {"trials": 2, "epochs_per_trial": 1, "max_concurrent": 2, "early_stopping": "none"},
            "validation": {"enabled": False},  # this test counts the search trials only
        }
        unknown = httpx.post(f"{url}/v1/searches", json={**spec, "model": {"name": "example-cnm"}}, headers=headers)
        assert unknown.status_code == 422, unknown.text
        assert "model.name" in unknown.text and "example-cnn" in unknown.text  # the installed names are listed

        created = httpx.post(f"{url}/v1/searches", json=spec, headers=headers, timeout=30)
        assert created.status_code == 201, created.text
        search_id = created.json()["id"]
        deadline, status = time.monotonic() + 420, "queued"
        while status not in ("succeeded", "failed", "cancelled"):
            assert time.monotonic() < deadline, f"search still {status}:\n" + log.read_text()[-4000:]
            time.sleep(1)
            status = httpx.get(f"{url}/v1/searches/{search_id}", headers=headers, timeout=30).json()["status"]
        assert status == "succeeded", log.read_text()[-4000:]
        trials = httpx.get(f"{url}/v1/searches/{search_id}/trials", headers=headers, timeout=30).json()
        assert trials["count"] == 2
        sites = {s["site"] for t in trials["data"] for s in t["pattern"]["sites"]}
        assert sites <= {"features.3", "features.7", "drop"} and sites  # the plugin model's found sites
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=120)
        finally:
            if server.poll() is None:
                server.kill()
