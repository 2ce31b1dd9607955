"""Load: 50 concurrent submissions over real HTTP on SQLite and on Postgres (all stored, none lost, no
"database is locked"), and GET latency on loopback while a search runs (bounded request counts).

The measurements are those of ``benchmarks/api_latency.py`` (which prints the figures of docs/RELIABILITY.md).
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "api_latency.py"


def _bench():
    spec = importlib.util.spec_from_file_location("api_latency_bench", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


bench = _bench()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> str:
    if request.param == "sqlite":
        shutil.copyfile(sqlite_template, tmp_path / "load.db")
        return f"sqlite:///{tmp_path / 'load.db'}"
    return request.getfixturevalue("postgres_url")


def test_50_concurrent_submissions_are_all_stored_without_database_is_locked(database: str) -> None:
    result = bench.concurrent_submissions(database, 50)
    print(result)
    assert result["statuses"] == {201: 50}, result
    assert result["stored"] == 50 and result["lost"] == 0 and result["database_is_locked"] == 0


@pytest.mark.drill  # long: runs with DROPSEARCH_TEST_DRILLS=1 (CI time)
@pytest.mark.slow
def test_get_latency_while_a_search_runs_is_bounded() -> None:
    import ray

    ray.shutdown()
    result = bench.get_latency(requests=240, clients=4, run_search=True)
    print(result)
    assert result["requests"] == 240 and result["search_running"]  # measured while the search trained
    assert set(result["statuses"]) <= {200, 404}  # 404: /best before the first trial has finished
    assert result["statuses"].get(200, 0) >= 200
    assert result["overall"]["p99_ms"] < 5000  # loose: 2 shared cores also train the children
    assert "/v1/searches/{id}/plot.png" in result["routes"]
