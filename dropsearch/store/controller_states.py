"""Controller checkpoints: the runner saves the controller after each policy update and resumes from the latest.

Versions are 1, 2, 3, ... per search (``UniqueConstraint(search_id, version)``), so a resumed runner always loads
the newest state and two writers can never both store the same version.
"""

from __future__ import annotations

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from dropsearch.store.fencing import Lease, generation_of
from dropsearch.store.models import ControllerStateModel, utcnow
from dropsearch.store.records import ControllerStateRecord

__all__ = ["latest_controller_state", "save_controller_state"]


def save_controller_state(
    *,
    session: Session,
    search_id: str,
    blob: bytes,
    updates: int,
    trials_seen: int,
    keep: int | None = None,
    lease: Lease | None = None,
) -> int:
    """Store a new controller state for a search and return its version (previous latest + 1).

    Args:
        session: the caller's session.
        search_id: the search.
        blob: the serialised controller state (opaque to the store).
        updates: how many policy updates the controller has made.
        trials_seen: how many completed trials the controller has learnt from; on resume, the completed trials
            beyond these are fed to the controller again.
        keep: keep only the newest ``keep`` versions (older blobs are deleted). Default: ``None`` (keep all)
        lease: the writing runner's lease, checked first. Default: unchecked

    Returns:
        The new version number.

    Raises:
        ValueError: for a non-bytes blob, negative counters or ``keep < 1``.
        LeaseLostError: if ``lease`` no longer holds the search (nothing is written).
    """
    if not isinstance(blob, (bytes, bytearray, memoryview)):
        raise ValueError(f"blob must be bytes, got {type(blob).__name__}")
    if updates < 0 or trials_seen < 0:
        raise ValueError(f"updates and trials_seen must be >= 0, got {updates} and {trials_seen}")
    if keep is not None and keep < 1:
        raise ValueError(f"keep must be >= 1 or None, got {keep}")
    generation = generation_of(session, lease)
    latest = session.scalar(
        select(func.max(ControllerStateModel.version)).where(ControllerStateModel.search_id == search_id)
    )
    version = (latest or 0) + 1
    session.add(
        ControllerStateModel(
            search_id=search_id,
            version=version,
            blob=bytes(blob),
            updates=updates,
            trials_seen=trials_seen,
            created_at=utcnow(),
            lease_generation=generation,
        )
    )
    session.flush()
    if keep is not None:
        session.execute(
            delete(ControllerStateModel)
            .where(ControllerStateModel.search_id == search_id, ControllerStateModel.version <= version - keep)
            .execution_options(synchronize_session=False)
        )
    return version


def latest_controller_state(*, session: Session, search_id: str) -> ControllerStateRecord | None:
    """The newest stored controller state of a search, or ``None`` if none was saved."""
    row = session.scalar(
        select(ControllerStateModel)
        .where(ControllerStateModel.search_id == search_id)
        .order_by(ControllerStateModel.version.desc())
        .limit(1)
        .execution_options(populate_existing=True)
    )
    return None if row is None else ControllerStateRecord.from_model(row)
