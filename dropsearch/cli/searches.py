"""Client commands over the HTTP API: ``submit``, ``watch``, ``best``, ``list``, ``cancel`` and ``resume``.

``submit`` prints only the new search's id on stdout (``ID=$(dropsearch submit spec.json)``); messages go to stderr.
``watch`` exits 0 when the search succeeded and 1 when it failed or was cancelled.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from dropsearch.cli._common import (
    EXIT_USAGE,
    ApiKeyOpt,
    DataDirOpt,
    UrlOpt,
    api_errors,
    console,
    err_console,
    fail,
    make_client,
)

__all__ = ["SEARCH_STATUSES", "best", "cancel", "list_searches", "load_spec", "submit", "watch"]

SearchIdArg = Annotated[str, typer.Argument(help="The search id (printed by `dropsearch submit`).")]


#: Search statuses ``list --status`` accepts (the store's ``SEARCH_STATUSES``; not imported: keeps --help fast).
SEARCH_STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
_YAML_SUFFIXES = (".yaml", ".yml")


def _read_spec_file(path: Path) -> Any:
    """The parsed content of a JSON or (``.yaml``/``.yml``) YAML spec file; exits 2 naming the problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        fail(f"spec file not found: {path} (check the path; `dropsearch submit --help` shows an example)", EXIT_USAGE)
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"cannot read spec file {path}: {exc}", EXIT_USAGE)
    if path.suffix.lower() in _YAML_SUFFIXES:
        import yaml

        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
            fail(f"{path} is not valid YAML{where}: {getattr(exc, 'problem', None) or exc}", EXIT_USAGE)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        hint = " (a YAML spec needs a .yaml or .yml name)" if exc.lineno == 1 and exc.colno == 1 else ""
        fail(f"{path} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}{hint}", EXIT_USAGE)


def load_spec(path: Path) -> dict[str, Any]:
    """Read and validate a job spec file (JSON, or YAML when named ``.yaml``/``.yml``); exits 2 listing every error.

    Returns:
        The spec as JSON-ready data (defaults filled in), ready for ``POST /v1/searches``.
    """
    from pydantic import ValidationError

    from dropsearch.search.spec import SearchSpec

    raw = _read_spec_file(path)
    if not isinstance(raw, dict):
        fail(f"{path} must hold a JSON object or YAML mapping (the job spec), got {type(raw).__name__}", EXIT_USAGE)
    try:
        spec = SearchSpec.model_validate(raw)
    except ValidationError as exc:
        err_console.print(f"{escape(str(path))}: {exc.error_count()} invalid field(s)", soft_wrap=True)
        table = Table()
        table.add_column("field", style="bold")
        table.add_column("problem")
        for error in exc.errors():
            field = ".".join(str(part) for part in error["loc"]) or "(spec)"
            table.add_row(escape(field), escape(error["msg"]))
        err_console.print(table)
        fail("the job spec is invalid; nothing was submitted", EXIT_USAGE)
    return spec.model_dump(mode="json")


