"""Search rows: create, owner-scoped reads, listing, cancellation and the final status.

Every read an API caller can reach takes the ``owner``: another owner's search looks exactly like a missing one
(``None``). :func:`load_search` is the unscoped read for the runner and admin tools. Runner leases live in
:mod:`dropsearch.store.leases`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from dropsearch.store.models import (
    MAX_NAME_LENGTH,
    MAX_OWNER_LENGTH,
    TERMINAL_SEARCH_STATUSES,
    SearchModel,
    utcnow,
)
from dropsearch.store.records import SearchPage, SearchRecord

__all__ = [
    "check_owner",
    "create_search",
    "get_search",
    "list_searches",
    "load_search",
    "mark_search_finished",
    "new_id",
    "request_cancel",
    "requeue_search",
    "resume_search",
]

#: The columns of a search queued again: no error, cancel request, finish time or lease.
_REQUEUED = {
    "status": "queued",
    "error": None,
    "cancel_requested": False,
    "finished_at": None,
    "lease_owner": None,
    "lease_expires_at": None,
}

#: Statuses a search can be resumed from (its completed trials and controller state are kept).
RESUMABLE_SEARCH_STATUSES = ("failed", "cancelled")


def new_id() -> str:
    """A new random id (32 hex characters, uuid4)."""
    return uuid.uuid4().hex


def check_owner(owner: str) -> str:
    """Return ``owner`` if it is a non-empty string of at most 255 characters, else raise ``ValueError``."""
    if not isinstance(owner, str) or not owner or len(owner) > MAX_OWNER_LENGTH:
        raise ValueError(f"owner must be a non-empty string of at most {MAX_OWNER_LENGTH} characters, got {owner!r}")
    return owner


def create_search(
    *,
    session: Session,
    owner: str,
    name: str | None,
    spec: Mapping[str, Any],
    trials_total: int,
    objective_mode: str = "max",
) -> SearchRecord:
    """Store a new queued search.

    Args:
        session: the caller's session (committed by the caller).
        owner: who the search belongs to (the API key's owner).
        name: display name, at most 200 characters; ``None`` for none.
        spec: the validated job spec as a JSON-compatible dict (``JobSpec.model_dump(mode="json")``).
        trials_total: the trial budget (``budget.trials``), at least 1.
        objective_mode: ``"max"`` or ``"min"``: whether a higher or a lower trial reward is better when tracking
            ``best_reward``. Default: ``"max"``

    Returns:
        The new search, status ``queued``.

    Raises:
        ValueError: for an empty owner, a too long name, ``trials_total < 1`` or an unknown ``objective_mode``.
    """
    check_owner(owner)
    if name is not None and len(name) > MAX_NAME_LENGTH:
        raise ValueError(f"name must be at most {MAX_NAME_LENGTH} characters, got {len(name)}")
    if isinstance(trials_total, bool) or not isinstance(trials_total, int) or trials_total < 1:
        raise ValueError(f"trials_total must be a positive int, got {trials_total!r}")
    if objective_mode not in ("max", "min"):
        raise ValueError(f"objective_mode must be 'max' or 'min', got {objective_mode!r}")
    now = utcnow()
    row = SearchModel(
        id=new_id(),
        owner=owner,
        name=name,
        status="queued",
        spec=dict(spec),
        objective_mode=objective_mode,
        created_at=now,
        updated_at=now,
        trials_total=trials_total,
        trials_done=0,
        cancel_requested=False,
    )
    session.add(row)
    session.flush()
    return SearchRecord.from_model(row)


def get_search(*, session: Session, owner: str, search_id: str) -> SearchRecord | None:
    """The search ``search_id`` if it belongs to ``owner``; ``None`` if it is missing or someone else's."""
    stmt = select(SearchModel).where(SearchModel.id == search_id, SearchModel.owner == owner)
    row = session.scalar(stmt.execution_options(populate_existing=True))
    return None if row is None else SearchRecord.from_model(row)


def load_search(*, session: Session, search_id: str) -> SearchRecord | None:
    """The search ``search_id`` whoever owns it (runner and admin use only; the API uses :func:`get_search`)."""
    row = session.get(SearchModel, search_id, populate_existing=True)
    return None if row is None else SearchRecord.from_model(row)


def list_searches(
    *, session: Session, owner: str, limit: int = 50, offset: int = 0, status: str | None = None
) -> SearchPage:
    """The owner's searches, newest first, one page of them and the total count.

    Args:
        session: the caller's session.
        owner: whose searches.
        limit: page size, 1 to 1000. Default: 50
        offset: how many to skip. Default: 0
        status: only searches with this status. Default: all

    Raises:
        ValueError: for a ``limit`` outside 1..1000 or a negative ``offset``.
    """
    if not 1 <= limit <= 1000:
        raise ValueError(f"limit must be in [1, 1000], got {limit}")
    if offset < 0:
        raise ValueError(f"offset must be >= 0, got {offset}")
    where = [SearchModel.owner == owner]
    if status is not None:
        where.append(SearchModel.status == status)
    total = session.scalar(select(func.count()).select_from(SearchModel).where(*where)) or 0
    rows = session.scalars(
        select(SearchModel)
        .where(*where)
        .order_by(SearchModel.created_at.desc(), SearchModel.id.desc())
        .limit(limit)
        .offset(offset)
        .execution_options(populate_existing=True)
    )
    return SearchPage(items=[SearchRecord.from_model(row) for row in rows], total=total)


def count_searches_by_status(*, session: Session) -> dict[str, int]:
    """How many searches each status has, across all owners (runner polling and service-wide metrics)."""
    rows = session.execute(select(SearchModel.status, func.count()).group_by(SearchModel.status))
    return {str(status): int(count) for status, count in rows}


def request_cancel(*, session: Session, owner: str, search_id: str) -> SearchRecord | None:
    """Cancel the owner's search: a queued one becomes ``cancelled`` now; a running one gets ``cancel_requested``.

    The runner sees ``cancel_requested``, stops the running trials (finished ones stay) and then calls
    :func:`mark_search_finished` with ``"cancelled"``. A finished search is left as it is.

    Returns:
        The search after the request, or ``None`` if it is missing or belongs to someone else.
    """
    if get_search(session=session, owner=owner, search_id=search_id) is None:
        return None
    now = utcnow()
    base = (
        update(SearchModel)
        .where(SearchModel.id == search_id, SearchModel.owner == owner)
        .execution_options(synchronize_session=False)
    )
    done = session.execute(
        base.where(SearchModel.status == "queued").values(
            status="cancelled", cancel_requested=True, finished_at=now, updated_at=now
        )
    )
    if done.rowcount == 0:
        session.execute(base.where(SearchModel.status == "running").values(cancel_requested=True, updated_at=now))
    return load_search(session=session, search_id=search_id)


def mark_search_finished(
    *,
    session: Session,
    search_id: str,
    status: str,
    error: str | None = None,
    runner_id: str | None = None,
    lease_generation: int | None = None,
) -> bool:
    """Give a queued or running search its final status and release its lease.

    Args:
        session: the caller's session.
        search_id: the search.
        status: ``"succeeded"``, ``"failed"`` or ``"cancelled"``.
        error: why it failed (shown to the user). Default: ``None``
        runner_id: if given, only the runner holding the lease may finish the search (a runner that lost its
            lease to another one changes nothing). Default: ``None`` (no lease check)
        lease_generation: with ``runner_id``, only this generation of its lease (a fenced write). Default: any

    Returns:
        Whether the search was changed (``False`` if it was already finished, missing, or leased by another
        runner).

    Raises:
        ValueError: for a status that is not final.
    """
    if status not in TERMINAL_SEARCH_STATUSES:
        raise ValueError(f"status must be one of {TERMINAL_SEARCH_STATUSES}, got {status!r}")
    now = utcnow()
    stmt = (
        update(SearchModel)
        .where(SearchModel.id == search_id, SearchModel.status.in_(("queued", "running")))
        .execution_options(synchronize_session=False)
    )
    if runner_id is not None:
        stmt = stmt.where(SearchModel.lease_owner == runner_id)
    if lease_generation is not None:
        stmt = stmt.where(SearchModel.lease_generation == lease_generation)
    result = session.execute(
        stmt.values(
            status=status, error=error, finished_at=now, updated_at=now, lease_owner=None, lease_expires_at=None
        )
    )
    return result.rowcount == 1


def resume_search(*, session: Session, owner: str, search_id: str) -> tuple[SearchRecord | None, bool]:
    """Queue the owner's failed or cancelled search again; the runner resumes it without re-running finished trials.

    The search becomes ``queued`` (error, cancel request and finish time cleared); its trials, progress and stored
    controller states are kept, so the runner that claims it continues from the last stored controller state.

    Returns:
        ``(search, resumed)``: the search after the request (``None`` if it is missing or someone else's) and
        whether it was re-queued (``False`` when its status is not failed or cancelled).
    """
    if get_search(session=session, owner=owner, search_id=search_id) is None:
        return None, False
    return requeue_search(session=session, owner=owner, search_id=search_id, statuses=RESUMABLE_SEARCH_STATUSES)


def requeue_search(
    *,
    session: Session,
    owner: str,
    search_id: str,
    statuses: Iterable[str],
    conditions: Iterable[Any] = (),
    **values: Any,
) -> tuple[SearchRecord | None, bool]:
    """Queue the owner's search again, in one UPDATE, if its status is one of ``statuses``.

    The search gets no error, cancel request, finish time or lease, plus the columns ``values``; ``conditions``
    are more WHERE clauses (resume, extension).

    Returns:
        ``(search, requeued)``: the search after the statement and whether this statement queued it.
    """
    now = utcnow()
    result = session.execute(
        update(SearchModel)
        .where(SearchModel.id == search_id, SearchModel.owner == owner, SearchModel.status.in_(tuple(statuses)))
        .where(*conditions)
        .values(**_REQUEUED, updated_at=now, **values)
        .execution_options(synchronize_session=False)
    )
    return load_search(session=session, search_id=search_id), result.rowcount == 1
