"""Security promises, checked against the real app and store: hashed keys compared in constant time, owner
isolation on every route of the OpenAPI document (SSE, plots and downloads included), request-size and budget
caps, names resolved only through the registries, dataset paths confined to the roots, no secrets in logs, and
the Ray dashboard refusing requests without its token."""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from dropsearch.api.app import create_app
from dropsearch.store.api_keys import authenticate, create_api_key
from dropsearch.store.db import session_scope
from tests.api.conftest import MAX_REQUEST_BYTES, SPEC, Api, finished_search
from tests.api.server import serve


def test_keys_are_stored_only_as_sha256_and_compared_in_constant_time(sqlite_api: Api, monkeypatch) -> None:
    api = sqlite_api
    with session_scope(api.engine) as session:
        plain, record = create_api_key(session=session, owner="carol", name="laptop")
    with api.engine.connect() as connection:
        rows = [tuple(map(str, row)) for row in connection.execute(text("SELECT * FROM api_keys"))]
    assert not any(plain in value for row in rows for value in row)  # the plain key is nowhere in the table
    assert any(hashlib.sha256(plain.encode()).hexdigest() in row for row in rows)

    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:  # the real comparison, recorded
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", counting)
    wrong = plain[:-4] + ("AAAA" if not plain.endswith("AAAA") else "BBBB")  # same display prefix, wrong secret
    with session_scope(api.engine, read_only=True) as session:
        assert authenticate(session=session, plain_key=wrong) is None
        assert authenticate(session=session, plain_key=plain).id == record.id
    assert len(compared) == 2 and all(len(a) == len(b) == 64 for a, b in compared)  # digests, never the plain key


def _openapi_routes(api: Api) -> list[tuple[str, str]]:
    paths = api.client.get("/openapi.json", headers=api.auth()).json()["paths"]
    return [(method.upper(), path) for path, methods in paths.items() for method in methods]


def _valid_bodies(api: Api) -> dict[tuple[str, str], object]:
    """A schema-valid body (the schema's first example) for every route whose body is required, so that another
    owner's request is refused for the owner, not for its body."""
    document = api.client.get("/openapi.json", headers=api.auth()).json()
    bodies = {}
    for path, methods in document["paths"].items():
        for method, op in methods.items():
            body = op.get("requestBody")
            if body and body.get("required"):
                ref = body["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
                bodies[(method.upper(), path)] = document["components"]["schemas"][ref]["examples"][0]
    return bodies


def test_owner_isolation_on_every_route_of_the_openapi_document(sqlite_api: Api) -> None:
    api = sqlite_api
    sid, tid = finished_search(api)
    alice, bob = api.auth(), api.auth(api.bob)
    templated = [(m, p) for m, p in _openapi_routes(api) if "{" in p]
    bodies = _valid_bodies(api)
    assert ("POST", "/v1/searches/{search_id}/extend") in bodies
    assert {p for _, p in templated} >= {
        "/v1/searches/{search_id}/events",
        "/v1/searches/{search_id}/plot.png",
        "/v1/searches/{search_id}/best",
        "/v1/trials/{trial_id}/mask.png",
    }
    for method, template in templated:
        unknown = set(re.findall(r"{(\w+)}", template)) - {"search_id", "trial_id"}
        assert not unknown, f"{method} {template}: add its parameters {unknown} to this test"
        path = template.replace("{search_id}", sid).replace("{trial_id}", tid)
        refused = api.client.request(method, path, headers=bob, json=bodies.get((method, template)))
        assert refused.status_code == 404, (method, path, refused.status_code)
        assert "alice" not in refused.text and "0.8" not in refused.text
    for method, template in templated:  # the owner is served (cancel last: it changes the search)
        if method == "GET":
            path = template.replace("{search_id}", sid).replace("{trial_id}", tid)
            assert api.client.get(path, headers=alice).status_code == 200, path
    listed = api.client.get("/v1/searches", headers=bob).json()
    assert listed["count"] == 0 and listed["data"] == []
    page = api.client.get(f"/ui/searches/{sid}")  # the UI shell holds no data: it reads the /v1 routes with a key
    assert page.status_code == 200 and sid not in page.text and "alice" not in page.text


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"budget": {"trials": 101, "max_concurrent": 1}}, "budget.trials"),
        ({"budget": {"trials": 3, "epochs_per_trial": 21, "max_concurrent": 1}}, "budget.epochs_per_trial"),
        ({"model": {"name": "os:system"}}, "model.name"),
        ({"model": {"name": "dropsearch.workers.train.ChildTraining"}}, "model.name"),
        ({"model": {"name": "__import__('os')"}}, "model.name"),
        ({"dataset": {"name": "../../etc/passwd"}}, "dataset.name"),
        ({"dataset": {"name": "subprocess.Popen"}}, "dataset.name"),
        ({"dataset": {"name": "image-folder", "params": {"path": "/etc"}}}, "dataset.params.path"),
        ({"dataset": {"name": "image-folder", "params": {"path": "../../../etc"}}}, "dataset.params.path"),
        ({"dataset": {"name": "image-folder", "params": {"train_dir": "/root"}}}, "dataset.params.train_dir"),
    ],
)
def test_caps_registries_and_roots_refuse_the_spec_with_422_naming_the_field(sqlite_api: Api, patch, field) -> None:
    response = sqlite_api.client.post("/v1/searches", json={**SPEC, **patch}, headers=sqlite_api.auth())
    assert response.status_code == 422, response.text
    assert field in response.text
    assert sqlite_api.client.get("/v1/searches", headers=sqlite_api.auth()).json()["count"] == 0


