"""Listing, reading, cancelling, trials, best-pattern download, plots, catalog, metrics and OpenAPI."""

from __future__ import annotations

import io
import json

import pytest

from tests.api import runner_sim
from tests.api.conftest import Api

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def submit(api: Api, name: str, trials: int = 4, key: str | None = None, mode: str = "max") -> str:
    spec = {
        "name": name,
        "model": {"name": "convnet"},
        "dataset": {"name": "digits"},
        "budget": {"trials": trials, "max_concurrent": 1},
        "validation": {"enabled": False},  # the simulated runner runs no validation stage
        "objective": {"metric": "val_accuracy", "mode": mode},
    }
    response = api.client.post("/v1/searches", json=spec, headers=api.auth(key))
    assert response.status_code == 201, response.text
    return response.json()["id"]


def test_list_is_newest_first_paginated_and_owner_scoped(api: Api) -> None:
    ids = [submit(api, f"s{i}") for i in range(5)]
    submit(api, "bobs", key=api.bob)
    page = api.client.get("/v1/searches", params={"limit": 2}, headers=api.auth()).json()
    assert page["count"] == 5 and [s["id"] for s in page["data"]] == ids[::-1][:2]
    page = api.client.get("/v1/searches", params={"limit": 2, "offset": 4}, headers=api.auth()).json()
    assert [s["id"] for s in page["data"]] == [ids[0]]
    full = api.client.get("/v1/searches", headers=api.auth()).json()
    assert [s["name"] for s in full["data"]] == ["s4", "s3", "s2", "s1", "s0"]
    for bad in ({"limit": 0}, {"limit": 201}, {"offset": -1}, {"status": "weird"}):
        response = api.client.get("/v1/searches", params=bad, headers=api.auth())
        assert response.status_code == 422 and next(iter(bad)) in response.json()["detail"]
    queued = api.client.get("/v1/searches", params={"status": "queued"}, headers=api.auth()).json()
    assert queued["count"] == 5


def test_unknown_query_parameters_are_refused_with_their_names(sqlite_api: Api) -> None:
    sid = submit(sqlite_api, "typo")
    for path, params in (
        ("/v1/searches", {"stauts": "running"}),
        ("/v1/searches", {"limit": 2, "pagesize": 3}),
        (f"/v1/searches/{sid}/trials", {"sort": "reward"}),
        (f"/v1/searches/{sid}", {"limit": 1}),
    ):
        response = sqlite_api.client.get(path, params=params, headers=sqlite_api.auth())
        unknown = next(name for name in params if name not in ("limit",) or path.endswith(sid))
        assert response.status_code == 422, (path, params, response.text)
        assert [e["loc"] for e in response.json()["errors"]] == [["query", unknown]]
        assert unknown in response.json()["detail"]
    listed = sqlite_api.client.get("/v1/searches", params={"status": "queued", "limit": 1}, headers=sqlite_api.auth())
    assert listed.status_code == 200 and listed.json()["count"] == 1
    assert sqlite_api.client.get("/healthz", params={"probe": 1}).status_code == 200


def test_cancel_queued_running_and_finished(api: Api) -> None:
    queued = submit(api, "q")
    body = api.client.post(f"/v1/searches/{queued}/cancel", headers=api.auth()).json()
    assert body["status"] == "cancelled" and body["cancel_requested"] is True

    running = submit(api, "r")
    runner_sim.claim(api.engine, running)
    body = api.client.post(f"/v1/searches/{running}/cancel", headers=api.auth()).json()
    assert body["status"] == "running" and body["cancel_requested"] is True

    for sid, status in ((queued, "cancelled"),):
        response = api.client.post(f"/v1/searches/{sid}/cancel", headers=api.auth())
        assert response.status_code == 409 and status in response.json()["detail"]
    runner_sim.finish(api.engine, running, "succeeded")
    response = api.client.post(f"/v1/searches/{running}/cancel", headers=api.auth())
    assert response.status_code == 409 and "already succeeded" in response.json()["detail"]


