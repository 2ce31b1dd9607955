"""Client commands on a search's results: ``trials`` (export every trial as CSV or JSON) and ``extend``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from dropsearch.cli._common import EXIT_USAGE, ApiKeyOpt, DataDirOpt, UrlOpt, api_errors, err_console, fail, make_client

__all__ = ["FORMATS", "extend", "trials"]

FORMATS = ("csv", "json")
SearchIdArg = Annotated[str, typer.Argument(help="The search id (printed by `dropsearch submit`).")]


def trials(
    search_id: SearchIdArg,
    format_: Annotated[str, typer.Option("--format", "-f", help="csv (one row per trial) or json (a list).")] = "csv",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write here instead of printing.")] = None,
    url: UrlOpt = None,
    api_key: ApiKeyOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Export every trial of a search (CSV: one row per trial, per-epoch metrics as columns; or JSON).

    Columns: index, tokens, variant, per-site rates, reward, status, epoch_N.<metric>, timings and node.
    """
    if format_ not in FORMATS:
        fail(f"--format must be one of {', '.join(FORMATS)}, got {format_!r}", EXIT_USAGE)
    client = make_client(url, api_key, data_dir)
    with client, api_errors(client.base_url):
        if format_ == "csv":
            text = client.trials_csv(search_id)
            count = max(0, len(text.splitlines()) - 1)
        else:
            every = client.all_trials(search_id)
            text, count = json.dumps(every, indent=2) + "\n", len(every)
    if output is None:
        typer.echo(text, nl=False)
        return
    try:
        output.write_text(text, encoding="utf-8", newline="")
    except OSError as exc:
        fail(f"cannot write {output}: {exc} (choose another --output path)", EXIT_USAGE)
    err_console.print(f"{count} trial(s) of search {search_id} -> {escape(str(output))} ({format_})")


def extend(
    search_id: SearchIdArg,
    more: Annotated[int, typer.Argument(min=1, help="How many trials to add.")],
    url: UrlOpt = None,
    api_key: ApiKeyOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Continue a succeeded search with more trials (its controller goes on; finished trials are kept).

    The search is queued again and the runner runs the new trials only.
    """
    client = make_client(url, api_key, data_dir)
    with client, api_errors(client.base_url):
        search = client.extend(search_id, more)
    total = search["progress"]["trials_total"]
    err_console.print(
        f"search {search_id}: {search['status']}, {search['progress']['trials_done']} of {total} trials done; "
        f"follow it with: dropsearch watch {search_id}"
    )