def test_request_size_cap_over_real_http_for_declared_and_chunked_bodies(sqlite_api: Api) -> None:
    app = create_app(sqlite_api.settings, migrate=False)
    with serve(app) as base:
        headers = {**sqlite_api.auth(), "Content-Type": "application/json"}
        declared = httpx.post(f"{base}/v1/searches", content=b"{" + b" " * MAX_REQUEST_BYTES + b"}", headers=headers)
        chunked = httpx.post(f"{base}/v1/searches", content=iter([b" " * 4096] * 8), headers=headers)
        fine = httpx.post(f"{base}/v1/searches", json=SPEC, headers=sqlite_api.auth())
    assert declared.status_code == 413 and chunked.status_code == 413
    assert str(MAX_REQUEST_BYTES) in declared.json()["detail"]
    assert fine.status_code == 201


def test_no_key_or_database_password_reaches_the_logs(sqlite_api: Api, caplog) -> None:
    api = sqlite_api
    caplog.set_level(logging.DEBUG)
    sid, _ = finished_search(api)
    for key in (api.alice, api.bob, api.alice[:-3] + "xyz"):
        api.client.get(f"/v1/searches/{sid}", headers={"Authorization": f"Bearer {key}"})
        api.client.get(f"/v1/searches/{sid}/events", headers={"Authorization": f"Bearer {key}"})
    api.client.post("/v1/searches", json={**SPEC, "model": {"name": "nope"}}, headers=api.auth())
    logged = "\n".join(f"{r.getMessage()} {r.args!r}" for r in caplog.records)
    assert caplog.records  # the requests were logged...
    for secret in (api.alice, api.bob, api.alice[:-3] + "xyz", api.alice[12:]):
        assert secret not in logged  # ...without any key or its secret part


@pytest.mark.slow
def test_the_local_ray_dashboard_listens_on_loopback_and_refuses_requests_without_the_token() -> None:
    import ray

    from dropsearch.workers.setup import ensure_ray

    ray.shutdown()
    assert os.environ.get("RAY_AUTH_MODE", "").lower() != "disabled"
    try:
        ensure_ray(None, num_cpus=1, dashboard=True)
        url = ray._private.worker.global_worker.node.address_info["webui_url"]
        host = url.split(":")[0]
        assert host in ("127.0.0.1", "localhost"), url  # never bound to a public interface by default
        for route in ("/api/version", "/nodes?view=summary", "/api/jobs/"):
            response = httpx.get(f"http://{url}{route}", timeout=10)
            assert response.status_code in (401, 403), (route, response.status_code, response.text[:200])
    finally:
        ray.shutdown()


def _readme_http_paragraph() -> str:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    start = readme.index("- **HTTP:**")
    return readme[start : readme.index("```", start)]


def _normalized(path: str) -> str:
    """``/ui/searches/{search_id}`` -> ``/ui/searches/{}``; a mount ``/ui/static`` -> ``/ui/static/``."""
    return re.sub(r"{\w+}", "{}", path)


def test_the_readme_lists_exactly_the_routes_open_without_a_key(sqlite_api: Api) -> None:
    from starlette.routing import Mount

    from dropsearch.api.ui.routes import STATIC_DIR

    paragraph = _readme_http_paragraph()
    needs_key, open_part = paragraph.split("Open without one:")
    open_part = open_part.split("which hold no data")[0]
    documented_open = {_normalized(p) for p in re.findall(r"`(/[^`\s]*)`", open_part)}
    documented_keyed = set(re.findall(r"`(/[^`\s]*)`", needs_key))
    assert documented_keyed == {"/v1/", "/metrics"}

    app = create_app(sqlite_api.settings, migrate=False)
    routes: list[tuple[str, str]] = []  # (method, path) of every route of the real app, included routers too
    static_file = next(p for p in STATIC_DIR.rglob("*") if p.is_file())
    for route in app.routes:
        inner = getattr(route, "original_router", None)
        for sub in inner.routes if inner is not None else [route]:
            if isinstance(sub, Mount):
                routes.append(("GET", f"{sub.path}/{static_file.relative_to(STATIC_DIR).as_posix()}"))
            else:
                routes.extend((method, sub.path) for method in sorted(sub.methods - {"HEAD"}))
    sid, tid = finished_search(sqlite_api)
    opened: set[str] = set()
    for method, template in routes:
        path = template.replace("{search_id}", sid).replace("{trial_id}", tid)
        response = sqlite_api.client.request(method, path, follow_redirects=False)  # no Authorization header
        if response.status_code != 401:
            assert method == "GET" and response.status_code in (200, 307), (method, path, response.status_code)
            if template.startswith("/ui/static/"):
                opened.add("/ui/static/")
            else:
                opened.add(_normalized(template))
        else:
            assert template.startswith("/v1/") or template == "/metrics", (method, template)
    assert any(t.startswith("/v1/") for _, t in routes) and ("GET", "/metrics") in routes
    assert opened == documented_open, opened ^ documented_open
