"""``GET /v1/searches/{id}/trials`` as CSV: every trial, one row each, matching the JSON trials one to one."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from tests.api import runner_sim
from tests.api.conftest import Api


def all_json_trials(api: Api, sid: str) -> list[dict[str, Any]]:
    out, offset = [], 0
    while True:
        page = api.client.get(
            f"/v1/searches/{sid}/trials", params={"limit": 200, "offset": offset}, headers=api.auth()
        ).json()
        out += page["data"]
        offset += len(page["data"])
        if offset >= page["count"]:
            return out


def check_csv_matches_json(text: str, trials: list[dict[str, Any]]) -> list[dict[str, str]]:
    """The CSV rows equal the JSON trials field by field (numbers compared exactly)."""
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert [int(r["index"]) for r in rows] == [t["index"] for t in trials]
    for row, trial in zip(rows, trials, strict=True):
        assert row["id"] == trial["id"] and row["status"] == trial["status"] and row["kind"] == trial["kind"]
        assert row["arm"] == (trial["arm"] or "")
        assert row["seed"] == ("" if trial["seed"] is None else str(trial["seed"]))
        assert int(row["attempt"]) == trial["attempt"]
        assert json.loads(row["tokens"]) == trial["tokens"]
        assert row["variant"] == trial["pattern"]["variant"]
        for site in trial["pattern"]["sites"]:
            assert float(row[f"rate.{site['site']}"]) == site["rate"]
        assert (float(row["reward"]) if row["reward"] else None) == trial["reward"]
        assert int(row["epochs"]) == len(trial["metrics"])
        epoch_columns = {k: v for k, v in row.items() if k.startswith("epoch_") and v != ""}
        expected = {f"epoch_{m['epoch']}.{k}": v for m in trial["metrics"] for k, v in m.items() if k != "epoch"}
        assert {k: float(v) for k, v in epoch_columns.items()} == expected
        assert row["node"] == (trial["node"] or "") and row["finished_at"].startswith(trial["finished_at"][:19])
        assert (float(row["wall_s"]) if row["wall_s"] else None) == trial["wall_s"]
    return rows


def test_csv_has_every_trial_and_matches_json(sqlite_api: Api) -> None:
    api = sqlite_api
    spec = {
        "model": {"name": "convnet"},
        "dataset": {"name": "digits"},
        "budget": {"trials": 60},
        "validation": {"enabled": False},
    }
    sid = api.client.post("/v1/searches", json={"name": "csv export/1", **spec}, headers=api.auth()).json()["id"]
    runner_sim.claim(api.engine, sid)
    for index in range(55):  # more than one JSON page (50)
        epochs = 1 if index % 3 == 0 else 3  # early-stopped ones have fewer epochs
        status = "stopped" if index % 3 == 0 else "succeeded"
        runner_sim.run_trial(api.engine, sid, index, 0.5 + index / 1000, epochs=epochs, status=status)
    runner_sim.finish(api.engine, sid)
    trials = all_json_trials(api, sid)
    assert len(trials) == 55

    response = api.client.get(f"/v1/searches/{sid}/trials", params={"format": "csv"}, headers=api.auth())
    assert response.status_code == 200 and response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"] == 'attachment; filename="csv-export-1-trials.csv"'
    rows = check_csv_matches_json(response.text, trials)
    header = next(csv.reader(io.StringIO(response.text)))
    assert header[:9] == ["index", "id", "status", "attempt", "kind", "arm", "seed", "variant", "tokens"]
    assert {r["kind"] for r in rows} == {"search"}
    assert "epoch_2.val_accuracy" in header and header.index("epoch_0.loss") < header.index("epoch_2.val_accuracy")
    assert rows[0]["epoch_1.val_accuracy"] == "" and rows[1]["epoch_2.val_accuracy"] != ""

    by_accept = api.client.get(f"/v1/searches/{sid}/trials", headers={**api.auth(), "Accept": "text/csv"})
    assert by_accept.text == response.text
    stopped = api.client.get(
        f"/v1/searches/{sid}/trials", params={"format": "csv", "status": "stopped"}, headers=api.auth()
    )
    assert [int(r["index"]) for r in csv.DictReader(io.StringIO(stopped.text))] == list(range(0, 55, 3))
    as_json = api.client.get(f"/v1/searches/{sid}/trials", headers={**api.auth(), "Accept": "application/json"})
    assert as_json.json()["count"] == 55


def test_csv_errors_and_owners(sqlite_api: Api) -> None:
    api = sqlite_api
    spec = {
        "model": {"name": "convnet"},
        "dataset": {"name": "digits"},
        "budget": {"trials": 2, "max_concurrent": 1},
        "validation": {"enabled": False},
    }
    sid = api.client.post("/v1/searches", json=spec, headers=api.auth()).json()["id"]
    empty = api.client.get(f"/v1/searches/{sid}/trials", params={"format": "csv"}, headers=api.auth())
    assert empty.status_code == 200 and empty.text.splitlines()[0].startswith("index,id,status")
    assert len(empty.text.splitlines()) == 1
    bad = api.client.get(f"/v1/searches/{sid}/trials", params={"format": "xml"}, headers=api.auth())
    assert bad.status_code == 422 and "format" in bad.json()["detail"]
    other = api.client.get(f"/v1/searches/{sid}/trials", params={"format": "csv"}, headers=api.auth(api.bob))
    assert other.status_code == 404
