"""Concurrent writers: 50 simultaneous submissions (threads, and several processes) all stored, none refused."""

from __future__ import annotations

import multiprocessing
import threading
from collections import Counter

from sqlalchemy import Engine

from dropsearch.store.api_keys import authenticate, create_api_key
from dropsearch.store.db import session_scope
from dropsearch.store.searches import create_search, list_searches
from tests.store._workers import submit_and_claim

SUBMISSIONS = 50


def test_fifty_concurrent_submissions_are_all_stored(engine: Engine) -> None:
    with session_scope(engine) as session:
        plain_key, _ = create_api_key(session=session, owner="alice", name="load")
    barrier = threading.Barrier(SUBMISSIONS)
    stored: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def submit(number: int) -> None:
        barrier.wait()
        try:
            with session_scope(engine) as session:  # read then write in one transaction, as the API does
                owner = authenticate(session=session, plain_key=plain_key).owner
                search = create_search(
                    session=session, owner=owner, name=f"s{number}", spec={"n": number}, trials_total=3
                )
                list_searches(session=session, owner=owner, limit=5)
            with lock:
                stored.append(search.id)
        except BaseException as exc:
            with lock:
                errors.append(exc)

    threads = [threading.Thread(target=submit, args=(number,)) for number in range(SUBMISSIONS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with session_scope(engine, read_only=True) as session:
        page = list_searches(session=session, owner="alice", limit=100)
    assert page.total == SUBMISSIONS == len(set(stored))
    assert {search.id for search in page.items} == set(stored)
    assert sorted(search.spec["n"] for search in page.items) == list(range(SUBMISSIONS))


def test_processes_submit_and_claim_without_errors_or_double_claims(engine: Engine, db_url: str) -> None:
    processes, per_process = 4, 12
    with session_scope(engine) as session:
        plain_key, _ = create_api_key(session=session, owner="bob", name="load")
        create_search(session=session, owner="bob", name="before", spec={}, trials_total=1)
    context = multiprocessing.get_context("spawn")
    start, results = context.Event(), context.Queue()
    workers = [
        context.Process(target=submit_and_claim, args=(db_url, plain_key, per_process, f"r{i}", start, results))
        for i in range(processes)
    ]
    for worker in workers:
        worker.start()
    start.set()
    reports = [results.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(timeout=30)
        assert worker.exitcode == 0
    assert [error for *_, errors in reports for error in errors] == []
    submitted = [search_id for _, ids, _, _ in reports for search_id in ids]
    claimed = Counter(search_id for _, _, ids, _ in reports for search_id in ids)
    with session_scope(engine, read_only=True) as session:
        page = list_searches(session=session, owner="bob", limit=1000)
    assert len(submitted) == processes * per_process and page.total == processes * per_process + 1
    # every search was claimed by exactly one process (some may have been claimed before all were submitted)
    assert set(claimed) == {search.id for search in page.items} and set(claimed.values()) == {1}
    assert all(search.status == "running" and search.lease_owner for search in page.items)
