"""Functions run in separate processes by the concurrency tests (importable by ``spawn``)."""

from __future__ import annotations

from dropsearch.store.api_keys import authenticate
from dropsearch.store.db import make_engine, session_scope
from dropsearch.store.leases import claim_next_queued_search
from dropsearch.store.searches import create_search


def submit_and_claim(url: str, plain_key: str, count: int, runner_id: str, start, results) -> None:
    """Submit ``count`` searches the way the API does (authenticate, then create), then claim queued searches."""
    engine = make_engine(url)
    submitted, claimed, errors = [], [], []
    start.wait()
    try:
        for _ in range(count):
            try:
                with session_scope(engine) as session:
                    key = authenticate(session=session, plain_key=plain_key)
                    search = create_search(
                        session=session, owner=key.owner, name=runner_id, spec={"seed": 0}, trials_total=2
                    )
                submitted.append(search.id)
            except Exception as exc:  # reported to the parent, which asserts there are none
                errors.append(repr(exc))
        while True:
            with session_scope(engine) as session:
                got = claim_next_queued_search(session=session, runner_id=runner_id, lease_s=30)
            if got is None:
                break
            claimed.append(got.id)
    finally:
        engine.dispose()
        results.put((runner_id, submitted, claimed, errors))
