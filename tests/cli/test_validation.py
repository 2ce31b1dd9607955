"""The validation table in the CLI: its rendering from a real report, and ``best`` / ``watch`` against a real API."""

from __future__ import annotations

import io
import json
import threading
import time
from pathlib import Path

from rich.console import Console

from dropsearch.cli._validation import BEATS_MARK, WORSE_MARK, format_gap, validation_view
from dropsearch.search.validation import Arm, ValidationResults
from dropsearch.search.validation_report import ValidationReport
from tests.api import runner_sim
from tests.api.test_validation_views import NONE_PATTERN, SEEDS, VALUES

SPEC = runner_sim.spec("validated-cli", validation={"top_k": 2, "seeds": 3}, trials=2, max_concurrent=1)


def _text(renderable: object, width: int = 160) -> str:
    console = Console(file=io.StringIO(), width=width, color_system=None)
    console.print(renderable)
    return console.file.getvalue()


def _rows(text: str) -> dict[str, str]:
    """The table's lines by their first word (the header line is ``"arm"``)."""
    names = ("arm", "search-1", "search-2", "none")
    return {line.split()[0]: line for line in text.splitlines() if line.split() and line.split()[0] in names}


def _arms() -> list[Arm]:
    return [
        Arm("search-1", runner_sim.pattern(rate=0.1), "search", 0.9, 1),
        Arm("search-2", runner_sim.pattern(rate=0.3), "search", 0.85, 0),
        Arm("none", NONE_PATTERN, "baseline"),
    ]


def _report(mode: str = "max", stop: str | None = None) -> dict:
    results = ValidationResults(_arms(), seeds=list(SEEDS), mode=mode)
    for i, seed in enumerate(SEEDS):
        for name, values in VALUES.items():
            results.record(name, seed, values[i])
    if stop:
        results.dropped[stop] = 2
    return ValidationReport.from_results(results, metric="val_accuracy").to_dict()


def test_table_rows_gaps_marks_and_conclusion() -> None:
    report = _report()
    text = _text(validation_view(report))
    rows = _rows(text)
    assert "gap vs none" in rows["arm"] and "notes" in rows["arm"]
    # search-1: mean 0.82 ± 0.02 over 3 seeds; gap +0.1067 with the paired t interval (hand: t(0.975, 2) = 4.3027)
    assert rows["search-1"].split()[:6] == ["search-1", "*", "search", "0.8200", "±", "0.0200"]
    assert rows["search-1"].split()[6] == "3"
    assert f"+0.1067 [+0.0923, +0.1210] {BEATS_MARK}" in rows["search-1"]
    # search-2: one failed seed (n = 2), an interval across 0, no mark
    assert "0.7100 ± 0.0141   2 " in rows["search-2"] and rows["search-2"].rstrip().endswith("1 failed")
    gap2 = report["arms"][1]["gaps"]["none"]
    assert format_gap(gap2) == f"{gap2['mean']:+.4f} [{gap2['low']:+.4f}, {gap2['high']:+.4f}]"
    assert BEATS_MARK not in rows["search-2"] and WORSE_MARK not in rows["search-2"]
    assert "baseline" in rows["none"] and "0.7133 ± 0.0153" in rows["none"]
    assert "paired 95% interval" in text and "higher is better" in text
    assert " ".join(text.split()).count("Pattern 'search-1' beat no dropout by +0.1067") == 1


def test_table_marks_worse_and_stopped_arms() -> None:
    report = _report(mode="min", stop="search-2")  # lower is better: search-1 is worse than no dropout
    text = _text(validation_view(report))
    rows = _rows(text)
    assert f"+0.1067 [+0.0923, +0.1210] {WORSE_MARK}" in rows["search-1"]
    assert "stopped early after 2 seeds; 1 failed" in rows["search-2"] and "lower is better" in text
    assert "none *" in rows["none"] and "*" not in rows["search-1"]  # the baseline has the best (lowest) mean
    assert format_gap({"mean": None, "n": 0}) == "- (n=0)"


def _run_validated(served, search_id: str) -> None:
    runner_sim.claim(served.engine, search_id)
    runner_sim.run_trial(served.engine, search_id, 0, 0.85)
    runner_sim.run_trial(served.engine, search_id, 1, 0.9)
    time.sleep(0.2)
    runner_sim.run_validation(served.engine, search_id, _arms(), VALUES, seeds=SEEDS)
    runner_sim.finish(served.engine, search_id)


def test_watch_marks_validation_runs_and_best_prints_the_table(cli, served, tmp_path: Path) -> None:
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(SPEC))
    search_id = cli("submit", spec_file, "--url", served.url, "--data-dir", served.data_dir).stdout.strip()
    thread = threading.Thread(target=_run_validated, args=(served, search_id))
    thread.start()
    watched = cli("watch", search_id, "--url", served.url, "--data-dir", served.data_dir, env={"COLUMNS": "200"})
    thread.join()
    assert watched.exit_code == 0, watched.output
    out = watched.stdout
    # the event lines say which runs are validation runs, and each report update
    assert "trial_started (index=1000000, kind=validation, arm=search-1, seed=10000" in out
    assert "validation_updated (final=True, chosen=search-1)" in out
    final = out[out.rindex("11/11") :]  # the final view: 2 search trials + 3 arms x 3 seeds
    assert "validation search-1 seed 10000" in final and "validation none seed 10002" in final
    assert f"+0.1067 [+0.0923, +0.1210] {BEATS_MARK}" in final and "search-1 *" in final
    assert "Best mean: pattern 'search-1' (0.82 over 3 seeds)." in final

    target = tmp_path / "pattern.json"
    best = cli("best", search_id, "-o", target, "--url", served.url, "--data-dir", served.data_dir)
    assert best.exit_code == 0, best.output
    document = json.loads(target.read_text())
    assert document["provenance"]["validated"] is True and document["provenance"]["arm"] == "search-1"
    err = best.stderr
    assert err.index("gap vs none") < err.index("Pattern 'search-1' beat no dropout") < err.index("-> ")
    assert "validated arm search-1" in err and "0.8200 ± 0.0200" in err
    printed = cli("best", search_id, "--url", served.url, "--data-dir", served.data_dir)
    assert json.loads(printed.stdout) == document  # the table goes to stderr: stdout stays the pattern
    assert f"{BEATS_MARK}" in printed.stderr


def test_best_without_a_validation_stage_prints_no_table(cli, served, tmp_path: Path) -> None:
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps({**SPEC, "validation": {"enabled": False}}))
    search_id = cli("submit", spec_file, "--url", served.url, "--data-dir", served.data_dir).stdout.strip()
    runner_sim.claim(served.engine, search_id)
    runner_sim.run_trial(served.engine, search_id, 0, 0.7)
    runner_sim.finish(served.engine, search_id)
    best = cli("best", search_id, "--url", served.url, "--data-dir", served.data_dir)
    assert best.exit_code == 0 and "gap vs" not in best.stderr
    assert json.loads(best.stdout)["provenance"]["validated"] is False
