"""ControllerSearcher driven directly through the Searcher protocol (no Ray cluster needed)."""

import pytest
import torch
from ray.tune.search import Searcher

from dropsearch.controller import ControllerSearcher, RandomController, ReinforceController
from dropsearch.regularizers.pattern import Pattern, Site
from dropsearch.search.builtin import build_space
from dropsearch.search.codec import tokens_to_pattern
from dropsearch.search.reward import LAST_REPORT

torch.set_num_threads(1)
SPACE = build_space((Site("conv", "conv", 8), Site("fc", "linear", 8)), variants=["bernoulli", "autodropout"])


def _searcher(**kwargs):
    options = {"metric": "acc", "mode": "max", "batch_size": 3, "max_trials": 7, **kwargs}
    return ControllerSearcher(RandomController(SPACE, seed=0), SPACE, **options)


def _loss_searcher_with_its_first_batch_handed_out():
    """A searcher minimizing ``loss`` whose first batch (trials t0, t1, t2) is running."""
    s = _searcher(mode="min", metric="loss")
    for i in range(3):
        s.suggest(f"t{i}")
    return s


def test_batches_wait_for_completion_and_update_once():
    s = _searcher()
    configs = [s.suggest(f"t{i}") for i in range(3)]
    assert s.suggest("t3") is None and s.suggest("t3") is None  # batch of 3 still running
    assert [c["proposal_index"] for c in configs] == [0, 1, 2]
    assert all(c["policy_version"] == 0 for c in configs)
    c0 = configs[0]
    assert Pattern.from_dict(c0["pattern"]) == tokens_to_pattern(SPACE, c0["tokens"])
    s.on_trial_complete("t0", {"acc": 0.5})
    s.on_trial_complete("t1", {"acc": 0.7})
    assert s.suggest("t3") is None and s.controller.n_updates == 0
    s.on_trial_complete("t2", {"acc": 0.6})
    assert s.controller.n_updates == 1
    assert [r for _, r, _ in s.controller.history] == [0.5, 0.7, 0.6]
    nxt = s.suggest("t3")
    assert nxt["proposal_index"] == 3 and nxt["policy_version"] == 1


def test_reward_rules_errors_early_stops_and_min_mode():
    s = _loss_searcher_with_its_first_batch_handed_out()
    s.on_trial_result("t0", {"loss": 2.0})
    s.on_trial_result("t0", {"loss": 1.5})
    s.on_trial_complete("t0", None)  # stopped early without a final result: last reported metric
    s.on_trial_result("t1", {"loss": 0.5})
    s.on_trial_complete("t1", {"loss": 0.5}, error=True)  # errored: excluded
    s.on_trial_complete("t2", {"other": 1.0})  # never reported the metric: excluded
    assert s.controller.n_updates == 1
    assert [r for _, r, _ in s.controller.history] == [-1.5]
    s.on_trial_complete("t1", {"loss": 0.1})  # a late second completion of a closed batch is ignored
    assert len(s.controller.history) == 1


def test_batch_without_valid_reward_is_dropped_and_max_trials_finishes():
    s = _searcher()
    for i in range(3):
        s.suggest(f"t{i}")
        s.on_trial_complete(f"t{i}", None, error=True)
    assert s.controller.n_updates == 0
    ids = [f"u{i}" for i in range(4)]
    configs = [s.suggest(t) for t in ids]
    assert configs[3] is None  # the second batch holds 3 proposals
    for t in ids[:3]:
        s.on_trial_complete(t, {"acc": 1.0})
    last = s.suggest("v0")
    assert last["proposal_index"] == 6
    assert s.suggest("v1") == Searcher.FINISHED  # all 7 handed out; the final batch of 1 still runs
    assert s.controller.n_updates == 1
    s.on_trial_complete("v0", {"acc": 0.0})
    assert s.controller.n_updates == 2


