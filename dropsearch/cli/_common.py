"""Shared pieces of the CLI: settings with command-line overrides, the admin key file, the API client, errors.

Resolution rules of the client commands (``submit``, ``watch``, ``best``, ``list``, ``cancel``):

- API key: ``--api-key`` > env ``DROPSEARCH_API_KEY`` > the file ``admin_key_file`` (the operator's) or
  ``<data_dir>/admin.key`` (written by ``serve``);
- URL: ``--url`` > env ``DROPSEARCH_URL`` > ``http://{settings.host}:{settings.port}``.

Nothing here imports torch, Ray or httpx at import time: ``dropsearch --help`` stays fast.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

if TYPE_CHECKING:
    from dropsearch.client import Client
    from dropsearch.config import Settings

__all__ = [
    "EXIT_ERROR",
    "EXIT_USAGE",
    "KEY_FILE_NAME",
    "ApiKeyOpt",
    "DataDirOpt",
    "DatabaseUrlOpt",
    "UrlOpt",
    "api_errors",
    "console",
    "err_console",
    "fail",
    "key_file",
    "load_settings",
    "make_client",
    "read_key_file",
    "resolve_api_key",
    "resolve_url",
    "write_key_file",
]

EXIT_ERROR = 1  # the operation failed (API error, server unreachable, search failed)
EXIT_USAGE = 2  # bad input (invalid spec, missing file, no API key); Typer uses 2 for usage errors too
KEY_FILE_NAME = "admin.key"

console = Console()
err_console = Console(stderr=True)

UrlOpt = Annotated[
    str | None,
    typer.Option("--url", envvar="DROPSEARCH_URL", help="API base URL. Default: http://<settings.host>:<port>."),
]
ApiKeyOpt = Annotated[
    str | None,
    typer.Option(
        "--api-key",
        envvar="DROPSEARCH_API_KEY",
        help="Bearer key. Default: the file of DROPSEARCH_ADMIN_KEY_FILE, else <data-dir>/admin.key.",
    ),
]
DataDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--data-dir", envvar="DROPSEARCH_DATA_DIR", help="Data directory (database, admin.key). Default: .dropsearch"
    ),
]
DatabaseUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        envvar="DROPSEARCH_DATABASE_URL",
        help="SQLAlchemy URL. Default: sqlite:///<data-dir>/dropsearch.db",
    ),
]


def fail(message: str, code: int = EXIT_ERROR) -> NoReturn:
    """Print ``error: message`` in red on stderr and exit with ``code``."""
    err_console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    raise typer.Exit(code)


def load_settings(**overrides: Any) -> Settings:
    """The settings from the environment, with the command-line values that were given (not ``None``) on top."""
    from pydantic import ValidationError

    from dropsearch.config import Settings

    values = {name: value for name, value in overrides.items() if value is not None}
    try:
        return Settings(**values)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        fail(f"invalid settings (check the DROPSEARCH_* environment): {problems}", EXIT_USAGE)


def key_file(settings: Settings) -> Path:
    """Where the admin key is: the operator's ``admin_key_file`` when set, else ``<data_dir>/admin.key``."""
    if settings.admin_key_file is not None:
        return Path(settings.admin_key_file)
    return Path(settings.data_dir) / KEY_FILE_NAME


def write_key_file(path: Path, key: str) -> None:
    """Write ``key`` to ``path`` with mode 0600 (owner only), atomically (temporary file, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # the umask cannot widen it, but an existing tmp file could have other bits
        os.write(fd, (key + "\n").encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def read_key_file(path: Path) -> str | None:
    """The key stored at ``path``, or ``None`` when the file does not exist or is empty."""
    try:
        key = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return None
    return key or None


def resolve_api_key(api_key: str | None, settings: Settings) -> str:
    """``api_key`` (from ``--api-key`` or ``DROPSEARCH_API_KEY``) or the key file; exits when there is none."""
    if api_key:
        return api_key
    path = key_file(settings)
    try:
        stored = read_key_file(path)
    except OSError as exc:
        fail(f"cannot read the key file {path}: {exc}", EXIT_USAGE)
    if stored is None:
        fail(
            f"no API key: pass --api-key, set DROPSEARCH_API_KEY, or start `dropsearch serve` once (it writes {path})",
            EXIT_USAGE,
        )
    return stored


def resolve_url(url: str | None, settings: Settings) -> str:
    """``url`` (from ``--url`` or ``DROPSEARCH_URL``) or ``http://{settings.host}:{settings.port}``."""
    if url:
        return url.rstrip("/")
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    return f"http://{host}:{settings.port}"


def make_client(url: str | None, api_key: str | None, data_dir: Path | None = None) -> Client:
    """A :class:`~dropsearch.client.Client` with the URL and key resolved as the module docstring says."""
    from dropsearch.client import Client

    settings = load_settings(data_dir=data_dir)
    return Client(resolve_url(url, settings), resolve_api_key(api_key, settings))


@contextmanager
def api_errors(base_url: str) -> Iterator[None]:
    """Turn API and connection errors into a one-line message and exit code 1."""
    import httpx

    from dropsearch.client import ApiError

    try:
        yield
    except ApiError as exc:
        hint = " (is the API key valid?)" if exc.status_code == 401 else ""
        fail(f"the API answered {exc.status_code}: {exc.detail}{hint}")
    except httpx.ConnectError:
        fail(f"cannot reach the dropsearch API at {base_url}: is `dropsearch serve` running? (set --url)")
    except httpx.TimeoutException:
        fail(f"the dropsearch API at {base_url} did not answer in time")
    except httpx.HTTPError as exc:
        fail(f"HTTP error talking to {base_url}: {type(exc).__name__}: {exc}")
