"""Search events for the SSE stream: append-only rows whose ``id`` is the client's cursor (``Last-Event-ID``).

Ids increase in insertion order. On Postgres they are drawn from a sequence at insert time, so an event whose
transaction commits after a later one could be skipped by a reader already past it; events of one search are
written by the single runner holding its lease, one short transaction at a time, so this does not happen there.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from dropsearch.store._json import json_safe
from dropsearch.store.fencing import Lease, generation_of
from dropsearch.store.models import MAX_KIND_LENGTH, EventModel, utcnow
from dropsearch.store.records import EventRecord

__all__ = ["append_event", "events_after"]


def append_event(
    *, session: Session, search_id: str, kind: str, data: Mapping[str, Any], lease: Lease | None = None
) -> EventRecord:
    """Append an event (e.g. ``kind="trial.finished"``) with a JSON ``data`` payload to a search's stream.

    ``lease`` (the writing runner's) is checked first and its generation stamped on the row.

    Raises:
        ValueError: for an empty ``kind`` or one longer than 64 characters.
        LeaseLostError: if ``lease`` no longer holds the search (nothing is written).
    """
    if not isinstance(kind, str) or not 0 < len(kind) <= MAX_KIND_LENGTH:
        raise ValueError(f"kind must be a string of 1 to {MAX_KIND_LENGTH} characters, got {kind!r}")
    generation = generation_of(session, lease)
    row = EventModel(
        search_id=search_id, kind=kind, data=json_safe(dict(data)), created_at=utcnow(), lease_generation=generation
    )
    session.add(row)
    session.flush()
    return EventRecord.from_model(row)


def events_after(*, session: Session, search_id: str, after_id: int = 0, limit: int = 100) -> list[EventRecord]:
    """A search's events with ``id > after_id``, oldest first, at most ``limit`` of them.

    Raises:
        ValueError: for ``limit < 1``.
    """
    if limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    rows = session.scalars(
        select(EventModel)
        .where(EventModel.search_id == search_id, EventModel.id > after_id)
        .order_by(EventModel.id)
        .limit(limit)
    )
    return [EventRecord.from_model(row) for row in rows]
