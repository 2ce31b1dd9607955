"""Extend and warm start with the real runner, real Ray and real HTTP (uvicorn + SQLite or Postgres).

A finished 8-trial search extended by 4 ends with 12 trials: the first 8 untouched (same rewards, same
``finished_at``), the 4 new ones run, the controller's update count goes on (2 -> 3 with batches of 4). A new search
warm-started from it begins with that controller (its first stored state counts on from the source's updates).
The trials' CSV export matches their JSON one to one.
"""

from __future__ import annotations

import pytest

from dropsearch.store import session_scope
from dropsearch.store.controller_states import latest_controller_state
from tests._live import DIGITS, live_service, with_overrides
from tests.api.test_export import check_csv_matches_json
from tests.store.conftest import db_url, postgres_url, sqlite_template  # noqa: F401  (fixtures)

pytestmark = pytest.mark.slow

SPEC = with_overrides(
    DIGITS,
    name="extend-e2e",
    space={"variants": ["bernoulli", "dropblock", "autodropout"], "rates": [0.0, 0.1, 0.3]},
    training={"lr": 0.003},
)


def updates(engine, search_id: str) -> tuple[int, int]:
    with session_scope(engine, read_only=True) as session:
        state = latest_controller_state(session=session, search_id=search_id)
    assert state is not None
    return state.updates, state.trials_seen


def test_extend_a_finished_search_and_warm_start_another(db_url, tmp_path, fresh_ray):  # noqa: F811
    with live_service(db_url, tmp_path) as (client, engine):
        sid = client.submit(SPEC)["id"]
        assert client.wait(sid, timeout=600, poll_s=0.5)["status"] == "succeeded"
        first = client.all_trials(sid)
        assert len(first) == 8 and updates(engine, sid) == (2, 8)

        extended = client.extend(sid, 4)
        assert extended["status"] == "queued" and extended["progress"] == {"trials_done": 8, "trials_total": 12}
        final = client.wait(sid, timeout=600, poll_s=0.5)
        assert final["status"] == "succeeded" and final["spec"]["budget"]["trials"] == 12
        assert final["progress"] == {"trials_done": 12, "trials_total": 12}
        after = client.all_trials(sid)
        assert [t["index"] for t in after] == list(range(12))
        for old, now in zip(first, after[:8], strict=True):
            assert (now["id"], now["reward"], now["finished_at"], now["metrics"]) == (
                old["id"],
                old["reward"],
                old["finished_at"],
                old["metrics"],
            )
        assert all(t["status"] == "succeeded" and len(t["metrics"]) == 2 for t in after[8:])
        assert min(t["started_at"] for t in after[8:]) > max(t["finished_at"] for t in first)
        assert updates(engine, sid) == (3, 12)  # the controller went on: 2 updates, then one more
        check_csv_matches_json(client.trials_csv(sid), after)

        warm_spec = {**SPEC, "name": "warm", "controller": {**SPEC["controller"], "warm_start_from": sid}}
        warm_spec["budget"] = {**SPEC["budget"], "trials": 4}
        warm = client.submit(warm_spec)["id"]
        assert updates(engine, warm) == (3, 0)  # the source's controller, no trial seen yet
        assert client.wait(warm, timeout=600, poll_s=0.5)["status"] == "succeeded"
        assert len(client.all_trials(warm)) == 4
        assert updates(engine, warm) == (4, 4)  # started at the source's 3 updates