def submit(
    spec_file: Annotated[Path, typer.Argument(help="Job spec file: JSON, or YAML when named .yaml/.yml.")],
    url: UrlOpt = None,
    api_key: ApiKeyOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Validate a job spec locally, submit it, and print the new search's id."""
    body = load_spec(spec_file)
    client = make_client(url, api_key, data_dir)
    with client, api_errors(client.base_url):
        search = client.submit(body)
    err_console.print(
        f"submitted search [bold]{search['id']}[/] ({escape(search.get('name') or '')}, {search['status']}); "
        f"follow it with: dropsearch watch {search['id']}"
    )
    typer.echo(search["id"])


def watch(search_id: SearchIdArg, url: UrlOpt = None, api_key: ApiKeyOpt = None, data_dir: DataDirOpt = None) -> None:
    """Follow a search live (progress, trials, best so far) until it ends; exit 1 unless it succeeded."""
    from dropsearch.cli._watch import watch_search

    client = make_client(url, api_key, data_dir)
    with client, api_errors(client.base_url):
        final = watch_search(client, search_id, console=console)
    if final["status"] != "succeeded":
        fail(f"search {search_id} ended {final['status']}" + (f": {final['error']}" if final.get("error") else ""))
    console.print(f"search {search_id} succeeded; its best pattern: dropsearch best {search_id} -o pattern.json")


def best(
    search_id: SearchIdArg,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the pattern here instead of printing it.")
    ] = None,
    url: UrlOpt = None,
    api_key: ApiKeyOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Download the best pattern of a search (JSON; use it with dropsearch.apply).

    Once the search's validation stage has a result, the best pattern is the validated arm's; its table (mean ± sd
    per arm, the paired gap to each baseline with its 95% interval) and conclusion are printed first, on stderr.
    """
    client = make_client(url, api_key, data_dir)
    with client, api_errors(client.base_url):
        pattern = client.best(search_id, path=output)
    if pattern.get("validation"):
        from dropsearch.cli._validation import validation_view

        err_console.print(validation_view(pattern["validation"]))
    if output is None:
        typer.echo(json.dumps(pattern, indent=2))
        return
    provenance = pattern.get("provenance") or {}
    arm = escape(str(provenance.get("arm")))
    validated = f" (validated arm {arm}, mean over its seeds)" if provenance.get("validated") else ""
    err_console.print(
        f"best pattern of search {search_id}{validated}: variant [bold]{escape(str(pattern.get('variant')))}[/], "
        f"{len(pattern.get('sites') or [])} site(s), {provenance.get('metric', 'reward')} "
        f"{provenance.get('reward')} -> {escape(str(output))}"
    )


def list_searches(
    status: Annotated[
        str | None, typer.Option(help=f"Only searches with this status: one of {', '.join(SEARCH_STATUSES)}.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=200, help="How many (newest first).")] = 20,
    offset: Annotated[int, typer.Option(min=0, help="Skip this many.")] = 0,
    url: UrlOpt = None,
    api_key: ApiKeyOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """List your searches, newest first."""
    if status is not None and status not in SEARCH_STATUSES:
        fail(f"--status must be one of {', '.join(SEARCH_STATUSES)}, got {status!r}", EXIT_USAGE)
    client = make_client(url, api_key, data_dir)
    with client, api_errors(client.base_url):
        page = client.list(limit=limit, offset=offset, status=status)
    table = Table(title=f"{len(page['data'])} of {page['count']} search(es)", title_justify="left")
    for column in ("id", "name", "status", "trials", "best reward", "created"):
        table.add_column(column, no_wrap=column == "id")
    for search in page["data"]:
        progress = search["progress"]
        reward = search.get("best_reward")
        table.add_row(
            search["id"],
            escape(search.get("name") or ""),
            search["status"],
            f"{progress['trials_done']}/{progress['trials_total']}",
            "-" if reward is None else f"{reward:.4f}",
            str(search["created_at"])[:19].replace("T", " "),
        )
    console.print(table)


def cancel(search_id: SearchIdArg, url: UrlOpt = None, api_key: ApiKeyOpt = None, data_dir: DataDirOpt = None) -> None:
    """Cancel a search: queued ones at once, running ones when the runner sees the request."""
    client = make_client(url, api_key, data_dir)
    with client, api_errors(client.base_url):
        search = client.cancel(search_id)
    note = "" if search["status"] == "cancelled" else " (cancel requested; the runner stops its trials)"
    console.print(f"search {search_id}: {search['status']}{note}")


def resume(search_id: SearchIdArg, url: UrlOpt = None, api_key: ApiKeyOpt = None, data_dir: DataDirOpt = None) -> None:
    """Resume a failed or cancelled search; its finished trials are kept, the rest run."""
    client = make_client(url, api_key, data_dir)
    with client, api_errors(client.base_url):
        search = client.resume(search_id)
    done, total = search["progress"]["trials_done"], search["progress"]["trials_total"]
    console.print(
        f"search {search_id}: {search['status']} again ({done}/{total} trials kept); follow it with: "
        f"dropsearch watch {search_id}"
    )
