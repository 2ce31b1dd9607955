"""Trial lifecycle: started -> reported (once per epoch) -> finished, and re-queueing after a runner crash.

The store guarantees what the runner's resume logic relies on:

* a trial is one row per ``(search_id, index)``; starting it again (after a crash or a requeue) bumps ``attempt``
  and clears the previous attempt's metrics;
* a *completed* trial (``succeeded``, ``stopped`` = early-stopped with a reward, or finally ``failed``) is never
  started again (:class:`~dropsearch.store.errors.TrialCompletedError`), and finishing it twice keeps the first
  result, so every completed trial is counted exactly once in the search's ``trials_done`` and ``best_reward``.

Rewards follow the search's ``objective_mode`` (``"max"``: higher is better). Metric values must be JSON numbers;
NaN and infinities are stored as ``null`` (Postgres JSON has no NaN).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dropsearch.store._json import json_safe
from dropsearch.store.errors import NotFoundError, TrialCompletedError
from dropsearch.store.fencing import Lease, generation_of
from dropsearch.store.models import COMPLETED_TRIAL_STATUSES, MAX_NAME_LENGTH, SearchModel, TrialModel, utcnow
from dropsearch.store.records import TrialPage, TrialRecord
from dropsearch.store.searches import new_id

__all__ = [
    "FINISHED_TRIAL_STATUSES",
    "TRIAL_KINDS",
    "VALIDATION_INDEX_BASE",
    "set_validation_report",
    "best_trial",
    "completed_trials",
    "get_trial",
    "list_trials",
    "requeue_stale_trials",
    "trial_finished",
    "trial_reported",
    "trial_started",
]

FINISHED_TRIAL_STATUSES = ("succeeded", "stopped", "failed", "cancelled")
_REWARDED = ("succeeded", "stopped")
#: What a trial is: proposed by the controller, or a re-training of the validation stage.
TRIAL_KINDS = ("search", "validation")
#: Validation runs are numbered from here, so they never collide with search trials (even after an extension).
VALIDATION_INDEX_BASE = 1_000_000


def _row(session: Session, search_id: str, index: int, *, for_update: bool = False) -> TrialModel | None:
    stmt = select(TrialModel).where(TrialModel.search_id == search_id, TrialModel.index == index)
    if for_update:
        stmt = stmt.with_for_update()
    return session.scalar(stmt.execution_options(populate_existing=True))


def _search(session: Session, search_id: str) -> SearchModel:
    search = session.get(SearchModel, search_id, populate_existing=True)
    if search is None:
        raise NotFoundError(f"search {search_id!r} does not exist")
    return search


def trial_started(
    *,
    session: Session,
    search_id: str,
    index: int,
    tokens: Sequence[Any],
    pattern: Mapping[str, Any] | None = None,
    node: str | None = None,
    lease: Lease | None = None,
    kind: str = "search",
    arm: str | None = None,
    seed: int | None = None,
) -> TrialRecord:
    """Record that trial ``index`` of a search (re)starts running.

    Args:
        session: the caller's session.
        search_id: the search.
        index: the trial's number in the search, ``0 <= index < trials_total``.
        tokens: the controller's sampled tokens.
        pattern: the decoded pattern document (docs/REGULARIZERS.md). Default: ``None``
        node: where it runs (Ray node / host). Default: ``None``
        lease: the writing runner's lease, checked first (:mod:`dropsearch.store.fencing`). Default: unchecked
        kind: ``"search"`` (a trial the controller proposed) or ``"validation"`` (a re-training of the validation
            stage, index :data:`VALIDATION_INDEX_BASE` and up). Default: ``"search"``
        arm: the validation arm re-trained. Default: ``None``
        seed: the validation run's training seed. Default: ``None``

    Returns:
        The running trial: ``attempt`` 1 when new, the previous attempt + 1 when it was queued, running
        (a crash) or cancelled before.

    Raises:
        NotFoundError: if the search does not exist.
        TrialCompletedError: if the trial is already completed (it is never re-run).
        LeaseLostError: if ``lease`` no longer holds the search (nothing is written).
        ValueError: for an ``index`` outside ``0..trials_total-1`` (a search trial) or below
            :data:`VALIDATION_INDEX_BASE` (a validation run), or an unknown ``kind``.
    """
    generation = generation_of(session, lease)
    search = _search(session, search_id)
    if kind not in TRIAL_KINDS:
        raise ValueError(f"kind must be one of {TRIAL_KINDS}, got {kind!r}")
    if isinstance(index, bool) or not isinstance(index, int):
        raise ValueError(f"index must be an int, got {index!r}")
    if kind == "search" and not 0 <= index < search.trials_total:
        raise ValueError(f"index must be an int in [0, {search.trials_total}), got {index!r}")
    if kind == "validation" and index < VALIDATION_INDEX_BASE:
        raise ValueError(f"a validation run's index must be >= {VALIDATION_INDEX_BASE}, got {index!r}")
    now = utcnow()
    fields = {
        "status": "running",
        "tokens": json_safe(list(tokens)),
        "pattern": None if pattern is None else json_safe(pattern),
        "node": None if node is None else node[:MAX_NAME_LENGTH],
        "metrics": [],
        "reward": None,
        "error": None,
        "wall_s": None,
        "started_at": now,
        "finished_at": None,
        "heartbeat_at": now,
        "lease_generation": generation,
        "kind": kind,
        "arm": arm,
        "seed": seed,
    }
    if _row(session, search_id, index, for_update=True) is None:
        try:
            with session.begin_nested():
                session.add(TrialModel(id=new_id(), search_id=search_id, index=index, attempt=1, **fields))
            return TrialRecord.from_model(_row(session, search_id, index))
        except IntegrityError:
            pass  # inserted concurrently: fall through and restart that row
    result = session.execute(
        update(TrialModel)
        .where(
            TrialModel.search_id == search_id,
            TrialModel.index == index,
            TrialModel.status.not_in(COMPLETED_TRIAL_STATUSES),
        )
        .values(attempt=TrialModel.attempt + 1, **fields)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        raise TrialCompletedError(f"trial {index} of search {search_id!r} is completed and is never re-run")
    return TrialRecord.from_model(_row(session, search_id, index))


def trial_reported(
    *,
    session: Session,
    search_id: str,
    index: int,
    epoch: int,
    metrics: Mapping[str, Any],
    lease: Lease | None = None,
) -> TrialRecord:
    """Store one epoch's metrics of a running trial and refresh its heartbeat.

    The entry stored is ``{"epoch": epoch, **metrics}``; reporting the same epoch again replaces it. Reports for
    a trial that is not running (finished, or re-queued after its runner died) are ignored.

    Raises:
        NotFoundError: if the trial was never started.
        LeaseLostError: if ``lease`` (the writer's, when given) no longer holds the search.
    """
    generation = generation_of(session, lease)
    row = _row(session, search_id, index, for_update=True)
    if row is None:
        raise NotFoundError(f"trial {index} of search {search_id!r} does not exist")
    if row.status != "running":
        return TrialRecord.from_model(row)
    entry = {**json_safe(metrics), "epoch": int(epoch)}
    kept = [old for old in row.metrics if old.get("epoch") != entry["epoch"]]
    row.metrics = sorted([*kept, entry], key=lambda item: item["epoch"])
    row.heartbeat_at = utcnow()
    if generation is not None:
        row.lease_generation = generation
    session.flush()
    return TrialRecord.from_model(row)


def trial_finished(
    *,
    session: Session,
    search_id: str,
    index: int,
    status: str,
    reward: float | None = None,
    error: str | None = None,
    lease: Lease | None = None,
) -> TrialRecord:
    """Store a trial's final result; idempotent (a trial that is already completed keeps its first result).

    On the first completion the search's ``trials_done`` goes up by one and, for ``succeeded``/``stopped``, its
    ``best_reward``/``best_trial_id`` follow the reward if it is the best so far.

    Args:
        session: the caller's session.
        search_id: the search.
        index: the trial.
        status: ``"succeeded"``, ``"stopped"`` (early-stopped; it still has a reward), ``"failed"`` (final; no
            more retries) or ``"cancelled"`` (stopped by a cancel; not completed, no reward).
        reward: the trial's reward; required and finite for ``succeeded`` and ``stopped``. Default: ``None``
        error: why it failed. Default: ``None``
        lease: the writing runner's lease, checked first. Default: unchecked

    Raises:
        NotFoundError: if the trial was never started.
        LeaseLostError: if ``lease`` no longer holds the search (nothing is written).
        ValueError: for an unknown status or a missing or non-finite reward where one is required.
    """
    if status not in FINISHED_TRIAL_STATUSES:
        raise ValueError(f"status must be one of {FINISHED_TRIAL_STATUSES}, got {status!r}")
    if reward is not None:
        reward = float(reward)
    if status in _REWARDED and (reward is None or not math.isfinite(reward)):
        raise ValueError(f"a {status} trial needs a finite reward, got {reward!r}")
    generation = generation_of(session, lease)
    row = _row(session, search_id, index, for_update=True)
    if row is None:
        raise NotFoundError(f"trial {index} of search {search_id!r} does not exist")
    now = utcnow()
    wall_s = None if row.started_at is None else (now - row.started_at).total_seconds()
    result = session.execute(
        update(TrialModel)
        .where(TrialModel.id == row.id, TrialModel.status.not_in(COMPLETED_TRIAL_STATUSES))
        .values(
            status=status,
            reward=reward,
            error=error,
            finished_at=now,
            heartbeat_at=now,
            wall_s=wall_s,
            **({} if generation is None else {"lease_generation": generation}),
        )
        .execution_options(synchronize_session=False)
    )
    if result.rowcount == 1 and status in COMPLETED_TRIAL_STATUSES:
        # a validation run counts in the progress but never as the search's best (that is the validated arm's)
        rewarded = status in _REWARDED and row.kind != "validation"
        _count_completion(session, search_id, row.id, reward if rewarded else None)
    return TrialRecord.from_model(_row(session, search_id, index))


def _count_completion(session: Session, search_id: str, trial_id: str, reward: float | None) -> None:
    searches = update(SearchModel).where(SearchModel.id == search_id).execution_options(synchronize_session=False)
    session.execute(searches.values(trials_done=SearchModel.trials_done + 1, updated_at=utcnow()))
    if reward is None:
        return
    better = or_(
        SearchModel.best_reward.is_(None),
        and_(SearchModel.objective_mode == "max", SearchModel.best_reward < reward),
        and_(SearchModel.objective_mode == "min", SearchModel.best_reward > reward),
    )
    session.execute(searches.where(better).values(best_reward=reward, best_trial_id=trial_id))


def requeue_stale_trials(*, session: Session, older_than_s: float, search_id: str | None = None) -> int:
    """Put running trials whose heartbeat is older than ``older_than_s`` seconds back to ``queued``.

    A runner that takes over a search calls this with ``older_than_s=0``: every trial still marked running
    belonged to the dead runner. ``attempt`` is kept (the next :func:`trial_started` increments it).

    Args:
        session: the caller's session.
        older_than_s: heartbeat age in seconds, >= 0.
        search_id: only this search's trials. Default: all searches

    Returns:
        How many trials were re-queued.
    """
    if not older_than_s >= 0:
        raise ValueError(f"older_than_s must be >= 0, got {older_than_s!r}")
    cutoff = utcnow() - timedelta(seconds=older_than_s)
    stmt = update(TrialModel).where(
        TrialModel.status == "running", or_(TrialModel.heartbeat_at.is_(None), TrialModel.heartbeat_at <= cutoff)
    )
    if search_id is not None:
        stmt = stmt.where(TrialModel.search_id == search_id)
    result = session.execute(stmt.values(status="queued").execution_options(synchronize_session=False))
    return result.rowcount


def list_trials(
    *,
    session: Session,
    search_id: str,
    limit: int | None = 100,
    offset: int = 0,
    statuses: Sequence[str] | None = None,
) -> TrialPage:
    """A search's trials by index, one page and the total count (the caller checks the search's owner first).

    Args:
        session: the caller's session.
        search_id: the search.
        limit: page size (``None``: all). Default: 100
        offset: how many to skip. Default: 0
        statuses: only trials with one of these statuses. Default: all
    """
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be >= 1 or None, got {limit}")
    if offset < 0:
        raise ValueError(f"offset must be >= 0, got {offset}")
    where = [TrialModel.search_id == search_id]
    if statuses is not None:
        where.append(TrialModel.status.in_(tuple(statuses)))
    total = session.scalar(select(func.count()).select_from(TrialModel).where(*where)) or 0
    stmt = select(TrialModel).where(*where).order_by(TrialModel.index).offset(offset).limit(limit)
    rows = session.scalars(stmt.execution_options(populate_existing=True))
    return TrialPage(items=[TrialRecord.from_model(row) for row in rows], total=total)


def completed_trials(*, session: Session, search_id: str) -> list[TrialRecord]:
    """Every completed trial of a search, by index (what a resumed runner must not run again)."""
    return list_trials(session=session, search_id=search_id, limit=None, statuses=COMPLETED_TRIAL_STATUSES).items


def get_trial(*, session: Session, owner: str, trial_id: str) -> TrialRecord | None:
    """The trial ``trial_id`` if its search belongs to ``owner``; ``None`` if missing or someone else's."""
    stmt = (
        select(TrialModel)
        .join(SearchModel, SearchModel.id == TrialModel.search_id)
        .where(TrialModel.id == trial_id, SearchModel.owner == owner)
    )
    row = session.scalar(stmt.execution_options(populate_existing=True))
    return None if row is None else TrialRecord.from_model(row)