def test_progress_trials_and_best_download(api: Api) -> None:
    sid = submit(api, "digits convnet/ä", trials=4)
    assert api.client.get(f"/v1/searches/{sid}/best", headers=api.auth()).status_code == 404
    runner_sim.claim(api.engine, sid)
    rewards = [0.5, 0.9, 0.7]
    tids = [runner_sim.run_trial(api.engine, sid, i, r) for i, r in enumerate(rewards)]
    best = api.client.get(f"/v1/searches/{sid}/best", headers=api.auth())
    assert best.status_code == 200
    search = api.client.get(f"/v1/searches/{sid}", headers=api.auth()).json()
    assert search["progress"] == {"trials_done": 3, "trials_total": 4}
    assert search["best_reward"] == pytest.approx(0.9) and search["best_trial_id"] == tids[1]

    page = api.client.get(f"/v1/searches/{sid}/trials", params={"limit": 2}, headers=api.auth()).json()
    assert page["count"] == 3 and [t["index"] for t in page["data"]] == [0, 1]
    trial = page["data"][1]
    assert trial["id"] == tids[1] and trial["status"] == "succeeded" and trial["attempt"] == 1
    assert trial["tokens"] == [1, 1] and trial["node"] == "node-1" and trial["error"] is None
    assert trial["pattern"]["variant"] == "autodropout"
    assert [m["epoch"] for m in trial["metrics"]] == [0, 1]
    assert trial["metrics"][1]["val_accuracy"] == pytest.approx(0.9)
    assert trial["reward"] == pytest.approx(0.9) and trial["wall_s"] >= 0
    assert trial["started_at"] and trial["finished_at"]
    rest = api.client.get(f"/v1/searches/{sid}/trials", params={"offset": 2}, headers=api.auth()).json()
    assert [t["index"] for t in rest["data"]] == [2]

    document = best.json()
    assert document["format"] == "dropsearch.pattern/v1" and document["variant"] == "autodropout"
    assert document["sites"] == trial["pattern"]["sites"]
    provenance = document["provenance"]
    assert provenance["search_id"] == sid and provenance["trial_id"] == tids[1]
    assert provenance["reward"] == pytest.approx(0.9) and provenance["metric"] == "val_accuracy"
    assert provenance["model"] == "convnet" and provenance["dataset"] == "digits" and provenance["created_at"]
    assert best.headers["content-disposition"] == 'attachment; filename="digits-convnet-best-pattern.json"'
    assert best.headers["content-type"].startswith("application/json")


def test_best_follows_min_mode(sqlite_api: Api) -> None:
    sid = submit(sqlite_api, "loss", mode="min")
    runner_sim.claim(sqlite_api.engine, sid)
    for i, reward in enumerate([0.3, 0.1, 0.2]):
        runner_sim.run_trial(sqlite_api.engine, sid, i, reward)
    document = sqlite_api.client.get(f"/v1/searches/{sid}/best", headers=sqlite_api.auth()).json()
    assert document["provenance"]["reward"] == pytest.approx(0.1)


def _png_pixels(data: bytes):
    from matplotlib.image import imread

    assert data[:8] == PNG_MAGIC
    return imread(io.BytesIO(data), format="png")


def test_plot_png(sqlite_api: Api) -> None:
    sid = submit(sqlite_api, "plot")
    empty = sqlite_api.client.get(f"/v1/searches/{sid}/plot.png", headers=sqlite_api.auth())
    assert empty.status_code == 200 and empty.headers["content-type"] == "image/png"
    _png_pixels(empty.content)
    runner_sim.claim(sqlite_api.engine, sid)
    for i, reward in enumerate([0.2, 0.6, 0.4]):
        runner_sim.run_trial(sqlite_api.engine, sid, i, reward, status="stopped" if i == 2 else "succeeded")
    full = sqlite_api.client.get(f"/v1/searches/{sid}/plot.png", headers=sqlite_api.auth())
    pixels = _png_pixels(full.content)
    assert pixels.shape[:2] == (400, 700) and full.content != empty.content


def test_best_so_far() -> None:
    from dropsearch.api.plots import best_so_far

    assert best_so_far([0.2, 0.6, 0.4, 0.7]) == [0.2, 0.6, 0.6, 0.7]
    assert best_so_far([0.5, 0.3, 0.4, 0.1], mode="min") == [0.5, 0.3, 0.3, 0.1]


@pytest.mark.parametrize("variant", ["autodropout", "dropblock", "spatial", "bernoulli", "ydrop", "gsnr"])
def test_mask_png_for_each_kind_of_variant(sqlite_api: Api, variant: str) -> None:
    sid = submit(sqlite_api, variant)
    runner_sim.claim(sqlite_api.engine, sid)
    tid = runner_sim.run_trial(sqlite_api.engine, sid, 1, 0.5, variant=variant)
    response = sqlite_api.client.get(f"/v1/trials/{tid}/mask.png", headers=sqlite_api.auth())
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    pixels = _png_pixels(response.content)
    assert pixels.ndim == 3
    again = sqlite_api.client.get(f"/v1/trials/{tid}/mask.png", headers=sqlite_api.auth())
    assert again.content == response.content  # seeded: the same picture


