"""The validation stage of a search: re-train the top patterns and the baselines with paired seeds, race, choose.

After the search stage, :func:`run_validation` takes the ``validation.top_k`` distinct patterns with the best search
reward (every search trial of the search, including those stored before a restart) and the
``validation.baselines`` (default: no dropout), and runs them as one more Ray Tune experiment with
:class:`~dropsearch.controller.validation_searcher.ValidationSearcher`: every arm with the same fresh training
seeds, two seeds first, then the arms not worse than the leader beyond noise get the remaining seeds. Each run is a
trial of kind ``validation`` (stored, streamed, counted in the progress) at index
``VALIDATION_INDEX_BASE + budget.trials * STAGE_STRIDE + validation_index``, so a later stage (after the search was
extended) never reuses an index. After every run the report is emitted as
:class:`~dropsearch.runner.events.ValidationUpdated`; a resumed stage re-runs nothing that finished.
"""

from __future__ import annotations

from typing import Any

from dropsearch.controller.validation_searcher import ValidationSearcher
from dropsearch.runner.events import ResumeState, ValidationUpdated
from dropsearch.search.spec import SearchSpec
from dropsearch.search.validation import make_arms, validation_seeds

__all__ = ["STAGE_STRIDE", "VALIDATION_INDEX_BASE", "run_validation", "validation_trial_index"]

#: The store's first index of validation runs (:data:`dropsearch.store.trials.VALIDATION_INDEX_BASE`, repeated
#: here because the engine does not import the store).
VALIDATION_INDEX_BASE = 1_000_000
#: Room for the runs of one stage (arms x seeds).
STAGE_STRIDE = 10_000


def validation_trial_index(spec: SearchSpec, validation_index: int) -> int:
    """The store index of one validation run of ``spec``'s stage."""
    return VALIDATION_INDEX_BASE + spec.budget.trials * STAGE_STRIDE + int(validation_index)


class _StageSearcher(ValidationSearcher):
    """The validation searcher, with each config's store index (``trial_index``); reports after every run.

    The report goes to the engine's callback (``events``, a process-local object), not to this searcher's
    caller: Tune may run a copy of the searcher.
    """

    def __init__(self, spec: SearchSpec, events: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stage_spec, self.events = spec, events

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        known = trial_id in self._open
        super().on_trial_complete(trial_id, result, error)
        if known:
            self.events.validation_report = _report(self)
            self.events.post(ValidationUpdated(self.events.validation_report, final=False))

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        config = super().suggest(trial_id)
        if isinstance(config, dict):
            config = {**config, "trial_index": validation_trial_index(self.stage_spec, config["validation_index"])}
        return config


def _report(searcher: ValidationSearcher) -> dict[str, Any]:
    """The report's JSON with the chosen arm's pattern (what ``/best`` returns)."""
    report = searcher.report()
    data = report.to_dict()
    data["pattern"] = None if report.chosen is None else searcher.results.arm(report.chosen).pattern
    return data


def run_validation(spec: SearchSpec, prepared: Any, resume: ResumeState, events: Any, experiment: Any) -> dict | None:
    """Run the validation stage; returns its final report (``None`` when there was nothing to validate).

    Args:
        spec: the search's spec.
        prepared: the prepared search (its model's sites turn baselines into patterns).
        resume: the stored search trials and validation runs of an interrupted search.
        events: the engine's Tune callback (it has this run's finished trials and patterns, and emits events).
        experiment: the engine's experiment runner.
    """
    validation, objective = spec.validation, spec.objective
    trials: dict[int, tuple[dict[str, Any], float | None, int]] = {}
    for stored in resume.search_trials:
        if stored.status in ("succeeded", "stopped") and stored.pattern is not None:
            trials[stored.index] = (stored.pattern, stored.reward, stored.index)
    for finished in events.finished:
        if finished.kind == "search" and finished.status in ("succeeded", "stopped"):
            trials[finished.index] = (events.patterns[finished.index], finished.reward, finished.index)
    if not trials:
        return None
    arms = make_arms(trials.values(), validation.baselines, prepared.sites, top_k=validation.top_k, mode=objective.mode)
    searcher = _StageSearcher(
        spec,
        events,
        arms,
        validation_seeds(spec.seed, validation.seeds),
        objective.mode,
        objective.metric,
        validation.racing,
        completed=resume.validation_done,
        last_k=objective.last_k,
    )
    events.validation_report = None
    experiment.fit(searcher, None, suffix="-validation")  # every run trains all its epochs: no scheduler
    if experiment.stop.reason is not None:
        return None
    final = events.validation_report or _report(searcher)
    events.post(ValidationUpdated(final, final=True))
    events.flush()
    return final
