"""The ``dropsearch`` command line (Typer + Rich).

Commands: ``serve``, ``runner``, ``submit``, ``watch``, ``best``, ``list``, ``cancel``, ``keys`` and ``db``.
Importing this package imports neither torch nor Ray nor the API: every command imports what it needs when it
runs, so ``dropsearch --help`` is fast.
"""

from __future__ import annotations

import typer

from dropsearch import __version__
from dropsearch.cli import db, keys, runner_cmd, searches, serve

__all__ = ["app", "main"]

app = typer.Typer(
    name="dropsearch",
    help="Search for the best dropout regularization of a neural network.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"dropsearch {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """Search for the best dropout regularization of a neural network."""


app.command(rich_help_panel="Service")(serve.serve)
app.command("runner", rich_help_panel="Service")(runner_cmd.runner)
app.command(rich_help_panel="Searches")(searches.submit)
app.command(rich_help_panel="Searches")(searches.watch)
app.command(rich_help_panel="Searches")(searches.best)
app.command("list", rich_help_panel="Searches")(searches.list_searches)
app.command(rich_help_panel="Searches")(searches.cancel)
app.add_typer(keys.app, name="keys", rich_help_panel="Administration")
app.add_typer(db.app, name="db", rich_help_panel="Administration")


def main() -> None:
    """Run the CLI (``python -m dropsearch.cli``)."""
    app()
