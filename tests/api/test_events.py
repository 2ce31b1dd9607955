"""GET /v1/searches/{id}/events: the SSE format, resuming with Last-Event-ID / ?after=, the final `end` event."""

from __future__ import annotations

import json

from dropsearch.client import parse_sse
from tests.api import runner_sim
from tests.api.conftest import SPEC, Api


def finished_search(api: Api, trials: int = 2) -> str:
    sid = api.client.post("/v1/searches", json=SPEC, headers=api.auth()).json()["id"]
    runner_sim.claim(api.engine, sid)
    for index in range(trials):
        runner_sim.run_trial(api.engine, sid, index, 0.5 + 0.1 * index, epochs=2)
    runner_sim.finish(api.engine, sid)
    return sid


def read(api: Api, sid: str, **kwargs) -> tuple[str, list[dict]]:
    response = api.client.get(
        f"/v1/searches/{sid}/events", headers={**api.auth(), **kwargs.pop("headers", {})}, **kwargs
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    return response.text, list(parse_sse(iter(response.text.splitlines())))


def test_stream_of_a_finished_search_sends_everything_then_ends(api: Api) -> None:
    sid = finished_search(api)
    raw, events = read(api, sid)
    kinds = [e["event"] for e in events]
    per_trial = ["trial.started", "trial.reported", "trial.reported", "trial.finished"]
    assert kinds == per_trial * 2 + ["search.finished", "end"]
    ids = [e["id"] for e in events[:-1]]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert events[-1]["id"] is None and events[-1]["data"]["status"] == "succeeded"
    assert events[-1]["data"]["last_event_id"] == ids[-1]
    assert events[3]["data"]["reward"] == 0.5 and events[3]["data"]["index"] == 0
    # wire format: id, event and one-line JSON data per message
    first = raw.split("\n\n")[1].splitlines()
    assert first[0] == f"id: {ids[0]}" and first[1] == "event: trial.started"
    assert json.loads(first[2].removeprefix("data: "))["index"] == 0


def test_resume_with_last_event_id_and_after(api: Api) -> None:
    sid = finished_search(api)
    _, events = read(api, sid)
    ids = [e["id"] for e in events if e["id"] is not None]
    _, resumed = read(api, sid, headers={"Last-Event-ID": str(ids[4])})
    assert [e["id"] for e in resumed[:-1]] == ids[5:] and resumed[-1]["event"] == "end"
    _, after = read(api, sid, params={"after": ids[-2]})
    assert [e["id"] for e in after[:-1]] == ids[-1:]
    # the header wins over ?after= (a browser reconnects to the same URL with the header)
    _, both = read(api, sid, params={"after": 0}, headers={"Last-Event-ID": str(ids[-1])})
    assert [e["event"] for e in both] == ["end"]
    bad = api.client.get(f"/v1/searches/{sid}/events", headers={**api.auth(), "Last-Event-ID": "abc"})
    assert bad.status_code == 422 and "last-event-id" in bad.json()["detail"]


def test_cancelled_and_failed_searches_end_with_their_status(sqlite_api: Api) -> None:
    queued = sqlite_api.client.post("/v1/searches", json=SPEC, headers=sqlite_api.auth()).json()["id"]
    sqlite_api.client.post(f"/v1/searches/{queued}/cancel", headers=sqlite_api.auth())
    _, events = read(sqlite_api, queued)
    assert events == [
        {"id": None, "event": "end", "data": {"status": "cancelled", "search_id": queued, "last_event_id": 0}}
    ]
    failed = sqlite_api.client.post("/v1/searches", json=SPEC, headers=sqlite_api.auth()).json()["id"]
    runner_sim.finish(sqlite_api.engine, failed, "failed", error="out of memory")
    _, events = read(sqlite_api, failed)
    assert [e["event"] for e in events] == ["search.finished", "end"] and events[-1]["data"]["status"] == "failed"
    assert sqlite_api.client.get(f"/v1/searches/{failed}", headers=sqlite_api.auth()).json()["error"] == (
        "out of memory"
    )


def test_parse_sse() -> None:
    lines = ["retry: 2000", "", ": keep-alive", "", "id: 7", "event: x", 'data: {"a": 1}', "", "data: plain", ""]
    assert list(parse_sse(iter(lines))) == [
        {"id": 7, "event": "x", "data": {"a": 1}},
        {"id": None, "event": "message", "data": "plain"},
    ]
