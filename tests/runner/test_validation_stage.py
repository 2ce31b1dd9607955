"""The validation stage on the real engine: its re-trainings are validation trials; a resumed stage re-runs nothing."""

from __future__ import annotations

import pytest

from dropsearch.runner.engine import run_search
from dropsearch.runner.events import CompletedTrial, ResumeState, SearchCallbacks
from dropsearch.runner.validation_stage import VALIDATION_INDEX_BASE, validation_trial_index
from dropsearch.search.spec import SearchSpec
from dropsearch.search.validation import validation_seeds

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("local_ray")]


SPEC = SearchSpec.model_validate(
    {
        "model": {"name": "mlp", "params": {"hidden": [32]}},
        "dataset": {"name": "digits"},
        "space": {"variants": ["bernoulli"], "rates": [0.0, 0.3, 0.6]},
        "controller": {"name": "random", "batch_size": 2},
        "budget": {"trials": 4, "epochs_per_trial": 2, "max_concurrent": 2, "early_stopping": "none"},
        "validation": {"top_k": 2, "seeds": 2, "baselines": [{"variant": "none"}]},
    }
)


class Recorder(SearchCallbacks):
    def __init__(self, cancel_after_validation_runs: int | None = None):
        super().__init__()
        self.events = []
        for hook in ("on_trial_started", "on_epoch", "on_trial_finished", "on_controller_updated"):
            setattr(self, hook, self.events.append)
        self.on_validation_updated = self.events.append
        self.limit = cancel_after_validation_runs
        self.should_cancel = self._cancel

    def _cancel(self):
        return self.limit is not None and len(self.validation_finished()) >= self.limit

    def of(self, kind):
        return [e for e in self.events if type(e).__name__ == kind]

    def validation_finished(self):
        return [e for e in self.of("TrialFinished") if e.kind == "validation"]


def test_the_validation_stage_retrains_the_top_patterns_and_no_dropout_with_paired_seeds():
    rec = Recorder()
    result = run_search(SPEC, callbacks=rec)
    assert result.status == "succeeded"
    search = [t for t in rec.of("TrialFinished") if t.kind == "search"]
    assert sorted(t.index for t in search) == [0, 1, 2, 3]
    started = [s for s in rec.of("TrialStarted") if s.kind == "validation"]
    seeds = validation_seeds(SPEC.seed, 2)
    assert all(s.seed in seeds and s.index >= VALIDATION_INDEX_BASE for s in started)
    arms = {s.arm for s in started}
    assert "none" in arms and 2 <= len(arms) <= 3  # top 2 distinct patterns (a rate-0 pattern is "none" itself)
    assert len(started) == 2 * len(arms)  # every arm with both seeds (racing needs more than 2 seeds to stop any)
    finals = [u for u in rec.of("ValidationUpdated") if u.final]
    assert len(finals) == 1 and result.validation == finals[0].report
    report = result.validation
    assert report["chosen"] in arms and report["pattern"]["variant"] in ("bernoulli", "none")
    chosen = next(a for a in report["arms"] if a["name"] == report["chosen"])
    values = [r["value"] for r in chosen["results"]]
    assert len(values) == 2 and chosen["mean"] == pytest.approx(sum(values) / 2)
    by_arm = {(e.index): e for e in rec.validation_finished()}
    for arm in report["arms"]:  # the table's numbers are the stored runs' rewards
        for run in arm["results"]:
            index = next(s.index for s in started if s.arm == arm["name"] and s.seed == run["seed"])
            assert by_arm[index].reward == pytest.approx(run["value"])
    # the search's best is still the best search trial, never a lucky validation run
    assert result.best_reward == max(t.reward for t in search)


def test_a_stage_resumed_after_an_interruption_reruns_no_finished_validation_run():
    first = Recorder(cancel_after_validation_runs=2)
    interrupted = run_search(SPEC, callbacks=first)
    assert interrupted.status == "cancelled"
    done = first.validation_finished()
    assert len(done) >= 2
    starts = {s.index: s for s in first.of("TrialStarted")}
    resume = ResumeState(controller_state=first.of("ControllerUpdated")[-1].state, trials_seen=4)
    for t in first.of("TrialFinished"):
        if t.kind == "search":
            resume.search_trials.append(
                CompletedTrial(t.index, starts[t.index].tokens, t.reward, t.status, starts[t.index].pattern)
            )
        elif t.status == "succeeded":
            resume.validation_done.append((starts[t.index].arm, starts[t.index].seed, t.reward))
    second = Recorder()
    result = run_search(SPEC, callbacks=second, resume=resume)
    assert result.status == "succeeded"
    assert [t for t in second.of("TrialFinished") if t.kind == "search"] == []  # the search stage is not re-run
    rerun = {(s.arm, s.seed) for s in second.of("TrialStarted")}
    finished_before = {(a, s) for a, s, _ in resume.validation_done}
    assert rerun and not (rerun & finished_before)
    arms = {a["name"] for a in result.validation["arms"]}
    assert len(finished_before | rerun) == 2 * len(arms)
    assert all(s.index >= validation_trial_index(SPEC, 0) for s in second.of("TrialStarted"))
