"""Server-sent events of a search, read by polling the store.

Each stored event is sent as ``id: <event id>``, ``event: <kind>``, ``data: <its JSON payload>``. A client
resumes with the ``Last-Event-ID`` header (sent by browsers on reconnect) or ``?after=<id>``. Comment lines
(``: keep-alive``) are sent when nothing else was for ``keepalive_s``. Once the search is in a final status and
every event stored before that was sent, a last ``event: end`` with ``{"status": ...}`` is sent and the stream
ends.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
from starlette.concurrency import run_in_threadpool

from dropsearch.store.db import Engine, session_scope
from dropsearch.store.events import events_after
from dropsearch.store.models import TERMINAL_SEARCH_STATUSES
from dropsearch.store.records import EventRecord
from dropsearch.store.searches import get_search

__all__ = ["END_EVENT", "format_sse", "search_event_stream"]

END_EVENT = "end"
_BATCH = 200


def format_sse(*, data: Any, event: str | None = None, event_id: int | None = None) -> str:
    """One SSE message; ``data`` is JSON-encoded on a single line."""
    lines = []
    if event_id is not None:
        lines.append(f"id: {event_id}")
    if event is not None:
        lines.append(f"event: {event}")
    lines.append(f"data: {json.dumps(data, separators=(',', ':'), default=str)}")
    return "\n".join(lines) + "\n\n"


def _poll(engine: Engine, owner: str, search_id: str, after: int) -> tuple[str | None, list[EventRecord]]:
    """The search's status (read first) and its events after ``after``; status ``None`` if it is gone."""
    with session_scope(engine, read_only=True) as session:
        search = get_search(session=session, owner=owner, search_id=search_id)
        if search is None:
            return None, []
        return search.status, events_after(session=session, search_id=search_id, after_id=after, limit=_BATCH)


async def search_event_stream(
    engine: Engine,
    *,
    owner: str,
    search_id: str,
    after: int = 0,
    poll_s: float = 0.5,
    keepalive_s: float = 15.0,
) -> AsyncIterator[str]:
    """Yield SSE messages of a search's events after ``after`` until the search has finished.

    The status is read before the events in the same poll, so when a final status is seen every event written
    before it (the runner writes events before finishing the search) is in that batch or an earlier one.
    """
    cursor = max(0, int(after))
    yield "retry: 2000\n\n"
    last_sent = time.monotonic()
    while True:
        status, events = await run_in_threadpool(_poll, engine, owner, search_id, cursor)
        if status is None:
            yield format_sse(event=END_EVENT, data={"status": "gone", "search_id": search_id})
            return
        for record in events:
            cursor = record.id
            yield format_sse(event=record.kind, event_id=record.id, data=record.data)
            last_sent = time.monotonic()
        if len(events) >= _BATCH:
            continue  # more are waiting: read them before deciding anything
        if status in TERMINAL_SEARCH_STATUSES:
            yield format_sse(event=END_EVENT, data={"status": status, "search_id": search_id, "last_event_id": cursor})
            return
        if time.monotonic() - last_sent >= keepalive_s:
            yield ": keep-alive\n\n"
            last_sent = time.monotonic()
        await anyio.sleep(poll_s)
