"""``submit``, ``watch``, ``best``, ``list`` and ``cancel`` against a real API (uvicorn + SQLite).

The runner is simulated through the store's own functions (``tests/api/runner_sim.py``), so these stay fast;
``test_serve_e2e.py`` runs the same commands against ``dropsearch serve`` with the real runner.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import httpx

from dropsearch.search.spec import SearchSpec
from tests.api import runner_sim

SPEC = runner_sim.spec("cli-test", trials=2, epochs_per_trial=2, max_concurrent=1)


def _spec_file(tmp_path: Path, spec: object = SPEC, name: str = "spec.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(spec))
    return path


def _api(served, method: str, path: str) -> httpx.Response:
    return httpx.request(method, served.url + path, headers={"Authorization": f"Bearer {served.key}"})


def test_submit_prints_the_id_and_stores_the_validated_spec(cli, served, tmp_path: Path) -> None:
    result = cli("submit", _spec_file(tmp_path), "--url", served.url, "--data-dir", served.data_dir)
    assert result.exit_code == 0, result.output
    search_id = result.stdout.strip()
    assert len(search_id) == 32 and "dropsearch watch" in result.stderr
    stored = _api(served, "GET", f"/v1/searches/{search_id}").json()
    assert stored["status"] == "queued"
    assert stored["spec"] == SearchSpec.model_validate(SPEC).model_dump(mode="json")


def test_submit_reports_every_invalid_field_and_submits_nothing(cli, served, tmp_path: Path) -> None:
    bad = {**SPEC, "budget": {"trials": 0, "max_concurrent": 1}, "model": {"name": "nope"}, "colour": "red"}
    result = cli("submit", _spec_file(tmp_path, bad), "--url", served.url, "--data-dir", served.data_dir)
    assert result.exit_code == 2
    for field in ("budget.trials", "model.name", "colour"):
        assert field in result.stderr
    assert "3 invalid field(s)" in result.stderr and "nothing was submitted" in result.stderr
    assert _api(served, "GET", "/v1/searches").json()["count"] == 0


def test_submit_refuses_unreadable_input_before_any_request(cli, tmp_path: Path) -> None:
    url = "http://127.0.0.1:9"  # nothing listens: reaching the network would exit 1, not 2
    broken = tmp_path / "broken.json"
    broken.write_text('{"model": ')
    cases = {
        "missing.json": "spec file not found",
        broken.name: "is not valid JSON",
        _spec_file(tmp_path, [1, 2], "list.json").name: "must hold a JSON object",
    }
    for name, message in cases.items():
        result = cli("submit", tmp_path / name, "--url", url, "--api-key", "ds_x")
        assert result.exit_code == 2 and message in result.stderr, (name, result.output)


def test_client_commands_explain_a_missing_key_and_an_unreachable_server(cli, tmp_path: Path) -> None:
    spec = _spec_file(tmp_path)
    no_key = cli("submit", spec, "--url", "http://127.0.0.1:9", "--data-dir", tmp_path / "empty")
    assert no_key.exit_code == 2
    assert "no API key" in no_key.stderr and str(tmp_path / "empty" / "admin.key") in no_key.stderr
    down = cli("list", "--url", "http://127.0.0.1:9", "--api-key", "ds_x")
    assert down.exit_code == 1 and "cannot reach the dropsearch API at http://127.0.0.1:9" in down.stderr


def test_key_and_url_resolution_order(cli, served, tmp_path: Path) -> None:
    # The key file of the data dir, the URL from the environment.
    env = {"DROPSEARCH_URL": served.url, "DROPSEARCH_DATA_DIR": str(served.data_dir)}
    assert cli("list", env=env).exit_code == 0
    # The env key wins over the key file; --api-key wins over the env key.
    bad_env = cli("list", env={**env, "DROPSEARCH_API_KEY": "ds_wrong"})
    assert bad_env.exit_code == 1 and "401" in bad_env.stderr and "API key" in bad_env.stderr
    assert cli("list", "--api-key", served.key, env={**env, "DROPSEARCH_API_KEY": "ds_wrong"}).exit_code == 0
    # --url wins over the env URL.
    assert cli("list", "--url", "http://127.0.0.1:9", env=env).exit_code == 1


def test_watch_follows_a_search_to_the_end_and_best_downloads_its_pattern(cli, served, tmp_path: Path) -> None:
    search_id = cli("submit", _spec_file(tmp_path), "--url", served.url, "--data-dir", served.data_dir).stdout.strip()

    def runner() -> None:
        time.sleep(0.3)
        runner_sim.claim(served.engine, search_id)
        runner_sim.run_trial(served.engine, search_id, 0, 0.61, variant="dropblock")
        time.sleep(0.2)
        runner_sim.run_trial(served.engine, search_id, 1, 0.83, variant="autodropout")
        runner_sim.finish(served.engine, search_id)

    thread = threading.Thread(target=runner)
    thread.start()
    watched = cli("watch", search_id, "--url", served.url, "--data-dir", served.data_dir)
    thread.join()
    assert watched.exit_code == 0, watched.output
    out = watched.stdout
    assert "trial.finished" in out and "succeeded" in out and "2/2" in out
    assert "0.6100" in out and "0.8300" in out and "best so far: 0.8300 (trial 1, autodropout)" in out

    target = tmp_path / "pattern.json"
    best = cli("best", search_id, "-o", target, "--url", served.url, "--data-dir", served.data_dir)
    assert best.exit_code == 0, best.output
    assert json.loads(target.read_text()) == _api(served, "GET", f"/v1/searches/{search_id}/best").json()
    assert json.loads(target.read_text())["variant"] == "autodropout" and "autodropout" in best.stderr
    printed = cli("best", search_id, "--url", served.url, "--data-dir", served.data_dir)
    assert json.loads(printed.stdout) == json.loads(target.read_text())

    listed = cli("list", "--url", served.url, "--data-dir", served.data_dir)
    assert listed.exit_code == 0 and search_id in listed.stdout and "2/2" in listed.stdout


def test_watch_exits_1_for_a_failed_search(cli, served, tmp_path: Path) -> None:
    search_id = cli("submit", _spec_file(tmp_path), "--url", served.url, "--data-dir", served.data_dir).stdout.strip()
    runner_sim.claim(served.engine, search_id)
    runner_sim.finish(served.engine, search_id, status="failed", error="RuntimeError: out of memory")
    watched = cli("watch", search_id, "--url", served.url, "--data-dir", served.data_dir)
    assert watched.exit_code == 1
    assert f"search {search_id} ended failed: RuntimeError: out of memory" in watched.stderr


def test_cancel_and_unknown_ids(cli, served, tmp_path: Path) -> None:
    search_id = cli("submit", _spec_file(tmp_path), "--url", served.url, "--data-dir", served.data_dir).stdout.strip()
    cancelled = cli("cancel", search_id, "--url", served.url, "--data-dir", served.data_dir)
    assert cancelled.exit_code == 0 and f"search {search_id}: cancelled" in cancelled.stdout
    assert _api(served, "GET", f"/v1/searches/{search_id}").json()["status"] == "cancelled"
    listed = cli("list", "--status", "cancelled", "--url", served.url, "--data-dir", served.data_dir)
    assert search_id in listed.stdout
    # Another owner's key sees nothing of it (404), and an unknown id is a 404 too.
    for args in (["watch", search_id, "--api-key", served.other_key], ["best", "f" * 32]):
        result = cli(*args, "--url", served.url, "--data-dir", served.data_dir)
        assert result.exit_code == 1 and "404" in result.stderr, args
