"""``GET /v1/spec-schema`` is the job spec's JSON schema; a spec valid by it is accepted, and ``/ui/new`` is served."""

from __future__ import annotations

from dropsearch.search.spec import SearchSpec
from tests.api.conftest import Api


def test_spec_schema_describes_what_submit_accepts(sqlite_api: Api) -> None:
    api = sqlite_api
    assert api.client.get("/v1/spec-schema").status_code == 401
    schema = api.client.get("/v1/spec-schema", headers=api.auth()).json()
    assert schema == SearchSpec.model_json_schema(mode="validation")
    assert schema["required"] == ["model", "dataset"] and schema["additionalProperties"] is False
    budget = schema["$defs"]["BudgetSpec"]["properties"]
    assert budget["trials"]["minimum"] == 1
    controller = schema["$defs"]["ControllerSpec"]["properties"]
    assert "warm_start_from" in controller
    spec = {"model": {"name": "convnet"}, "dataset": {"name": "digits"}, "budget": {"trials": 2, "max_concurrent": 1}}
    assert api.client.post("/v1/searches", json=spec, headers=api.auth()).status_code == 201


def test_new_search_page_is_served_with_the_csp(sqlite_api: Api) -> None:
    response = sqlite_api.client.get("/ui/new")
    assert response.status_code == 200 and "default-src 'none'" in response.headers["content-security-policy"]
    for asset in ("/ui/static/new.js", "/ui/static/schema.js", "/ui/static/vendor/js-yaml/js-yaml.umd.min.js"):
        assert asset in response.text
        assert sqlite_api.client.get(asset).status_code == 200
