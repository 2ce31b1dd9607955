"""401 without or with a bad key on every route but /healthz; another owner gets 404 on every resource route."""

from __future__ import annotations

import pytest

from dropsearch.store.api_keys import revoke_api_key
from dropsearch.store.db import session_scope
from tests.api.conftest import SPEC, Api, finished_search


def routes(sid: str, tid: str) -> list[tuple[str, str]]:
    return [
        ("POST", "/v1/searches"),
        ("GET", "/v1/searches"),
        ("GET", f"/v1/searches/{sid}"),
        ("POST", f"/v1/searches/{sid}/cancel"),
        ("GET", f"/v1/searches/{sid}/trials"),
        ("GET", f"/v1/searches/{sid}/events"),
        ("GET", f"/v1/searches/{sid}/best"),
        ("GET", f"/v1/searches/{sid}/plot.png"),
        ("GET", f"/v1/trials/{tid}/mask.png"),
        ("GET", "/v1/catalog"),
        ("GET", "/metrics"),
    ]


@pytest.fixture
def finished(api: Api) -> tuple[str, str]:
    return finished_search(api)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, "missing API key: send Authorization: Bearer <key>"),
        ({"Authorization": "Basic abc"}, "malformed Authorization header"),
        ({"Authorization": "Bearer"}, "malformed Authorization header"),
        ({"Authorization": "Bearer ds_notarealkey"}, "invalid API key"),
    ],
)
def test_every_route_needs_a_valid_key(api: Api, finished: tuple[str, str], headers: dict, expected: str) -> None:
    for method, path in routes(*finished):
        response = api.client.request(method, path, headers=headers, json=SPEC if method == "POST" else None)
        assert response.status_code == 401, (method, path, response.text)
        assert expected in response.json()["detail"], (method, path)
        assert response.headers["www-authenticate"] == "Bearer"


def test_revoked_key_is_refused(sqlite_api: Api) -> None:
    with session_scope(sqlite_api.engine) as session:
        assert revoke_api_key(session=session, key_id=1)
    response = sqlite_api.client.get("/v1/searches", headers=sqlite_api.auth())
    assert response.status_code == 401 and "invalid API key" in response.json()["detail"]


def test_healthz_needs_no_key(api: Api) -> None:
    response = api.client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok", "database": "ok"}


def test_another_owner_gets_404_everywhere(api: Api, finished: tuple[str, str]) -> None:
    sid, tid = finished
    bob = api.auth(api.bob)
    for method, path in routes(sid, tid):
        if sid not in path and tid not in path:
            continue
        response = api.client.request(method, path, headers=bob)
        assert response.status_code == 404, (method, path, response.text)
        assert response.json()["detail"] in (f"search {sid} not found", f"trial {tid} not found")
    assert api.client.get("/v1/searches", headers=bob).json() == {"data": [], "count": 0}
    # and the owner still sees everything
    for method, path in routes(sid, tid):
        if method == "GET":
            expected = 403 if path == "/metrics" else 200  # /metrics: admin keys only
            assert api.client.get(path, headers=api.auth()).status_code == expected, path


def test_unknown_ids_are_404(sqlite_api: Api) -> None:
    for path in ("/v1/searches/nope", "/v1/searches/nope/trials", "/v1/searches/nope/best", "/v1/trials/nope/mask.png"):
        response = sqlite_api.client.get(path, headers=sqlite_api.auth())
        assert response.status_code == 404 and "nope" in response.json()["detail"]
