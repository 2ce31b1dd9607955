"""Lease fencing: the token a runner's writes carry, checked in the write's own transaction.

Every claim and take-over of a search (:mod:`dropsearch.store.leases`) bumps its ``lease_generation``. The runner
keeps the :class:`Lease` it got and passes it as ``lease=`` to every write; :func:`check_lease` locks the search
row (``FOR UPDATE`` on Postgres; on SQLite ``BEGIN IMMEDIATE`` already serialises writers) and refuses the write
with :class:`~dropsearch.store.errors.LeaseLostError` once another claim happened. The rows written carry the
generation (``lease_generation``), so who wrote what can be audited.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from dropsearch.store.errors import LeaseLostError
from dropsearch.store.models import SearchModel
from dropsearch.store.records import SearchRecord

__all__ = ["Lease", "check_lease", "generation_of"]


@dataclass(frozen=True)
class Lease:
    """What a runner holds on a search: the fencing token its writes are checked against.

    Build it from the record that :func:`claim_next_queued_search` or :func:`acquire_lease` returned
    (:meth:`of`).
    """

    search_id: str
    runner_id: str
    generation: int

    @classmethod
    def of(cls, search: SearchRecord, runner_id: str) -> Lease:
        """The lease ``runner_id`` holds on a search it just claimed or took over."""
        return cls(search.id, runner_id, search.lease_generation)


def check_lease(*, session: Session, lease: Lease) -> None:
    """Fence a write: raise unless ``lease`` still holds the running search; the search row stays locked.

    Call it first in the transaction that writes (the repository functions do when given ``lease=``).

    Raises:
        LeaseLostError: when the search is no longer running under this runner id and generation.
    """
    held = session.scalar(
        select(SearchModel.id)
        .where(
            SearchModel.id == lease.search_id,
            SearchModel.status == "running",
            SearchModel.lease_owner == lease.runner_id,
            SearchModel.lease_generation == lease.generation,
        )
        .with_for_update()
    )
    if held is None:
        raise LeaseLostError(
            f"runner {lease.runner_id!r} lost its lease (generation {lease.generation}) on search {lease.search_id!r}"
        )


def generation_of(session: Session, lease: Lease | None) -> int | None:
    """Check ``lease`` (when given) and return the generation to stamp on the rows written (``None``: no lease)."""
    if lease is None:
        return None
    check_lease(session=session, lease=lease)
    return lease.generation
