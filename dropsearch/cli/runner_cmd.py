"""``dropsearch runner``: a runner alone (no API), e.g. on a Ray head node, until Ctrl+C or SIGTERM.

It migrates the database first (when ``settings.migrate_on_start``), then claims queued searches and resumes
interrupted ones; on a signal it stops and releases its leases so that another runner can resume its searches.
"""

from __future__ import annotations

import time
from typing import Annotated

import typer

from dropsearch.cli._common import DatabaseUrlOpt, DataDirOpt, console, load_settings

__all__ = ["runner"]


def runner(
    ray_address: Annotated[
        str | None,
        typer.Option(help="Join this Ray cluster ('auto', 'host:6379', 'ray://head:10001'). Default: a local Ray."),
    ] = None,
    runner_id: Annotated[
        str | None,
        typer.Option(help="A readable prefix of the runner's id (a per-process suffix is always added)."),
    ] = None,
    data_dir: DataDirOpt = None,
    database_url: DatabaseUrlOpt = None,
) -> None:
    """Run searches from the database on Ray (no API) until Ctrl+C."""
    from dropsearch.cli._process import (
        configure_logging,
        interrupt_on_signals,
        make_runner,
        patient_signals,
        shutdown_ray,
    )
    from dropsearch.cli.db import open_engine

    settings = load_settings(data_dir=data_dir, database_url=database_url, ray_address=ray_address)
    configure_logging(settings.log_level)
    open_engine(settings).dispose()  # migrated (or checked) before the runner touches the tables
    service = make_runner(settings, runner_id=runner_id, ray_address=settings.ray_address)
    where = settings.ray_address or "a local Ray"
    with interrupt_on_signals():
        try:
            service.start()
            console.print(f"runner [bold]{service.runner_id}[/] polling for searches on {where}; Ctrl+C to stop")
            while True:
                time.sleep(1.0)
        except KeyboardInterrupt as exc:
            console.print(f"{exc or 'interrupted'}: stopping the runner (releasing its leases)")
        finally:
            with patient_signals():
                service.stop(timeout=30.0)
                shutdown_ray()
    console.print("stopped")
