"""The OpenAPI document declares the bearer scheme; /docs and /redoc are served from packaged assets only."""

from __future__ import annotations

import re
from pathlib import Path

from tests.api.conftest import Api

VENDOR = Path(__file__).resolve().parents[2] / "dropsearch" / "api" / "ui" / "static" / "vendor"


def test_openapi_declares_the_bearer_scheme_on_every_v1_route(sqlite_api: Api) -> None:
    schema = sqlite_api.client.get("/openapi.json").json()
    assert schema["components"]["securitySchemes"]["ApiKey"] == {
        "type": "http",
        "scheme": "bearer",
        "description": schema["components"]["securitySchemes"]["ApiKey"]["description"],
    }
    operations = [
        (path, method, op)
        for path, item in schema["paths"].items()
        for method, op in item.items()
        if path.startswith("/v1/")
    ]
    assert len(operations) >= 8
    for path, method, op in operations:
        assert op.get("security") == [{"ApiKey": []}], f"{method.upper()} {path} does not declare the key"
    assert "security" not in schema["paths"]["/healthz"]["get"]


def test_auth_errors_keep_their_shape(sqlite_api: Api) -> None:
    for headers, words in (
        ({}, "missing API key"),
        ({"Authorization": "Basic abc"}, "malformed Authorization header"),
        ({"Authorization": "Bearer nope"}, "invalid API key"),
    ):
        response = sqlite_api.client.get("/v1/searches", headers=headers)
        assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"
        assert set(response.json()) == {"detail"} and words in response.json()["detail"]


def test_docs_pages_load_only_same_origin_assets(sqlite_api: Api) -> None:
    for path, assets in (
        ("/docs", ["/ui/static/vendor/swagger-ui/swagger-ui-bundle.js", "/ui/static/vendor/swagger-ui/swagger-ui.css"]),
        ("/redoc", ["/ui/static/vendor/redoc/redoc.standalone.js"]),
    ):
        response = sqlite_api.client.get(path)
        assert response.status_code == 200
        assert "default-src 'none'" in response.headers["content-security-policy"]
        html = response.text
        assert not re.search(r"(src|href)=\"(https?:)?//", html), f"{path} names another host"
        assert "<script>" not in html  # no inline script (the CSP would block it)
        for asset in assets:
            assert asset in html
            served = sqlite_api.client.get(asset)
            assert served.status_code == 200 and len(served.content) > 100_000


def test_vendored_assets_ship_with_their_licenses() -> None:
    assert "Apache License" in (VENDOR / "swagger-ui" / "LICENSE").read_text()
    assert "MIT License" in (VENDOR / "redoc" / "LICENSE").read_text()
    pyproject = (VENDOR.parents[4] / "pyproject.toml").read_text()
    assert "api/ui/static/vendor/*/*" in pyproject
