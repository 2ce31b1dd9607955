"""Model and dataset params over real HTTP (uvicorn on loopback): checked against the registries and capped in
size at submit, with a 422 naming the field; nothing stored."""

from __future__ import annotations

import httpx

from dropsearch.api.app import create_app
from dropsearch.api.policy import MAX_PARAMS_BYTES, MAX_PARAMS_KEYS
from tests.api.conftest import SPEC, Api
from tests.api.server import serve


def _post_all(api: Api, bodies: list[dict]) -> list[httpx.Response]:
    with serve(create_app(api.settings, migrate=False)) as base:
        return [httpx.post(f"{base}/v1/searches", json=body, headers=api.auth(), timeout=60) for body in bodies]


def _stored(api: Api) -> int:
    return api.client.get("/v1/searches", headers=api.auth()).json()["count"]


def test_model_and_dataset_params_are_not_checked_at_submit(sqlite_api: Api) -> None:
    cases = [
        ({"model": {"name": "convnet", "params": {"widht": [8]}}}, "model.params.widht"),
        ({"dataset": {"name": "digits", "params": {"rotation": 3}}}, "dataset.params.rotation"),
        ({"model": {"name": "convnet", "params": {"num_classes": 3}}}, "model.params.num_classes"),
        ({"model": {"name": "convnet", "params": {f"k{i}": 1 for i in range(MAX_PARAMS_KEYS + 1)}}}, "model.params"),
        ({"dataset": {"name": "digits", "params": {"size": "x" * MAX_PARAMS_BYTES}}}, "dataset.params"),
    ]
    fine = {**SPEC, "model": {"name": "convnet", "params": {"widths": [8, 16]}}}
    responses = _post_all(sqlite_api, [{**SPEC, **patch} for patch, _ in cases] + [fine])
    for (_patch, field), response in zip(cases, responses, strict=False):
        assert response.status_code == 422, (field, response.status_code, response.text[:300])
        assert response.json()["detail"].startswith(f"{field}:"), response.json()["detail"]
    detail = responses[0].json()["detail"]
    assert detail == "model.params.widht: unknown parameter of model 'convnet'; known: widths, width_mult", detail
    assert responses[-1].status_code == 201, responses[-1].text
    assert _stored(sqlite_api) == 1  # only the valid one