def test_state_round_trip_mid_batch_continues_identically(tmp_path):
    def make():
        return ControllerSearcher(ReinforceController(SPACE, seed=1, lr=0.05), metric="acc", mode="max", batch_size=2)

    def drive(searcher, start, stop):
        out = []
        for i in range(start, stop):
            config = searcher.suggest(f"t{i}")
            out.append(config["tokens"])
            if i % 2 == 1:
                searcher.on_trial_complete(f"t{i - 1}", {"acc": float(sum(out[-2]))})
                searcher.on_trial_complete(f"t{i}", {"acc": float(sum(config["tokens"]))})
        return out

    straight = make()
    expected = drive(straight, 0, 12)
    first = make()
    head = drive(first, 0, 5)  # stops with trial t4 open
    first.save(str(tmp_path / "state.pkl"))
    resumed = make()
    resumed.restore(str(tmp_path / "state.pkl"))
    assert resumed.controller.n_updates == 2 and resumed.n_suggested == 5
    resumed.on_trial_complete("t4", {"acc": float(sum(head[-1]))})
    config = resumed.suggest("t5")
    resumed.on_trial_complete("t5", {"acc": float(sum(config["tokens"]))})
    tail = [config["tokens"], *drive(resumed, 6, 12)]
    assert head + tail == expected
    assert resumed.controller.state_dict()["baseline"] == straight.controller.state_dict()["baseline"]


def test_conflicting_metric_and_bad_arguments():
    s = _searcher()
    assert s.set_search_properties("acc", "max", {})
    with pytest.raises(ValueError, match="metric 'loss' from TuneConfig differs"):
        s.set_search_properties("loss", None, {})
    bare = ControllerSearcher(RandomController(SPACE))
    assert bare.set_search_properties("loss", "min", {}) and (bare.metric, bare.mode) == ("loss", "min")
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        _searcher(batch_size=0)
    other = build_space((Site("fc", "linear", 8),), variants=["bernoulli"])
    with pytest.raises(ValueError, match="space does not match"):
        ControllerSearcher(RandomController(SPACE), other)


def test_trials_completed_before_a_restart_are_fed_to_the_update_not_handed_out_again():
    def run(searcher, rewards):
        """Drive one batch: hand out what it hands out, complete each with its reward; returns handed indices."""
        handed = []
        while True:
            trial_id = f"t{len(handed)}"
            config = searcher.suggest(trial_id)
            if config is None or config == Searcher.FINISHED:
                return handed, config
            handed.append(config["proposal_index"])
            searcher.on_trial_complete(trial_id, {"loss": rewards[config["proposal_index"]]})

    losses = {0: 0.9, 1: 0.4, 2: 0.7, 3: 0.3, 4: 0.8, 5: 0.6}
    straight = ControllerSearcher(
        ReinforceController(SPACE, seed=3), metric="loss", mode="min", batch_size=3, max_trials=6
    )
    handed, _ = run(straight, losses)
    assert handed == [0, 1, 2, 3, 4, 5]
    # a restart after trials 0 and 2 of the first batch ended: only trial 1 and the second batch run again
    updates = []
    resumed = ControllerSearcher(
        ReinforceController(SPACE, seed=3),
        metric="loss",
        mode="min",
        batch_size=3,
        max_trials=6,
        completed={0: 0.9, 2: 0.7},
        on_update=lambda stats, controller: updates.append(controller.n_sampled),
    )
    handed, end = run(resumed, losses)
    assert handed == [1, 3, 4, 5] and end == Searcher.FINISHED
    assert updates == [3, 6]
    assert resumed.controller.history == straight.controller.history  # same proposals, same signed rewards
    assert [r for _, r, _ in resumed.controller.history][:3] == [-0.9, -0.4, -0.7]  # signed inside only


def test_a_last_report_completes_its_trial_so_the_next_batch_is_ready_before_tune_ends_the_trial():
    s = _loss_searcher_with_its_first_batch_handed_out()
    s.on_trial_complete("t0", {"loss": 0.5})
    s.on_trial_complete("t1", {"loss": 0.7})
    s.on_trial_result("t2", {"loss": 0.9, "epochs": [{"loss": 0.9}]})  # not its last report: still running
    assert s.suggest("t3") is None and s.controller.n_updates == 0
    s.on_trial_result("t2", {"loss": 0.4, "epochs": [{"loss": 0.6}, {"loss": 0.4}], LAST_REPORT: True})
    assert s.controller.n_updates == 1  # the batch closed on the last report, before on_trial_complete
    assert [r for _, r, _ in s.controller.history] == [-0.5, -0.7, -0.4]
    assert s.suggest("t3")["proposal_index"] == 3
    # Tune then ends t2 (even with an error while its process ends): nothing is counted twice
    s.on_trial_complete("t2", {"loss": 0.1}, error=True)
    assert s.controller.n_updates == 1 and len(s.controller.history) == 3
