"""CI smoke run of ``benchmarks/search_overhead.py --quick --long``: both rows run and the report is complete.

Only what is deterministic is asserted (structure, counts, positivity, the report's own arithmetic): the timings
are measured separately on a shared machine and may disagree by any amount under load.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "search_overhead.py"

pytestmark = [pytest.mark.slow, pytest.mark.drill]


def _within_rounding(overhead: float, wall: float, ideal: float) -> bool:
    """Whether ``overhead`` (4 decimals) is ``wall / ideal - 1`` for some values that round to ``wall``, ``ideal``."""
    low, high = (wall - 0.005) / (ideal + 0.005) - 1, (wall + 0.005) / (ideal - 0.005) - 1
    return low - 5e-5 <= overhead <= high + 5e-5


def test_quick_run_reports_both_rows_against_the_measured_ideal_and_their_targets():
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--long"], capture_output=True, text=True, timeout=600, env=env
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    assert report["trials"] == 4 and report["concurrent"] == 2 and report["repeats"] == 1
    assert report["targets"] == {"overhead_fraction_max": {"short": 0.10, "long": 0.02}}
    assert set(report["rows"]) == {"short", "long"}
    assert report["rows"]["short"]["child_seconds_target"] == 1.0
    assert report["rows"]["long"]["child_seconds_target"] == 2.0
    assert report["rows"]["long"]["cold"] is None  # the long row runs warm only
    for name, row in report["rows"].items():
        assert row["target_overhead_fraction_max"] == report["targets"]["overhead_fraction_max"][name]
        assert row["epochs_per_child"] >= 1
        assert row["child_s"] > 0 and row["child_concurrent_s"] > 0 and row["ideal_s"] > 0 and row["ideal_alone_s"] > 0
        assert len(row["child_concurrent_before_after_s"]) == 2 and min(row["child_concurrent_before_after_s"]) > 0
        warm, cold = row["warm"], row["cold"]
        assert len(warm["runs_wall_s"]) == len(warm["runs_overhead_fraction"]) == 1
        assert warm["wall_s"] == warm["runs_wall_s"][0] and warm["wall_s"] > 0
        # the overhead figures are the report's own arithmetic: wall / ideal - 1 of its numbers before rounding
        assert _within_rounding(warm["overhead_fraction"], warm["wall_s"], row["ideal_s"])
        if cold is not None:
            assert cold["wall_s"] > cold["ray_start_s"] > 0
            assert _within_rounding(cold["overhead_fraction"], cold["wall_s"], row["ideal_s"])
        assert isinstance(row["pass"], bool)