def best_trial(*, session: Session, search_id: str) -> TrialRecord | None:
    """The rewarded trial with the best reward (per the search's ``objective_mode``; ties: lowest index)."""
    search = _search(session, search_id)
    order = TrialModel.reward.desc() if search.objective_mode == "max" else TrialModel.reward.asc()
    stmt = (
        select(TrialModel)
        .where(
            TrialModel.search_id == search_id,
            TrialModel.kind == "search",
            TrialModel.status.in_(_REWARDED),
            TrialModel.reward.is_not(None),
        )
        .order_by(order, TrialModel.index)
        .limit(1)
    )
    row = session.scalar(stmt.execution_options(populate_existing=True))
    return None if row is None else TrialRecord.from_model(row)


def set_validation_report(
    *, session: Session, search_id: str, report: Mapping[str, Any], final: bool = False, lease: Lease | None = None
) -> None:
    """Store the validation stage's report on the search (JSON; see :mod:`dropsearch.search.validation_report`).

    Args:
        session: the caller's session.
        search_id: the search.
        report: the report's ``to_dict()``, plus the chosen arm's ``pattern``.
        final: the stage ended: the search's ``trials_total`` becomes the runs it really made (racing stops some
            arms early, so fewer validation runs than planned may have run).
        lease: the writing runner's lease, checked first. Default: unchecked

    Raises:
        NotFoundError: if the search does not exist.
        LeaseLostError: if ``lease`` no longer holds the search (nothing is written).
    """
    generation_of(session, lease)
    search = _search(session, search_id)
    values: dict[str, Any] = {"validation": json_safe(dict(report)), "updated_at": utcnow()}
    if final:
        values["trials_total"] = max(search.trials_done, 1)
    session.execute(
        update(SearchModel)
        .where(SearchModel.id == search_id)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
