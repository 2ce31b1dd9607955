"""``dropsearch serve``: the API (uvicorn, in-process), a runner with a local Ray, and SQLite in the data directory.

Start-up order: settings -> migrations -> admin key (the operator's ``admin_key_file``, or made on first start and
shown once, only when stdout is a terminal) -> API -> runner -> URLs; then, with ``--demo``, the demo search is
submitted through the API and watched live. Ctrl+C or SIGTERM stops the runner first (its leases are released, so a
later runner resumes the searches) and then the API.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.panel import Panel

from dropsearch.cli._common import (
    EXIT_ERROR,
    EXIT_USAGE,
    DataDirOpt,
    api_errors,
    console,
    fail,
    key_file,
    load_settings,
    resolve_url,
)

if TYPE_CHECKING:
    from dropsearch.cli._process import ApiServer
    from dropsearch.config import Settings
    from dropsearch.runner.runner import Runner

__all__ = ["DEMO_PATTERN_FILE", "run_demo", "serve"]

DEMO_PATTERN_FILE = "demo-best-pattern.json"


def _is_terminal() -> bool:
    """Whether stdout is an interactive terminal (a container platform or a pipe keeps what is printed as logs)."""
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):  # replaced or closed stdout
        return False


def _show_key(key: str, path: Path, why: str) -> None:
    """Show a new admin key once, on a terminal only; elsewhere say only where its file is."""
    if not _is_terminal():
        console.print(
            Panel(
                f"A new admin API key ({escape(why)}) is in {escape(str(path))} (mode 0600). It is not printed "
                "because\nthe output is not a terminal (logs keep it); read the file on this machine, e.g.\n"
                f'[dim]curl -H "Authorization: Bearer $(cat {escape(str(path))})" ...[/]',
                title="admin API key",
                border_style="green",
                expand=False,
            )
        )
        return
    console.print(
        Panel(
            f"[bold]{key}[/]\n\nShown only this once ({escape(why)}). The CLI reads it from {escape(str(path))} "
            '(mode 0600);\nfor curl: [dim]curl -H "Authorization: Bearer $(cat '
            f'{escape(str(path))})" ...[/]',
            title="admin API key",
            border_style="green",
            expand=False,
        )
    )


def _show_urls(base_url: str, settings: Settings, runner: bool) -> None:
    lines = [
        f"API             {base_url}",
        f"API docs        {base_url}/docs",
        f"Ray dashboard   {settings.ray_dashboard_url}" + ("" if runner else " (no runner in this process)"),
    ]
    if os.environ.get("RAY_AUTH_MODE", "").lower() != "disabled":  # Ray >= 2.52 local clusters use token auth
        token_file = os.environ.get("RAY_AUTH_TOKEN_PATH") or "~/.ray/auth_token"
        lines.append(f"Ray token       in {token_file} (or run `ray get-auth-token`); the dashboard asks for it")
    lines.append(f"admin key file  {key_file(settings).resolve()}")
    lines.append(f"data directory  {Path(settings.data_dir).resolve()}")
    console.print(Panel("\n".join(lines), title="dropsearch is serving", expand=False))


def run_demo(settings: Settings, base_url: str, api_key: str) -> int:
    """Submit the demo spec through the API, watch it live, save its best pattern; returns the exit code."""
    from dropsearch.cli._watch import watch_search
    from dropsearch.client import Client
    from dropsearch.demo import demo_spec

    try:
        spec = demo_spec()
    except ValueError as exc:
        fail(str(exc), EXIT_USAGE)
    budget = spec["budget"]
    console.rule(f"demo: {budget['trials']} trials x {budget['epochs_per_trial']} epochs of {spec['name']}")
    path = Path(settings.data_dir) / DEMO_PATTERN_FILE
    with Client(base_url, api_key) as client, api_errors(base_url):
        search = client.submit(spec)
        final = watch_search(client, search["id"], console=console)
        if final["status"] != "succeeded":
            console.print(f"[red]the demo search ended {final['status']}: {escape(str(final.get('error')))}[/]")
            return EXIT_ERROR
        pattern = client.best(search["id"], path=path)
    console.print_json(json.dumps(pattern))
    console.print(
        Panel(
            f"best pattern saved to [bold]{escape(str(path.resolve()))}[/]\n\n"
            "use it in your own model:\n"
            "  import json, dropsearch\n"
            f"  applied = dropsearch.apply(model, json.load(open({str(path)!r})))\n"
            "  loss = applied.training_step(inputs, targets, loss_fn)",
            title=f"demo search {search['id']} succeeded",
            border_style="green",
            expand=False,
        )
    )
    return 0


def serve(
    host: Annotated[str | None, typer.Option(help="API bind address. Default: settings.host (127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="API port. Default: settings.port (8000).")] = None,
    data_dir: DataDirOpt = None,
    ray_address: Annotated[
        str | None, typer.Option(help="Join this Ray cluster (e.g. 'auto'). Default: start a local Ray.")
    ] = None,
    demo: Annotated[bool, typer.Option("--demo", help="Submit the demo search and watch it live.")] = False,
    exit_after_demo: Annotated[
        bool, typer.Option("--exit-after-demo", help="With --demo: stop when the demo search ends.")
    ] = False,
    no_runner: Annotated[
        bool, typer.Option("--no-runner", help="Serve the API only (runners run elsewhere: `dropsearch runner`).")
    ] = False,
    dashboard: Annotated[bool, typer.Option(help="Start the local Ray's dashboard.")] = True,
) -> None:
    """Run the API, a runner and a local Ray, with SQLite in the data directory (until Ctrl+C)."""
    from dropsearch.api.app import create_app
    from dropsearch.cli._process import ApiServer, configure_logging, ensure_admin_key, make_runner
    from dropsearch.cli.db import open_engine

    if exit_after_demo and not demo:
        fail("--exit-after-demo needs --demo", EXIT_USAGE)
    if demo and no_runner:
        console.print("[yellow]--demo with --no-runner: the demo search waits for a runner elsewhere[/]")
    settings = load_settings(host=host, port=port, data_dir=data_dir, ray_address=ray_address)
    configure_logging(settings.log_level)
    Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    engine = open_engine(settings)  # migrates when settings.migrate_on_start
    try:
        key, why = ensure_admin_key(settings, engine)
    finally:
        engine.dispose()
    if why is not None:
        _show_key(key, key_file(settings), why)
    server = ApiServer(create_app(settings, migrate=False), settings.host, settings.port, settings.log_level)
    runner = None if no_runner else make_runner(settings, ray_address=settings.ray_address, dashboard=dashboard)
    keep = not (demo and exit_after_demo)
    code = _serve_until_stopped(server, runner, settings, resolve_url(None, settings), key, demo, keep)
    if code:
        raise typer.Exit(code)


def _serve_until_stopped(
    server: ApiServer, runner: Runner | None, settings: Settings, base_url: str, key: str, demo: bool, keep: bool
) -> int:
    """Start the server and the runner, run the demo, wait for a signal; always stop all. Returns the exit code."""
    from dropsearch.cli._process import interrupt_on_signals, patient_signals, shutdown_ray

    code = 0
    with interrupt_on_signals():
        try:
            try:
                server.start()
            except RuntimeError as exc:
                fail(str(exc))
            if runner is not None:
                runner.start()
            _show_urls(base_url, settings, runner is not None)
            if demo:
                code = run_demo(settings, base_url, key)
            if keep:
                if demo:
                    console.print("still serving: Ctrl+C to stop")
                while server.alive:
                    time.sleep(0.5)
                console.print("[red]the API server stopped unexpectedly[/]")
                code = EXIT_ERROR
        except KeyboardInterrupt as exc:
            console.print(f"{exc or 'interrupted'}: stopping")
        finally:
            with patient_signals():
                if runner is not None:
                    runner.stop(timeout=30.0)
                server.stop()
                shutdown_ray()
    console.print("stopped")
    return code
