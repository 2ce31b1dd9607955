"""A 60 s database outage in the middle of a search (a TCP proxy in front of Postgres, cut and restored), with the
real runner and a real local Ray: the runner waits it out, gives the search back when its lease would expire and
takes it back once the database answers; the search ends ``succeeded`` with every trial completed once."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from dropsearch import store
from dropsearch.config import Settings
from dropsearch.runner import Runner
from dropsearch.store.scratch import scratch_database
from tests.reliability._common import assert_finished_cleanly, snapshot, spec, submit, wait_for
from tests.reliability._proxy import TcpProxy
from tests.store.conftest import POSTGRES_URL

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.drill, pytest.mark.usefixtures("fresh_ray")]

OUTAGE_S = 60.0


def test_short_database_outage_fails_a_search_for_good(tmp_path: Path, caplog) -> None:
    trials, batch = 8, 2
    caplog.set_level(logging.WARNING, logger="dropsearch.runner")
    with scratch_database(POSTGRES_URL, prefix="dropsearch_outage") as direct, TcpProxy(("127.0.0.1", 5432)) as proxy:
        proxied = make_url(direct).set(port=proxy.port).render_as_string(hide_password=False)
        search_id = submit(direct, spec(trials, epochs=2))
        settings = Settings(
            data_dir=tmp_path, database_url=proxied, heartbeat_s=0.5, lease_timeout_s=20.0, ray_num_cpus=2
        )
        runner = Runner(settings, poll_s=0.5)
        started = time.monotonic()
        runner.start()
        try:
            wait_for(lambda: snapshot(direct, search_id).search.trials_done >= 2, 300, "2 trials done")
            proxy.cut()
            cut_at = time.monotonic()
            kept = snapshot(direct, search_id).completed
            time.sleep(OUTAGE_S)
            during = snapshot(direct, search_id).search
            proxy.restore()
            outage = time.monotonic() - cut_at
            wait_for(lambda: snapshot(direct, search_id).search.status != "running", 400, "search finished")
            wall = time.monotonic() - started
        finally:
            runner.stop()
            store.dispose_engines()
        snap = snapshot(direct, search_id)
        store.get_engine(direct).dispose()
    gave_back = any("giving" in r.getMessage() and "back" in r.getMessage() for r in caplog.records)
    print(
        f"outage {outage:.1f} s; trials kept through it {len(kept)}; search wall {wall:.1f} s; "
        f"connections through the proxy {proxy.connections}; gave the search back: {gave_back}; "
        f"attempts {[t.attempt for t in snap.trials]}"
    )
    assert during.status == "running" and during.error is None  # never marked failed during the outage
    assert_finished_cleanly(snap, trials, batch, kept, one_event_each=False)
    assert gave_back  # the 20 s lease ran out inside the 60 s outage: the search was given back, then resumed
