"""The live view of ``watch``: its rendering, and the terminal (Rich Live) path against a real API."""

from __future__ import annotations

import io
import threading

from rich.console import Console

from dropsearch.cli._watch import MAX_ROWS, render_search, watch_search
from dropsearch.client import Client
from tests.api import runner_sim


def _text(renderable: object, width: int = 140) -> str:
    console = Console(file=io.StringIO(), width=width, color_system=None)
    console.print(renderable)
    return console.file.getvalue()


def _trial(index: int, reward: float | None, status: str = "succeeded", variant: str = "ydrop") -> dict:
    pattern = {"variant": variant}
    return {
        "id": f"t{index}",
        "index": index,
        "status": status,
        "pattern": pattern,
        "metrics": [{}] * (index % 3),
        "reward": reward,
        "node": "node-a",
    }


def _search(done: int, total: int, best: str | None, reward: float | None, status: str = "running") -> dict:
    return {
        "id": "s1",
        "name": "demo",
        "status": status,
        "progress": {"trials_done": done, "trials_total": total},
        "best_trial_id": best,
        "best_reward": reward,
        "error": None,
        "spec": {"objective": {"metric": "val_accuracy", "mode": "max"}},
    }


def test_render_shows_progress_rows_and_the_best_trial() -> None:
    trials = [_trial(0, 0.5, variant="gsnr"), _trial(1, 0.75, variant="dropblock"), _trial(2, None, "running")]
    text = _text(render_search(_search(2, 8, "t1", 0.75), trials))
    assert "2/8" in text and "objective: val_accuracy (max)" in text
    rows = [line for line in text.splitlines() if "node-a" in line]
    assert len(rows) == 3
    assert "gsnr" in rows[0] and "0.5000" in rows[0] and "succeeded" in rows[0]
    assert "dropblock *" in rows[1] and "0.7500" in rows[1]  # the best trial is starred
    assert "running" in rows[2] and " - " in rows[2] and rows[2].count("2") >= 2  # index 2, 2 epochs, no reward
    assert "best so far: 0.7500 (trial 1, dropblock)" in text


def test_render_keeps_the_newest_rows_of_a_long_search() -> None:
    trials = [_trial(i, i / 100) for i in range(MAX_ROWS + 5)]
    text = _text(render_search(_search(MAX_ROWS + 5, 64, None, None), trials))
    assert f"newest {MAX_ROWS} of {MAX_ROWS + 5} trials" in text
    assert "0.0400" not in text and "0.0500" in text and f"{(MAX_ROWS + 4) / 100:.4f}" in text
    assert "best so far: -" in text


def test_live_view_on_a_terminal_ends_with_the_final_state(served, tmp_path) -> None:
    with Client(served.url, served.key) as client:
        search_id = client.submit(
            {
                "model": {"name": "convnet"},
                "dataset": {"name": "digits"},
                "budget": {"trials": 1, "epochs_per_trial": 1, "max_concurrent": 1},
            }
        )["id"]

        def runner() -> None:
            runner_sim.claim(served.engine, search_id)
            runner_sim.run_trial(served.engine, search_id, 0, 0.9, epochs=1, variant="bernoulli")
            runner_sim.finish(served.engine, search_id)

        thread = threading.Thread(target=runner)
        thread.start()
        out = io.StringIO()
        console = Console(file=out, force_terminal=True, width=120, color_system=None)
        final = watch_search(client, search_id, console=console)
        thread.join()
    assert final["status"] == "succeeded" and final["progress"]["trials_done"] == 1
    text = out.getvalue()
    assert "best so far: 0.9000 (trial 0, bernoulli)" in text and "1/1" in text
