"""Runner leases: which runner executes a search, renewed by heartbeats so that two runners never run one search.

A runner takes a queued search with :func:`claim_next_queued_search`, renews the lease every
``Settings.heartbeat_s`` with :func:`renew_lease` (a ``False`` return means the lease was lost: stop at once), and
finishes with :func:`~dropsearch.store.searches.mark_search_finished` or gives it up with :func:`release_lease`.
On start it resumes the searches :func:`find_resumable` returns (left running by a dead runner, or by itself
before a restart) after taking them over with :func:`acquire_lease`.

Every claim is a guarded ``UPDATE ... WHERE <still claimable>`` whose row count says who won, so it is race-free
on any database and across processes; on Postgres the candidate rows are also read ``FOR UPDATE SKIP LOCKED`` so
concurrent runners do not queue behind each other (on SQLite ``BEGIN IMMEDIATE`` already serialises writers).
Lease times are compared with the runners' clocks, which must agree to well within ``lease_timeout_s``.

Fencing: every claim and take-over bumps the search's ``lease_generation``. A runner keeps the :class:`Lease` it
got (search, runner id, generation) and passes it to every write (trials, events, controller states, the final
status): :func:`check_lease` runs in the same transaction, locks the search row (``FOR UPDATE`` on Postgres;
SQLite's ``BEGIN IMMEDIATE`` already serialises writers) and raises
:class:`~dropsearch.store.errors.LeaseLostError` when the lease moved on, so a runner that was paused past its
lease (a frozen process, a long GC, a network partition) can never write over the runner that took its search.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Update, or_, select, update
from sqlalchemy.orm import Session

from dropsearch.store.fencing import Lease, check_lease
from dropsearch.store.models import SearchModel, utcnow
from dropsearch.store.records import SearchRecord
from dropsearch.store.searches import load_search

__all__ = [
    "Lease",
    "acquire_lease",
    "check_lease",
    "claim_next_queued_search",
    "find_resumable",
    "release_lease",
    "renew_lease",
]


_CLAIM_BATCH = 8


def _check(runner_id: str, lease_s: float) -> None:
    if not isinstance(runner_id, str) or not runner_id:
        raise ValueError(f"runner_id must be a non-empty string, got {runner_id!r}")
    if not lease_s > 0:
        raise ValueError(f"lease_s must be > 0, got {lease_s!r}")


def _update() -> Update:
    return update(SearchModel).execution_options(synchronize_session=False)


def claim_next_queued_search(*, session: Session, runner_id: str, lease_s: float) -> SearchRecord | None:
    """Atomically take the oldest queued search: it becomes ``running`` with a lease held by ``runner_id``.

    Args:
        session: the caller's session; commit soon (the claim is only visible to others after commit).
        runner_id: the claiming runner's unique id.
        lease_s: how long the lease lasts without renewal, in seconds (``Settings.lease_timeout_s``).

    Returns:
        The claimed search, or ``None`` if nothing is queued (or every candidate was taken concurrently).
    """
    _check(runner_id, lease_s)
    candidates = session.scalars(
        select(SearchModel.id)
        .where(SearchModel.status == "queued", SearchModel.cancel_requested.is_(False))
        .order_by(SearchModel.created_at, SearchModel.id)
        .limit(_CLAIM_BATCH)
        .with_for_update(skip_locked=True)
    ).all()
    for search_id in candidates:
        now = utcnow()
        result = session.execute(
            _update()
            .where(SearchModel.id == search_id, SearchModel.status == "queued")
            .values(
                status="running",
                lease_owner=runner_id,
                lease_expires_at=now + timedelta(seconds=lease_s),
                lease_generation=SearchModel.lease_generation + 1,
                started_at=now,
                updated_at=now,
            )
        )
        if result.rowcount == 1:
            return load_search(session=session, search_id=search_id)
    return None


def find_resumable(*, session: Session, runner_id: str) -> list[SearchRecord]:
    """Running searches this runner may resume: leased by ``runner_id`` itself, unleased, or with an expired lease.

    Take each one over with :func:`acquire_lease` before touching it (another runner may be resuming it too).
    """
    rows = session.scalars(
        select(SearchModel)
        .where(
            SearchModel.status == "running",
            or_(
                SearchModel.lease_owner == runner_id,
                SearchModel.lease_owner.is_(None),
                SearchModel.lease_expires_at.is_(None),
                SearchModel.lease_expires_at < utcnow(),
            ),
        )
        .order_by(SearchModel.created_at, SearchModel.id)
        .execution_options(populate_existing=True)
    )
    return [SearchRecord.from_model(row) for row in rows]


def acquire_lease(*, session: Session, search_id: str, runner_id: str, lease_s: float) -> SearchRecord | None:
    """Take over a running search whose lease is free, expired or already ``runner_id``'s.

    Returns:
        The search with its new lease, or ``None`` if another runner holds a live lease or the search is not
        running.
    """
    _check(runner_id, lease_s)
    now = utcnow()
    result = session.execute(
        _update()
        .where(
            SearchModel.id == search_id,
            SearchModel.status == "running",
            or_(
                SearchModel.lease_owner == runner_id,
                SearchModel.lease_owner.is_(None),
                SearchModel.lease_expires_at.is_(None),
                SearchModel.lease_expires_at < now,
            ),
        )
        .values(
            lease_owner=runner_id,
            lease_expires_at=now + timedelta(seconds=lease_s),
            lease_generation=SearchModel.lease_generation + 1,
            updated_at=now,
        )
    )
    return load_search(session=session, search_id=search_id) if result.rowcount == 1 else None


def renew_lease(
    *, session: Session, search_id: str, runner_id: str, lease_s: float, generation: int | None = None
) -> bool:
    """Extend ``runner_id``'s lease on a running search by ``lease_s`` seconds from now (the heartbeat).

    A lease that expired but was not taken over yet is still renewed. With ``generation``, only that lease
    (:class:`Lease`) is renewed: a take-over in between, even by the same runner id, makes it fail.

    Returns:
        ``False`` if the runner no longer holds the lease (taken over, released, or the search finished): the
        runner must stop working on the search.
    """
    _check(runner_id, lease_s)
    now = utcnow()
    stmt = _update().where(
        SearchModel.id == search_id, SearchModel.status == "running", SearchModel.lease_owner == runner_id
    )
    if generation is not None:
        stmt = stmt.where(SearchModel.lease_generation == generation)
    result = session.execute(stmt.values(lease_expires_at=now + timedelta(seconds=lease_s), updated_at=now))
    return result.rowcount == 1


def release_lease(*, session: Session, search_id: str, runner_id: str, generation: int | None = None) -> bool:
    """Give up ``runner_id``'s lease (e.g. on a clean shutdown) so another runner can resume the search at once.

    Args:
        session: the caller's session.
        search_id: the search.
        runner_id: the runner giving it up.
        generation: only release this generation of the lease. Default: any

    Returns:
        Whether the runner held the lease.
    """
    stmt = _update().where(SearchModel.id == search_id, SearchModel.lease_owner == runner_id)
    if generation is not None:
        stmt = stmt.where(SearchModel.lease_generation == generation)
    result = session.execute(stmt.values(lease_owner=None, lease_expires_at=None, updated_at=utcnow()))
    return result.rowcount == 1
