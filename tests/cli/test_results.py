"""``trials`` (CSV / JSON export), ``extend``, YAML specs for ``submit``, ``list --status`` and every --help example,
against a real API (uvicorn + SQLite) with the runner simulated on the store.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import httpx
import pytest

from dropsearch.cli import EXAMPLES
from dropsearch.cli.searches import SEARCH_STATUSES
from dropsearch.search.spec import SearchSpec
from dropsearch.store.models import SEARCH_STATUSES as STORE_STATUSES
from tests.api import runner_sim

SPEC = runner_sim.spec("cli-results", trials=3, epochs_per_trial=2, max_concurrent=1)
YAML_SPEC = """\
# a YAML job spec
name: cli-results
model: {name: convnet}
dataset:
  name: digits
budget:
  trials: 3
  epochs_per_trial: 2
  max_concurrent: 1
validation:
  enabled: false
"""


def _finished(served) -> str:
    headers = {"Authorization": f"Bearer {served.key}"}
    sid = httpx.post(f"{served.url}/v1/searches", json=SPEC, headers=headers).json()["id"]
    runner_sim.claim(served.engine, sid)
    for index in range(3):
        runner_sim.run_trial(served.engine, sid, index, 0.6 + index / 10, epochs=1 + index)
    runner_sim.finish(served.engine, sid)
    return sid


def test_trials_exports_csv_and_json(cli, served, tmp_path: Path) -> None:
    sid = _finished(served)
    out = tmp_path / "trials.csv"
    result = cli("trials", sid, "--format", "csv", "-o", out, "--url", served.url, "--data-dir", served.data_dir)
    assert result.exit_code == 0, result.output
    assert "3 trial(s)" in result.stderr
    rows = list(csv.DictReader(out.open(newline="")))
    assert [r["index"] for r in rows] == ["0", "1", "2"] and rows[2]["epoch_2.val_accuracy"] != ""
    result = cli("trials", sid, "-f", "json", "--url", served.url, "--data-dir", served.data_dir)
    trials = json.loads(result.stdout)
    assert [t["id"] for t in trials] == [r["id"] for r in rows]
    assert [float(r["reward"]) for r in rows] == [t["reward"] for t in trials]
    bad = cli("trials", sid, "--format", "xml", "--url", served.url, "--data-dir", served.data_dir)
    assert bad.exit_code == 2 and "--format must be one of csv, json" in bad.stderr
    missing = cli("trials", "nope", "--url", served.url, "--data-dir", served.data_dir)
    assert missing.exit_code == 1 and "404" in missing.stderr


def test_extend_queues_the_search_with_more_trials(cli, served) -> None:
    sid = _finished(served)
    result = cli("extend", sid, "4", "--url", served.url, "--data-dir", served.data_dir)
    assert result.exit_code == 0, result.output
    assert "queued, 3 of 7 trials done" in result.stderr and f"dropsearch watch {sid}" in result.stderr
    again = cli("extend", sid, "1", "--url", served.url, "--data-dir", served.data_dir)
    assert again.exit_code == 1 and "is queued; only a succeeded search can be extended" in again.stderr
    zero = cli("extend", sid, "0", "--url", served.url, "--data-dir", served.data_dir)
    assert zero.exit_code == 2


def test_submit_takes_a_yaml_spec(cli, served, tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(YAML_SPEC)
    result = cli("submit", path, "--url", served.url, "--data-dir", served.data_dir)
    assert result.exit_code == 0, result.output
    stored = httpx.get(
        f"{served.url}/v1/searches/{result.stdout.strip()}", headers={"Authorization": f"Bearer {served.key}"}
    ).json()
    assert stored["spec"] == SearchSpec.model_validate(SPEC).model_dump(mode="json")
    broken = tmp_path / "broken.yml"
    broken.write_text("model: {name: convnet\ndataset: [")
    result = cli("submit", broken, "--url", "http://127.0.0.1:9")
    assert result.exit_code == 2 and "is not valid YAML at line" in result.stderr
    as_json = tmp_path / "spec.json"
    as_json.write_text(YAML_SPEC)
    result = cli("submit", as_json, "--url", "http://127.0.0.1:9")
    assert result.exit_code == 2 and "a YAML spec needs a .yaml or .yml name" in result.stderr
    listed = tmp_path / "list.yaml"
    listed.write_text("- a\n- b\n")
    result = cli("submit", listed, "--url", "http://127.0.0.1:9")
    assert result.exit_code == 2 and "must hold a JSON object or YAML mapping" in result.stderr


def test_list_status_names_its_values(cli, served) -> None:
    assert SEARCH_STATUSES == STORE_STATUSES
    result = cli("list", "--status", "done", "--url", served.url, "--data-dir", served.data_dir)
    assert result.exit_code == 2 and "one of queued, running, succeeded, failed, cancelled" in result.stderr
    help_text = cli("list", "--help", env={"COLUMNS": "200"}).stdout
    assert "queued, running, succeeded, failed, cancelled" in help_text


@pytest.mark.parametrize("command", sorted(EXAMPLES))
def test_every_command_help_has_an_example(cli, command: str) -> None:
    result = cli(command, "--help", env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "Example: " in result.stdout and EXAMPLES[command].split("\n")[0][:30] in result.stdout


@pytest.mark.parametrize("command", [("keys", "create"), ("keys", "list"), ("keys", "revoke"), ("db", "upgrade")])
def test_admin_help_has_an_example(cli, command: tuple[str, str]) -> None:
    result = cli(*command, "--help", env={"COLUMNS": "200"})
    assert result.exit_code == 0 and f"Example: dropsearch {' '.join(command)}" in result.stdout
