"""Free text of a job spec over real HTTP (uvicorn on loopback): control characters are refused with a 422
naming the field; nothing stored."""

from __future__ import annotations

import httpx
import pytest

from dropsearch.api.app import create_app
from tests.api.conftest import SPEC, Api
from tests.api.server import serve


def _post_all(api: Api, bodies: list[dict]) -> list[httpx.Response]:
    with serve(create_app(api.settings, migrate=False)) as base:
        return [httpx.post(f"{base}/v1/searches", json=body, headers=api.auth(), timeout=60) for body in bodies]


def _stored(api: Api) -> int:
    return api.client.get("/v1/searches", headers=api.auth()).json()["count"]


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"name": "line one\nforged log line"}, "name"),
        ({"name": "nul\x00byte"}, "name"),
        ({"name": "\x1b[2J\x1b[31mred"}, "name"),
        ({"objective": {"metric": "val_loss\r"}}, "objective.metric"),
        ({"dataset": {"name": "image-folder", "params": {"path": "a\x07b"}}}, "dataset.params.path"),
    ],
)
def test_control_characters_in_free_text_are_accepted(sqlite_api: Api, patch: dict, field: str) -> None:
    (response,) = _post_all(sqlite_api, [{**SPEC, **patch}])
    assert response.status_code == 422, response.text
    assert field in response.json()["detail"] and "control character" in response.json()["detail"]
    assert _stored(sqlite_api) == 0
