"""The ``dropsearch`` command line (Typer + Rich).

Commands: ``serve``, ``runner``, ``submit``, ``watch``, ``best``, ``list``, ``cancel``, ``resume``, ``trials``,
``extend``, ``keys`` and ``db``.
Importing this package imports neither torch nor Ray nor the API: every command imports what it needs when it
runs, so ``dropsearch --help`` is fast.
"""

from __future__ import annotations

import typer

from dropsearch import __version__
from dropsearch.cli import db, keys, results, runner_cmd, searches, serve

__all__ = ["EXAMPLES", "app", "main"]

#: One example (or two) per command, shown at the end of its --help.
EXAMPLES = {
    "serve": "dropsearch serve --port 8000\n\ndropsearch serve --demo --exit-after-demo",
    "runner": "dropsearch runner --ray-address auto",
    "submit": "ID=$(dropsearch submit spec.yaml)   (JSON, or YAML when named .yaml/.yml)",
    "watch": "dropsearch watch $ID",
    "best": "dropsearch best $ID -o pattern.json",
    "list": "dropsearch list --status running --limit 10",
    "cancel": "dropsearch cancel $ID",
    "resume": "dropsearch resume $ID   (a failed or cancelled search; then: dropsearch watch $ID)",
    "trials": "dropsearch trials $ID --format csv -o trials.csv",
    "extend": "dropsearch extend $ID 16   (then: dropsearch watch $ID)",
}


def _epilog(name: str) -> str:
    return f"Example: {EXAMPLES[name]}"


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


app.command(rich_help_panel="Service", epilog=_epilog("serve"))(serve.serve)
app.command("runner", rich_help_panel="Service", epilog=_epilog("runner"))(runner_cmd.runner)
app.command(rich_help_panel="Searches", epilog=_epilog("submit"))(searches.submit)
app.command(rich_help_panel="Searches", epilog=_epilog("watch"))(searches.watch)
app.command(rich_help_panel="Searches", epilog=_epilog("best"))(searches.best)
app.command("list", rich_help_panel="Searches", epilog=_epilog("list"))(searches.list_searches)
app.command(rich_help_panel="Searches", epilog=_epilog("cancel"))(searches.cancel)
app.command(rich_help_panel="Searches", epilog=_epilog("resume"))(searches.resume)
app.command(rich_help_panel="Searches", epilog=_epilog("trials"))(results.trials)
app.command(rich_help_panel="Searches", epilog=_epilog("extend"))(results.extend)
app.add_typer(keys.app, name="keys", rich_help_panel="Administration")
app.add_typer(db.app, name="db", rich_help_panel="Administration")


def main() -> None:
    """Run the CLI (``python -m dropsearch.cli``)."""
    app()
