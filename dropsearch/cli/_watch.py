"""The live view of one search (``dropsearch watch`` and ``dropsearch serve --demo``).

The view follows the search's server-sent events (:meth:`dropsearch.client.Client.events`) until ``end``; each
event only says *that* something changed, and the view re-reads the search and its trials through the API (at
most a few times a second), so it does not depend on the payload of any event kind. On a terminal it is a Rich
live display (progress bar, trials table, best so far, and the validation stage's table once it has one; validation
runs are marked with their arm and seed); elsewhere (CI logs, pipes) it prints one line per event and the final
view.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

if TYPE_CHECKING:
    from dropsearch.client import Client

__all__ = ["fetch_trials", "render_search", "watch_search"]

MAX_ROWS = 20  # trials shown in the table: the newest ones (the best one is named below the table)
_REFRESH_S = 0.4  # least time between two re-reads of the search on event bursts
_STATUS_STYLE = {
    "queued": "dim",
    "running": "yellow",
    "succeeded": "green",
    "stopped": "cyan",
    "failed": "red",
    "cancelled": "magenta",
}


def fetch_trials(client: Client, search_id: str) -> list[dict[str, Any]]:
    """Every trial of the search, by index (pages of 200)."""
    trials: list[dict[str, Any]] = []
    while True:
        page = client.trials(search_id, limit=200, offset=len(trials))
        trials.extend(page["data"])
        if not page["data"] or len(trials) >= page["count"]:
            return trials


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _styled(status: str) -> str:
    return f"[{_STATUS_STYLE.get(status, 'white')}]{escape(status)}[/]"


def _run(trial: dict[str, Any]) -> str:
    """What a trial is: ``search``, or ``validation <arm> seed <seed>`` for a re-training of the validation stage."""
    if trial.get("kind", "search") != "validation":
        return "search"
    return f"validation {escape(str(trial.get('arm')))} seed {trial.get('seed')}"


def _trials_table(trials: list[dict[str, Any]], best_id: str | None) -> Table:
    table = Table(expand=False, title_justify="left")
    validation = any(t.get("kind") == "validation" for t in trials)
    columns = [("#", "right"), ("variant", "left"), ("status", "left"), ("epochs", "right")]
    if validation:
        columns.insert(1, ("run", "left"))
    for name, justify in columns:
        table.add_column(name, justify=justify)
    table.add_column("reward", justify="right")
    table.add_column("node", overflow="fold")
    shown = trials[-MAX_ROWS:]
    if len(trials) > len(shown):
        table.caption = f"newest {len(shown)} of {len(trials)} trials"
    for trial in shown:
        variant = (trial.get("pattern") or {}).get("variant", "-")
        mark = " *" if trial["id"] == best_id else ""
        run = [_run(trial)] if validation else []
        table.add_row(
            str(trial["index"]),
            *run,
            escape(str(variant)) + mark,
            _styled(trial["status"]),
            str(len(trial.get("metrics") or [])),
            _fmt(trial.get("reward")),
            escape(trial.get("node") or "-"),
        )
    return table


def render_search(search: dict[str, Any], trials: list[dict[str, Any]]) -> RenderableType:
    """The view: a header, a progress bar (trials done / total), the trials table and the best so far."""
    progress = Progress(
        TextColumn("trials"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), auto_refresh=False
    )
    total = max(1, int(search["progress"]["trials_total"]))
    progress.add_task("trials", total=total, completed=min(total, int(search["progress"]["trials_done"])))
    objective = (search.get("spec") or {}).get("objective") or {}
    metric = f"{objective.get('metric', 'reward')} ({objective.get('mode', 'max')})"
    header = (
        f"[bold]{escape(search.get('name') or '')}[/] [dim]{search['id']}[/]  status: {_styled(search['status'])}"
        f"  objective: {escape(metric)}"
    )
    best = next((t for t in trials if t["id"] == search.get("best_trial_id")), None)
    if best is None:
        best_line = "best so far: -"
    else:
        variant = (best.get("pattern") or {}).get("variant", "-")
        best_line = f"best so far: [bold]{_fmt(search.get('best_reward'))}[/] (trial {best['index']}, {variant})"
    parts: list[RenderableType] = [header, progress, _trials_table(trials, search.get("best_trial_id"))]
    parts.append(best_line)
    if search.get("validation"):
        from dropsearch.cli._validation import validation_view

        parts.append(validation_view(search["validation"]))
    if search.get("error"):
        parts.append(f"[red]error: {escape(str(search['error']))}[/]")
    return Group(*parts)


def _event_line(event: dict[str, Any]) -> str:
    data = event.get("data")
    if not isinstance(data, dict):
        return f"{event['event']}"
    keys = ("index", "kind", "arm", "seed", "status", "epoch", "reward", "variant", "node", "updates", "error")
    shown = ", ".join(f"{k}={data[k]}" for k in keys if data.get(k) is not None)
    if isinstance(data.get("validation"), dict):  # validation_updated: the chosen arm so far, not the whole report
        shown = f"final={data.get('final')}, chosen={data['validation'].get('chosen')}"
    return f"{event['event']}" + (f" ({shown})" if shown else "")


def watch_search(client: Client, search_id: str, *, console: Console | None = None) -> dict[str, Any]:
    """Follow a search until its event stream ends, showing the live view; returns the final search.

    Raises:
        ApiError: for an unknown search (404) or a bad key (401).
    """
    console = console or Console()
    search, trials = client.get(search_id), fetch_trials(client, search_id)
    live_view = console.is_terminal
    last_fetch = time.monotonic()

    def refresh(force: bool) -> None:
        nonlocal search, trials, last_fetch
        if force or time.monotonic() - last_fetch >= _REFRESH_S:
            search, trials = client.get(search_id), fetch_trials(client, search_id)
            last_fetch = time.monotonic()

    if live_view:
        with Live(render_search(search, trials), console=console, refresh_per_second=4) as live:
            for event in client.events(search_id):
                refresh(force=event["event"] == "end")
                live.update(render_search(search, trials))
    else:
        console.print(f"watching search {search_id} ({search['status']})")
        for event in client.events(search_id):
            if event["event"] != "end":
                console.print(escape(_event_line(event)), highlight=False)
        refresh(force=True)
        console.print(render_search(search, trials))
    return search
