"""Continuing a search's learning: extend a succeeded search with more trials, or warm-start a new search.

Both reuse the runner's resume path (:class:`dropsearch.runner.execution.SearchExecution` loads the latest stored
controller state and the completed trials after its ``trials_seen``), so neither needs anything of the runner:

- :func:`extend_search` grows ``budget.trials`` and ``trials_total`` and queues the search again; the runner
  resumes it from its last controller state (``trials_seen`` = the finished trials), so the finished trials are
  never run again and the controller's update count goes on;
- :func:`copy_controller_state` gives a new search the latest controller state of an earlier one, stored with
  ``trials_seen=0``: the runner loads it as the controller's starting point and runs every trial of the new search.
"""

from __future__ import annotations

import copy
from typing import Any

from sqlalchemy.orm import Session

from dropsearch.store.controller_states import latest_controller_state, save_controller_state
from dropsearch.store.models import SearchModel
from dropsearch.store.records import ControllerStateRecord, SearchRecord
from dropsearch.store.searches import get_search, requeue_search

__all__ = ["EXTENDABLE_STATUSES", "copy_controller_state", "extend_search"]

#: Statuses a search can be extended from: only a search that ran its whole budget.
EXTENDABLE_STATUSES = ("succeeded",)


def extend_search(*, session: Session, owner: str, search_id: str, trials: int) -> tuple[SearchRecord | None, bool]:
    """Add ``trials`` trials to the owner's succeeded search and queue it again.

    ``spec.budget.trials`` and ``trials_total`` grow by ``trials``; status becomes ``queued`` (finish time, error
    and lease cleared); trials, ``trials_done``, the best reward and the controller states are kept.

    Args:
        session: the caller's session (committed by the caller).
        owner: the caller's owner (another owner's search is ``None``).
        search_id: the search.
        trials: how many trials to add, at least 1.

    Returns:
        ``(search, extended)``: the search after the request (``None`` if missing or someone else's) and whether
        it was extended (``False`` when its status is not ``succeeded``; nothing is changed then).

    Raises:
        ValueError: for ``trials < 1``.
    """
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise ValueError(f"trials must be a positive int, got {trials!r}")
    record = get_search(session=session, owner=owner, search_id=search_id)
    if record is None:
        return None, False
    if record.status not in EXTENDABLE_STATUSES:
        return record, False
    spec = copy.deepcopy(record.spec)
    budget = spec.setdefault("budget", {})
    budget["trials"] = int(budget.get("trials", record.trials_total)) + trials
    return requeue_search(
        session=session,
        owner=owner,
        search_id=search_id,
        statuses=EXTENDABLE_STATUSES,
        conditions=[SearchModel.trials_total == record.trials_total],  # no concurrent extension in between
        spec=spec,
        trials_total=SearchModel.trials_total + trials + _validation_runs(spec),
    )


def copy_controller_state(*, session: Session, source_id: str, target_id: str) -> ControllerStateRecord | None:
    """Store the source search's latest controller state as the target's first one, with ``trials_seen=0``.

    The caller checks that both searches belong to the same owner and search the same space.

    Returns:
        The source's state that was copied, or ``None`` when the source has none (nothing is written).
    """
    source = latest_controller_state(session=session, search_id=source_id)
    if source is None:
        return None
    save_controller_state(session=session, search_id=target_id, blob=source.blob, updates=source.updates, trials_seen=0)
    return source


def _validation_runs(spec: dict[str, Any]) -> int:
    """The most validation runs the extended search's new validation stage may make (0 when it has none)."""
    from dropsearch.search.spec import SearchSpec, validation_trials

    return validation_trials(SearchSpec.model_validate(spec))
