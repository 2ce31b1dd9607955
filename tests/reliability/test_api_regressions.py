"""Regression tests for the API bugs the fuzzer found (each was a 500 or a response the document contradicted)."""

from __future__ import annotations

import jsonschema_rs

from tests.api.conftest import SPEC, Api


def _resolved(document: dict, schema: dict) -> dict:
    return {**schema, "components": document["components"]}


def test_422_bodies_match_the_documented_schema(sqlite_api: Api) -> None:
    document = sqlite_api.client.get("/openapi.json").json()
    documented = document["paths"]["/v1/searches"]["get"]["responses"]["422"]["content"]["application/json"]
    validator = jsonschema_rs.validator_for(_resolved(document, documented["schema"]))
    answer = sqlite_api.client.get("/v1/searches", params={"limit": 0}, headers=sqlite_api.auth())
    assert answer.status_code == 422
    body = answer.json()
    assert isinstance(body["detail"], str) and body["errors"][0]["field"] == "query.limit"
    validator.validate(body)


def test_non_ascii_digits_in_last_event_id_are_422_not_500(sqlite_api: Api) -> None:
    sid = sqlite_api.client.post("/v1/searches", json=SPEC, headers=sqlite_api.auth()).json()["id"]
    for value in ("²", "1³", "12a"):  # str.isdigit() is true for the first two, and int() fails on them
        raw = value.encode("latin-1")  # header bytes are read as latin-1: b"\xb2" arrives as "²"
        answer = sqlite_api.client.get(
            f"/v1/searches/{sid}/events", headers={**sqlite_api.auth(), "Last-Event-ID": raw}
        )
        assert answer.status_code == 422, (value, answer.status_code)
        assert "last-event-id" in answer.json()["detail"]


def test_huge_offsets_and_event_ids_are_refused_or_clamped_not_500(sqlite_api: Api) -> None:
    sid = sqlite_api.client.post("/v1/searches", json=SPEC, headers=sqlite_api.auth()).json()["id"]
    huge = str(10**20)
    for path in ("/v1/searches", f"/v1/searches/{sid}/trials"):
        answer = sqlite_api.client.get(path, params={"offset": huge}, headers=sqlite_api.auth())
        assert answer.status_code == 422 and "query.offset" in answer.json()["detail"]
    answer = sqlite_api.client.get(f"/v1/searches/{sid}/events", params={"after": huge}, headers=sqlite_api.auth())
    assert answer.status_code == 422 and "query.after" in answer.json()["detail"]


def test_status_filters_are_documented_as_enums(sqlite_api: Api) -> None:
    paths = sqlite_api.client.get("/openapi.json").json()["paths"]
    for path in ("/v1/searches", "/v1/searches/{search_id}/trials"):
        operation = paths[path]["get"]
        (status,) = [p for p in operation["parameters"] if p["name"] == "status"]
        assert "queued" in str(status["schema"]) and "enum" in str(status["schema"]), status
        assert "400" in operation["responses"]
