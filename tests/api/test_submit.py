"""POST /v1/searches: the stored search, every refused spec (422 naming the field, nothing stored), 413."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from dropsearch.store.db import session_scope
from dropsearch.store.searches import list_searches
from tests.api.conftest import MAX_REQUEST_BYTES, Api

SPEC = {
    "name": "digits-convnet",
    "model": {"name": "convnet"},
    "dataset": {"name": "digits"},
    "budget": {"trials": 4, "epochs_per_trial": 2, "max_concurrent": 2},
    "validation": {"enabled": False},
}


def count(api: Api, owner: str = "alice") -> int:
    with session_scope(api.engine, read_only=True) as session:
        return list_searches(session=session, owner=owner).total


def spec_with(**changes: Any) -> dict[str, Any]:
    spec = json.loads(json.dumps(SPEC))
    for dotted, value in changes.items():
        node = spec
        *parents, leaf = dotted.split("__")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return spec


def test_submit_returns_the_queued_search_with_links(api: Api) -> None:
    response = api.client.post("/v1/searches", json=SPEC, headers=api.auth())
    assert response.status_code == 201, response.text
    body = response.json()
    sid = body["id"]
    assert body["name"] == "digits-convnet" and body["status"] == "queued"
    assert body["progress"] == {"trials_done": 0, "trials_total": 4}
    assert body["best_reward"] is None
    assert body["ray_dashboard_url"] == "http://ray.example:8265"
    assert body["links"]["self"] == f"/v1/searches/{sid}"
    assert body["links"]["events"] == f"/v1/searches/{sid}/events"
    assert body["links"]["best"] == f"/v1/searches/{sid}/best"
    assert body["links"]["plot"] == f"/v1/searches/{sid}/plot.png"
    assert body["links"]["trials"] == f"/v1/searches/{sid}/trials"
    # the stored spec is the validated one, defaults filled in
    assert body["spec"]["controller"]["name"] == "reinforce" and body["spec"]["budget"]["trials"] == 4
    assert count(api) == 1 and count(api, "bob") == 0
    assert api.client.get(f"/v1/searches/{sid}", headers=api.auth()).json()["spec"] == body["spec"]


def test_default_name_and_objective_mode(api: Api) -> None:
    spec = {
        "model": {"name": "mlp"},
        "dataset": {"name": "synthetic"},
        "budget": {"trials": 2, "max_concurrent": 1},
        "objective": {"metric": "val_loss", "mode": "min"},
    }
    body = api.client.post("/v1/searches", json=spec, headers=api.auth()).json()
    assert body["name"] == "synthetic-mlp"


BAD_SPECS = [
    pytest.param(spec_with(model__name="nosuchmodel"), "model.name", id="unknown-model"),
    pytest.param(spec_with(model__name="os:system"), "model.name", id="model-like-os:system"),
    pytest.param(spec_with(dataset__name="nosuchdata"), "dataset.name", id="unknown-dataset"),
    pytest.param(spec_with(space__variants=["bernoulli", "magic"]), "space.variants", id="unknown-variant"),
    pytest.param(spec_with(budget__trials=0), "budget.trials", id="zero-trials"),
    pytest.param(spec_with(budget__trials=-3), "budget.trials", id="negative-trials"),
    pytest.param(spec_with(budget__trials=101, budget__max_concurrent=1), "budget.trials", id="over-max-trials"),
    pytest.param(spec_with(budget__epochs_per_trial=21), "budget.epochs_per_trial", id="over-max-epochs"),
    # 90 search trials + (3 top patterns + 1 baseline) x 3 seeds = 102 > max_trials 100
    pytest.param(
        spec_with(budget__trials=90, budget__max_concurrent=1, validation__enabled=True),
        "validation",
        id="validation-over-cap",
    ),
    pytest.param(
        spec_with(budget__trials=60, budget__seeds_per_trial=2, budget__max_concurrent=1),
        "budget.seeds_per_trial",
        id="seeds-per-trial-over-cap",
    ),
    pytest.param(spec_with(surprise=1), "surprise", id="unknown-field"),
    pytest.param({"dataset": {"name": "digits"}}, "model", id="missing-model"),
    pytest.param(
        spec_with(dataset__name="image-folder", dataset__params={"path": "/etc"}),
        "dataset.params.path",
        id="path-outside-roots",
    ),
    pytest.param(
        spec_with(dataset__name="cifar10", dataset__params={"path": "../../etc"}),
        "dataset.params.path",
        id="relative-escape",
    ),
    pytest.param(
        spec_with(dataset__name="char-corpus", dataset__params={"path": 7}),
        "dataset.params.path",
        id="path-not-a-string",
    ),
]


@pytest.mark.parametrize(("spec", "field"), BAD_SPECS)
def test_bad_spec_is_422_naming_the_field_and_nothing_is_stored(api: Api, spec: dict, field: str) -> None:
    before = count(api)
    response = api.client.post("/v1/searches", json=spec, headers=api.auth())
    assert response.status_code == 422, response.text
    body = response.json()
    assert isinstance(body["detail"], str) and field in body["detail"]
    assert any(error["field"] == field for error in body["errors"])
    assert count(api) == before == 0


def test_messages_are_readable(sqlite_api: Api) -> None:
    detail = sqlite_api.client.post("/v1/searches", json=spec_with(budget__trials=0), headers=sqlite_api.auth())
    assert "budget.trials: Input should be greater than or equal to 1" in detail.json()["detail"]
    detail = sqlite_api.client.post("/v1/searches", json=spec_with(budget__trials=500), headers=sqlite_api.auth())
    assert detail.json()["detail"] == "budget.trials: must be at most 100 (the server's max_trials), got 500"


def test_validation_trials_count_in_the_trial_cap(sqlite_api: Api) -> None:
    exact = spec_with(budget__trials=88, budget__max_concurrent=1, validation__enabled=True)  # 88 + 4 x 3 = 100
    assert sqlite_api.client.post("/v1/searches", json=exact, headers=sqlite_api.auth()).status_code == 201
    over = sqlite_api.client.post(
        "/v1/searches", json=spec_with(budget__trials=89, validation__enabled=True), headers=sqlite_api.auth()
    )
    assert over.status_code == 422
    assert over.json()["detail"].startswith("validation: the search's 89 trials plus up to 12 validation trials")
    off = spec_with(budget__trials=100, budget__max_concurrent=1, validation={"enabled": False})
    assert sqlite_api.client.post("/v1/searches", json=off, headers=sqlite_api.auth()).status_code == 201


@pytest.mark.parametrize("body", [b"{not json", b'{"model": ', b"", b"[1, 2]", b'"text"'])
def test_malformed_json_is_422_not_500(sqlite_api: Api, body: bytes) -> None:
    headers = {**sqlite_api.auth(), "Content-Type": "application/json"}
    response = sqlite_api.client.post("/v1/searches", content=body, headers=headers)
    assert response.status_code == 422, response.text
    assert response.json()["detail"].startswith("body")
    assert count(sqlite_api) == 0


def test_malformed_json_names_the_position(sqlite_api: Api) -> None:
    headers = {**sqlite_api.auth(), "Content-Type": "application/json"}
    response = sqlite_api.client.post("/v1/searches", content=b'{"model": }', headers=headers)
    assert "malformed JSON at position 10" in response.json()["detail"]


def test_dataset_paths_are_confined_to_the_roots(sqlite_api: Api) -> None:
    api = sqlite_api
    inside = api.data_root / "images"
    inside.mkdir()
    escape = api.data_root / "escape"
    os.symlink("/etc", escape)

    def submit(path: str) -> int:
        spec = spec_with(dataset__name="image-folder", dataset__params={"path": path})
        return api.client.post("/v1/searches", json=spec, headers=api.auth()).status_code

    assert submit(str(inside)) == 201
    assert submit("images") == 201  # relative to a root
    assert submit(str(api.data_root / "images" / ".." / "images")) == 201
    assert submit(str(escape)) == 422  # a symlink inside the root pointing out of it
    assert submit(str(api.data_root / ".." / "store.db")) == 422
    assert submit("escape/passwd") == 422
    assert count(api) == 3


def test_no_roots_configured_refuses_every_path(tmp_path, sqlite_template) -> None:
    import shutil

    from fastapi.testclient import TestClient

    from dropsearch.api.app import create_app
    from dropsearch.store.db import make_engine
    from tests.api.conftest import make_key, make_settings

    shutil.copyfile(sqlite_template, tmp_path / "s.db")
    url = f"sqlite:///{tmp_path / 's.db'}"
    engine = make_engine(url)
    key = make_key(engine, "alice")
    with TestClient(create_app(make_settings(url, tmp_path, dataset_roots=[]), migrate=False)) as client:
        spec = spec_with(dataset__name="image-folder", dataset__params={"path": str(tmp_path)})
        response = client.post("/v1/searches", json=spec, headers={"Authorization": f"Bearer {key}"})
    engine.dispose()
    assert response.status_code == 422
    assert "dataset.params.path" in response.json()["detail"] and "no dataset_roots" in response.json()["detail"]


def test_huge_body_is_413_and_nothing_is_stored(sqlite_api: Api) -> None:
    spec = spec_with(dataset__params={"pad": "x" * (MAX_REQUEST_BYTES + 10)})
    response = sqlite_api.client.post("/v1/searches", json=spec, headers=sqlite_api.auth())
    assert response.status_code == 413
    assert "too large" in response.json()["detail"] and str(MAX_REQUEST_BYTES) in response.json()["detail"]

    def chunks():  # no Content-Length: the middleware counts the streamed bytes
        for _ in range(30):
            yield b"x" * 1000

    headers = {**sqlite_api.auth(), "Content-Type": "application/json"}
    response = sqlite_api.client.post("/v1/searches", content=chunks(), headers=headers)
    assert response.status_code == 413
    assert count(sqlite_api) == 0
    ok = sqlite_api.client.post("/v1/searches", json=spec_with(name="x" * 100), headers=sqlite_api.auth())
    assert ok.status_code == 201
