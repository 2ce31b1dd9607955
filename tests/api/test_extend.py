"""Extending a succeeded search (``POST /v1/searches/{id}/extend``) and warm-starting a new one from an earlier
search's controller (``controller.warm_start_from``), through the API with the runner simulated on the store.

``tests/runner/test_extend_e2e.py`` runs both with the real runner and Ray.
"""

from __future__ import annotations

from dropsearch.store.controller_states import latest_controller_state, save_controller_state
from dropsearch.store.db import session_scope
from dropsearch.store.events import events_after
from tests.api import runner_sim
from tests.api.conftest import Api

SPEC = {
    "name": "to-extend",
    "model": {"name": "convnet"},
    "dataset": {"name": "digits"},
    "space": {"variants": ["bernoulli", "dropblock"], "rates": [0.0, 0.2]},
    "controller": {"batch_size": 2},
    "budget": {"trials": 2, "max_concurrent": 1},
    "validation": {"enabled": False},  # the simulated runner runs no validation stage
}


def finished(api: Api, spec: dict = SPEC, *, state: bytes | None = b"policy-v2") -> str:
    sid = api.client.post("/v1/searches", json=spec, headers=api.auth()).json()["id"]
    runner_sim.claim(api.engine, sid)
    runner_sim.run_trial(api.engine, sid, 0, 0.7)
    runner_sim.run_trial(api.engine, sid, 1, 0.8)
    if state is not None:
        with session_scope(api.engine) as session:
            save_controller_state(session=session, search_id=sid, blob=state, updates=1, trials_seen=2)
    runner_sim.finish(api.engine, sid)
    return sid


def test_extend_a_succeeded_search(api: Api) -> None:
    sid = finished(api)
    before = api.client.get(f"/v1/searches/{sid}", headers=api.auth()).json()
    trials_before = api.client.get(f"/v1/searches/{sid}/trials", headers=api.auth()).json()["data"]
    response = api.client.post(f"/v1/searches/{sid}/extend", json={"trials": 3}, headers=api.auth())
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "queued" and body["finished_at"] is None and body["error"] is None
    assert body["progress"] == {"trials_done": 2, "trials_total": 5}
    assert body["spec"]["budget"]["trials"] == 5
    assert {k: v for k, v in body["spec"].items() if k != "budget"} == {
        k: v for k, v in before["spec"].items() if k != "budget"
    }
    assert body["best_reward"] == before["best_reward"] == 0.8
    assert api.client.get(f"/v1/searches/{sid}/trials", headers=api.auth()).json()["data"] == trials_before
    with session_scope(api.engine, read_only=True) as session:
        events = events_after(session=session, search_id=sid, after_id=0, limit=1000)
        state = latest_controller_state(session=session, search_id=sid)
    assert events[-1].kind == "search_extended" and events[-1].data == {"added": 3, "trials_total": 5}
    assert state is not None and state.trials_seen == 2 and state.blob == b"policy-v2"  # the runner resumes here

    # Queued again: the runner claims it and runs only the new indices; then it can be extended once more.
    runner_sim.claim(api.engine, sid)
    for index in (2, 3, 4):
        runner_sim.run_trial(api.engine, sid, index, 0.9)
    runner_sim.finish(api.engine, sid)
    again = api.client.post(f"/v1/searches/{sid}/extend", json={"trials": 1}, headers=api.auth()).json()
    assert again["progress"] == {"trials_done": 5, "trials_total": 6} and again["spec"]["budget"]["trials"] == 6