def test_mask_picture_shows_the_real_pattern_mask() -> None:
    """The drawn conv mask is the regularizer's own mask: compare its drop fraction with pattern_mask's."""
    import torch

    from dropsearch.api.plots import _site_mask
    from dropsearch.regularizers.conv_pattern import pattern_mask

    site = runner_sim.pattern("autodropout", rate=0.3)["sites"][0]
    drawn, _ = _site_mask("autodropout", site, seed=5)
    expected = pattern_mask(
        {"rate": 0.3, "shape": site["shape"]}, (1, 1, 32, 32), generator=torch.Generator().manual_seed(5)
    )
    assert (torch.from_numpy(drawn) == expected[0, 0]).all()
    assert 0.0 < 1.0 - drawn.mean() < 1.0


def test_catalog(api: Api) -> None:
    body = api.client.get("/v1/catalog", headers=api.auth()).json()
    assert {m["name"] for m in body["models"]} >= {"convnet", "resnet", "mlp", "transformer"}
    datasets = {d["name"]: d for d in body["datasets"]}
    assert "digits" in datasets and datasets["digits"]["description"] and datasets["digits"]["builtin"]
    variants = {v["name"]: v for v in body["variants"]}
    assert set(variants) == {
        "none",
        "bernoulli",
        "spatial",
        "dropblock",
        "autodropout",
        "gsnr",
        "ydrop",
        "gradaug",
        "largedrop",
    }
    assert variants["gsnr"]["decisions"]["gsnr/p"] == [0.05, 0.1, 0.2, 0.3]
    assert variants["dropblock"]["decisions"]["dropblock/block_size"] == [2, 3, 5, 7]
    assert variants["autodropout"]["site_decisions"]["conv"]["size"] == [1, 2, 3, 4, 5, 7]
    assert "rate" in variants["autodropout"]["site_decisions"]["conv"]
    assert variants["gradaug"]["decisions"]["gradaug/resolutions"] == [[1.0], [1.0, 0.875, 0.75]]
    assert variants["largedrop"]["constants"] == {"freeze_bn": True}
    assert body["default_variants"][0] == "bernoulli"


def test_metrics_shows_request_counts_across_all_owners_to_anyone(sqlite_api: Api) -> None:
    from dropsearch.store.api_keys import create_api_key
    from dropsearch.store.db import session_scope

    with session_scope(sqlite_api.engine) as session:
        admin, _ = create_api_key(session=session, owner="admin", name="ops", is_admin=True)
    submit(sqlite_api, "m1")
    submit(sqlite_api, "m2")
    submit(sqlite_api, "b1", key=sqlite_api.bob)
    sqlite_api.client.get("/v1/searches/nope", headers=sqlite_api.auth())
    for key in (sqlite_api.alice, sqlite_api.bob):  # an owner's key sees nothing of the others' traffic
        refused = sqlite_api.client.get("/metrics", headers=sqlite_api.auth(key))
        assert refused.status_code == 403 and "admin" in refused.json()["detail"]
        assert "dropsearch_http_requests" not in refused.text
    response = sqlite_api.client.get("/metrics", headers=sqlite_api.auth(admin))
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'dropsearch_http_requests_total{method="POST",route="/v1/searches",status="201"} 3.0' in text
    assert 'dropsearch_http_requests_total{method="GET",route="/v1/searches/{search_id}",status="404"} 1.0' in text
    assert 'dropsearch_searches{owner="admin",status="queued"} 0.0' in text
    assert 'owner="bob"' not in text and 'owner="alice"' not in text


def test_openapi_and_docs(sqlite_api: Api) -> None:
    assert sqlite_api.client.get("/docs").status_code == 200
    schema = sqlite_api.client.get("/openapi.json").json()
    post = schema["paths"]["/v1/searches"]["post"]
    assert {"201", "401", "413", "422"} <= set(post["responses"])
    spec_schema = schema["components"]["schemas"]["SearchSpec"]
    assert spec_schema["examples"][0]["model"]["name"] == "convnet"
    assert "/v1/searches/{search_id}/events" in schema["paths"]
    json.dumps(schema)
