"""What a running search tells its caller: trial started / epoch reported / trial finished / controller updated.

The runner stores each event as it happens; tests and the CLI can print them. Every callback is optional.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "TrialStarted",
    "EpochReported",
    "TrialFinished",
    "ControllerUpdated",
    "ValidationUpdated",
    "SearchCallbacks",
    "SearchResult",
    "ResumeState",
    "CompletedTrial",
]


@dataclass(frozen=True)
class TrialStarted:
    """A child started training (``attempt`` counts from 1; a retried trial starts again).

    ``kind`` is ``"search"`` for a trial the controller proposed, ``"validation"`` for a re-training of the
    validation stage (then ``arm`` names the arm and ``seed`` is its training seed).
    """

    index: int
    tokens: tuple[int, ...]
    pattern: dict[str, Any]
    attempt: int
    node: str
    kind: str = "search"
    arm: str | None = None
    seed: int | None = None


@dataclass(frozen=True)
class EpochReported:
    """A child finished one epoch."""

    index: int
    metrics: dict[str, Any]


@dataclass(frozen=True)
class TrialFinished:
    """A child ended: ``status`` is ``succeeded``, ``stopped`` (early-stopped by ASHA), ``failed`` or ``cancelled``.

    ``reward`` is the objective read from the last reported epoch (``None`` for failed/cancelled trials).
    """

    index: int
    status: str
    reward: float | None
    metrics: list[dict[str, Any]]
    wall_s: float
    error: str | None = None
    kind: str = "search"


@dataclass(frozen=True)
class ControllerUpdated:
    """The policy learned from one batch; ``state`` is the controller's ``state_dict()`` after the update."""

    updates: int
    trials_seen: int
    stats: dict[str, float]
    state: dict[str, Any]


@dataclass(frozen=True)
class ValidationUpdated:
    """The validation stage learned a result: ``report`` is its report so far (``final`` once the stage ended).

    ``report`` is :meth:`dropsearch.search.validation_report.ValidationReport.to_dict` plus ``"pattern"``, the
    chosen arm's pattern document.
    """

    report: dict[str, Any]
    final: bool


@dataclass
class SearchCallbacks:
    """Optional hooks a caller passes to :func:`dropsearch.runner.engine.run_search`.

    ``should_cancel`` is polled between events; returning ``True`` stops running trials and ends the search with
    status ``cancelled``.
    """

    on_trial_started: Callable[[TrialStarted], None] | None = None
    on_epoch: Callable[[EpochReported], None] | None = None
    on_trial_finished: Callable[[TrialFinished], None] | None = None
    on_controller_updated: Callable[[ControllerUpdated], None] | None = None
    on_validation_updated: Callable[[ValidationUpdated], None] | None = None
    should_cancel: Callable[[], bool] | None = None

    def emit(self, event: Any) -> None:
        """Send ``event`` to the matching hook, if set."""
        hook = {
            TrialStarted: self.on_trial_started,
            EpochReported: self.on_epoch,
            TrialFinished: self.on_trial_finished,
            ControllerUpdated: self.on_controller_updated,
            ValidationUpdated: self.on_validation_updated,
        }[type(event)]
        if hook is not None:
            hook(event)

    def cancelled(self) -> bool:
        """Whether the caller asked to stop."""
        return bool(self.should_cancel and self.should_cancel())


@dataclass(frozen=True)
class CompletedTrial:
    """A trial that ended before a restart; it is never run again."""

    index: int
    tokens: tuple[int, ...]
    reward: float | None
    status: str
    pattern: dict[str, Any] | None = None


@dataclass
class ResumeState:
    """Where a restarted search continues: the controller after its last stored update and the trials done.

    ``trials_seen`` is the number of trials the stored controller state has already learned from (the next batch
    starts at that index); ``completed`` holds trials of later indices that ended before the restart;
    ``search_trials`` every search trial that ended (with its pattern: the validation stage picks its arms from
    them), ``validation_done`` the validation runs that ended, as ``(arm, seed, raw objective or None)``.
    """

    controller_state: dict[str, Any] | None = None
    trials_seen: int = 0
    completed: dict[int, CompletedTrial] = field(default_factory=dict)
    search_trials: list[CompletedTrial] = field(default_factory=list)
    validation_done: list[tuple[str, int, float | None]] = field(default_factory=list)


@dataclass
class SearchResult:
    """How a search ended."""

    status: str
    trials: list[TrialFinished]
    best_index: int | None
    best_reward: float | None
    best_pattern: dict[str, Any] | None
    updates: int
    wall_s: float
    validation: dict[str, Any] | None = None