def test_extend_refusals_name_the_problem(api: Api) -> None:
    queued = api.client.post("/v1/searches", json=SPEC, headers=api.auth()).json()["id"]
    response = api.client.post(f"/v1/searches/{queued}/extend", json={"trials": 2}, headers=api.auth())
    assert response.status_code == 409 and "is queued" in response.json()["detail"]
    runner_sim.claim(api.engine, queued)
    response = api.client.post(f"/v1/searches/{queued}/extend", json={"trials": 2}, headers=api.auth())
    assert response.status_code == 409 and "is running" in response.json()["detail"]
    runner_sim.finish(api.engine, queued, "cancelled")
    response = api.client.post(f"/v1/searches/{queued}/extend", json={"trials": 2}, headers=api.auth())
    assert response.status_code == 409 and "is cancelled" in response.json()["detail"]

    sid = finished(api)
    over = api.client.post(f"/v1/searches/{sid}/extend", json={"trials": 99}, headers=api.auth())
    assert over.status_code == 422  # 2 + 99 > max_trials 100
    assert over.json()["errors"][0]["field"] == "trials" and "max_trials (100)" in over.json()["detail"]
    assert "add at most 98" in over.json()["detail"]
    for body in ({"trials": 0}, {"trials": "x"}, {}, {"trials": 1, "more": 1}, None):
        bad = api.client.post(f"/v1/searches/{sid}/extend", json=body, headers=api.auth())
        assert bad.status_code == 422, body
    assert (
        api.client.post(f"/v1/searches/{sid}/extend", json={"trials": 1}, headers=api.auth(api.bob)).status_code == 404
    )
    assert api.client.post(f"/v1/searches/{sid}/extend", json={"trials": 1}).status_code == 401
    unchanged = api.client.get(f"/v1/searches/{sid}", headers=api.auth()).json()
    assert unchanged["status"] == "succeeded" and unchanged["progress"]["trials_total"] == 2
    exact = api.client.post(f"/v1/searches/{sid}/extend", json={"trials": 98}, headers=api.auth())
    assert exact.status_code == 200 and exact.json()["progress"]["trials_total"] == 100


def test_extend_refuses_a_search_whose_stored_spec_no_longer_validates(api: Api) -> None:
    from sqlalchemy import update

    from dropsearch.store.models import SearchModel

    sid = finished(api)
    with session_scope(api.engine) as session:  # as if written by an older version with other fields
        session.execute(update(SearchModel).where(SearchModel.id == sid).values(spec={"budget": {"trials": 2}}))
    response = api.client.post(f"/v1/searches/{sid}/extend", json={"trials": 1}, headers=api.auth())
    assert response.status_code == 409 and "model" in response.json()["detail"], response.text
    unchanged = api.client.get(f"/v1/searches/{sid}", headers=api.auth()).json()
    assert unchanged["status"] == "succeeded" and unchanged["progress"]["trials_total"] == 2


def test_warm_start_copies_the_sources_latest_controller_state(api: Api) -> None:
    source = finished(api)
    spec = {**SPEC, "name": "warm", "dataset": {"name": "synthetic"}, "controller": {"warm_start_from": source}}
    response = api.client.post("/v1/searches", json=spec, headers=api.auth())
    assert response.status_code == 201, response.text
    new = response.json()
    assert new["spec"]["controller"]["warm_start_from"] == source and new["progress"]["trials_done"] == 0
    with session_scope(api.engine, read_only=True) as session:
        copied = latest_controller_state(session=session, search_id=new["id"])
    # The runner loads this as the controller's start and, with trials_seen 0, runs every trial of the new search.
    assert copied is not None and copied.blob == b"policy-v2" and copied.updates == 1 and copied.trials_seen == 0


def test_warm_start_refusals(api: Api) -> None:
    source = finished(api)
    stateless = finished(api, state=None)
    bobs = api.client.post("/v1/searches", json=SPEC, headers=api.auth(api.bob)).json()["id"]
    cases = [
        ({"controller": {"warm_start_from": bobs}}, "no search"),
        ({"controller": {"warm_start_from": "0" * 32}}, "no search"),
        ({"controller": {"warm_start_from": stateless}}, "no stored controller state"),
        ({"controller": {"warm_start_from": source}, "space": {"variants": ["bernoulli"]}}, "another space"),
        ({"controller": {"warm_start_from": source}, "model": {"name": "mlp"}}, "another model"),
        ({"controller": {"warm_start_from": source, "name": "random"}}, "another controller.name"),
    ]
    for change, words in cases:
        response = api.client.post("/v1/searches", json={**SPEC, **change}, headers=api.auth())
        assert response.status_code == 422, (change, response.text)
        assert (
            response.json()["errors"][0]["field"] == "controller.warm_start_from" and words in response.json()["detail"]
        )
    bad = api.client.post("/v1/searches", json={**SPEC, "controller": {"warm_start_from": "../x"}}, headers=api.auth())
    assert bad.status_code == 422 and "controller.warm_start_from" in bad.json()["detail"]
    assert api.client.get("/v1/searches", headers=api.auth()).json()["count"] == 2  # nothing stored by the refusals
