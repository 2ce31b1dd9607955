"""Request dependencies: the app's runtime state, database sessions and the caller's API key.

Every route but ``/healthz`` depends on :data:`CurrentKey`: a missing, malformed, unknown or revoked bearer key
is answered with 401 and a body naming the problem. Sessions come from :func:`dropsearch.store.session_scope`
(one short transaction per request; writing routes commit before they answer).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from dropsearch.config import Settings
from dropsearch.store.api_keys import authenticate
from dropsearch.store.db import Engine, Session, session_scope
from dropsearch.store.records import ApiKeyRecord

__all__ = [
    "AppState",
    "CurrentKey",
    "ReadSessionDep",
    "SessionDep",
    "StateDep",
    "app_state",
    "current_key",
]

_BEARER_HINT = "send Authorization: Bearer <key>"

#: Declares the bearer scheme in the OpenAPI document (``/docs`` shows "Authorize"); the checks and their 401
#: messages are :func:`current_key`'s own (``auto_error=False``: the scheme never answers by itself).
bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    description="an API key made with `dropsearch keys create` (or the admin key that `dropsearch serve` prints)",
)


@dataclass
class AppState:
    """What the routes need from the app: settings, the engine and the SSE timing knobs."""

    settings: Settings
    engine: Engine
    sse_poll_s: float = 0.5
    sse_keepalive_s: float = 15.0


def app_state(request: Request) -> AppState:
    """The :class:`AppState` of the app serving ``request``."""
    return request.app.state.dropsearch


StateDep = Annotated[AppState, Depends(app_state)]


def _write_session(state: StateDep) -> Iterator[Session]:
    with session_scope(state.engine) as session:
        yield session


def _read_session(state: StateDep) -> Iterator[Session]:
    with session_scope(state.engine, read_only=True) as session:
        yield session


#: A session that may write (SQLite: ``BEGIN IMMEDIATE``); commit explicitly before answering.
SessionDep = Annotated[Session, Depends(_write_session)]
#: A read-only session (never waits for SQLite's write lock).
ReadSessionDep = Annotated[Session, Depends(_read_session)]


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(status_code=401, detail=detail, headers={"WWW-Authenticate": "Bearer"})


def current_key(
    request: Request,
    state: StateDep,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)] = None,
) -> ApiKeyRecord:
    """The active API key of the request's ``Authorization: Bearer <key>`` header.

    Raises:
        HTTPException: 401 naming the problem (missing header, not a bearer key, unknown or revoked key).
    """
    header = request.headers.get("authorization")
    if not header:
        raise _unauthorized(f"missing API key: {_BEARER_HINT}")
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise _unauthorized(f"malformed Authorization header: {_BEARER_HINT}")
    with session_scope(state.engine, read_only=True) as session:
        key = authenticate(session=session, plain_key=token)
    if key is None:
        raise _unauthorized("invalid API key: the key is unknown or revoked")
    return key


CurrentKey = Annotated[ApiKeyRecord, Depends(current_key)]
