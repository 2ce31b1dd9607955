"""A variant from outside the package, end to end: installed as an entry point of ``dropsearch.variants``, it is
listed by ``GET /v1/catalog`` over real HTTP, searched by a real (local Ray) search, and its best pattern, downloaded
as JSON, is applied with ``dropsearch.apply`` to a fresh model that then trains a step.

The plugin (:mod:`tests.regularizers.variant_plugin`) is written into a temporary directory put on ``sys.path`` and on
``PYTHONPATH`` before Ray starts, so Ray's worker processes find it the way they find any installed package.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import torch

import dropsearch
from dropsearch.regularizers.registry import refresh_variants, unregister_variant, variant_names
from tests._plugins import on_path_for_ray
from tests.regularizers.variant_plugin import NAME, write_plugin

pytestmark = pytest.mark.slow


@pytest.fixture
def installed_plugin(tmp_path: Path):
    """The plugin on sys.path and PYTHONPATH (for Ray workers); every trace of it is removed afterwards."""
    try:
        with on_path_for_ray(write_plugin(tmp_path / "site-packages")) as root:
            refresh_variants()
            yield root
    finally:
        if NAME in variant_names():
            unregister_variant(NAME)
        refresh_variants()
        assert NAME not in variant_names()


def _catalog_over_http(tmp_path: Path) -> dict:
    from dropsearch.api.app import create_app
    from dropsearch.api.threaded_server import serve_in_thread
    from dropsearch.config import Settings
    from dropsearch.store.api_keys import create_api_key
    from dropsearch.store.db import make_engine, session_scope

    url = f"sqlite:///{tmp_path / 'store.db'}"
    app = create_app(Settings(database_url=url, data_dir=tmp_path), migrate=True)
    with serve_in_thread(app) as base:
        engine = make_engine(url)
        with session_scope(engine) as session:
            key, _ = create_api_key(session=session, owner="alice", name="plugin-test")
        engine.dispose()
        assert httpx.get(f"{base}/v1/catalog", timeout=30).status_code == 401
        response = httpx.get(f"{base}/v1/catalog", headers={"Authorization": f"Bearer {key}"}, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def test_an_installed_variant_is_listed_searched_downloaded_and_applied(installed_plugin, tmp_path):
    # 1. the catalog lists it, with its description and the decisions it adds
    catalog = _catalog_over_http(tmp_path)
    entry = {v["name"]: v for v in catalog["variants"]}[NAME]
    assert entry["description"].startswith("Test-only plugin")
    assert entry["site_kinds"] == ["conv"] and entry["decisions"] == {f"{NAME}/shared": [True, False]}
    assert entry["site_decisions"]["conv"]["axis"] == ["rows", "cols"]
    assert NAME in {m["name"]: m for m in catalog["models"]}["convnet"]["variants"]

    # 2. a real search over a space restricted to it (local Ray; workers import the plugin from PYTHONPATH)
    from dropsearch.runner.engine import run_search
    from dropsearch.search.spec import SearchSpec

    spec = SearchSpec.model_validate(
        {
            "model": {"name": "convnet", "params": {"widths": [8, 16]}},
            "dataset": {"name": "digits"},
            "space": {"variants": [NAME], "rates": [0.1, 0.3]},
            "controller": {"name": "random", "batch_size": 3},
            "budget": {"trials": 3, "epochs_per_trial": 1, "max_concurrent": 1, "early_stopping": "none"},
            "validation": {"enabled": False},  # this test counts the search trials only
        }
    )
    result = run_search(spec, num_cpus=2)
    assert result.status == "succeeded"
    assert sorted(t.index for t in result.trials if t.status == "succeeded") == [0, 1, 2]
    assert result.best_pattern is not None and result.best_reward is not None

    # 3. the best pattern, downloaded as JSON, goes into a fresh model that trains a step
    downloaded = json.loads(json.dumps(result.best_pattern))
    assert downloaded["variant"] == NAME and set(downloaded["params"]) == {"shared"}
    assert [s["site"] for s in downloaded["sites"]] == ["features.drop1", "features.drop2"]
    assert all(s["shape"]["axis"] in ("rows", "cols") and s["rate"] in (0.1, 0.3) for s in downloaded["sites"])
    from dropsearch.workers.datasets import load_dataset
    from dropsearch.workers.models import build_model

    bundle = load_dataset("digits", params={}, seed=0)
    model = build_model("convnet", params={"widths": [8, 16]}, in_shape=bundle.in_shape, num_classes=10)
    applied = dropsearch.apply(model, downloaded)
    assert {type(m).__name__ for m in applied.modules.values()} == {"LineDropout"}
    x, y = bundle.x_train[:16].float(), bundle.y_train[:16]
    before = model.head.fc.weight.detach().clone()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    loss = applied.training_step(x, y, torch.nn.functional.cross_entropy, optimizer=optimizer)
    assert torch.isfinite(loss) and not torch.equal(before, model.head.fc.weight)

    # 4. the mask picture draws it with the plugin's own preview
    from dropsearch.api.plots import _site_mask, mask_png

    mask, caption = _site_mask(NAME, downloaded["sites"][0], seed=0)
    assert caption == downloaded["sites"][0]["shape"]["axis"] and mask.shape == (32, 32)
    assert mask_png(downloaded).startswith(b"\x89PNG")
