"""CI smoke run of ``benchmarks/search_overhead.py --quick``: both engines run and the report adds up."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "search_overhead.py"

pytestmark = pytest.mark.slow


def test_quick_run_reports_both_engines_against_the_measured_ideal():
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick"], capture_output=True, text=True, timeout=400, env=env
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    assert report["trials"] == 4 and report["concurrent"] == 2 and report["epochs_per_child"] >= 1
    assert report["child_s"] > 0 and report["child_concurrent_s"] > 0
    assert report["ideal_s"] == pytest.approx(4 * report["child_concurrent_s"] / 2, abs=0.01)
    assert report["ideal_alone_s"] == pytest.approx(4 * report["child_s"] / 2, abs=0.01)
    ours = report["dropsearch"]
    assert ours["overhead_fraction"] == pytest.approx(ours["wall_s"] / report["ideal_s"] - 1, abs=0.01)
    assert len(ours["runs_overhead_fraction"]) == 1
    tune = report["tune_defaults"]
    assert tune["overhead_fraction"] == pytest.approx(tune["wall_s"] / report["ideal_s"] - 1, abs=0.01)
    # a 1 s child can never finish in less than the ideal's time by much, whichever engine runs it
    assert ours["wall_s"] > 0.5 * report["ideal_s"] and tune["wall_s"] > 0.5 * report["ideal_s"]
    assert report["targets"] == {"overhead_fraction_max": 0.05, "ratio_min": 3.0}
