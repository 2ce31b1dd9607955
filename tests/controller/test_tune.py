"""A real Ray Tune run on local Ray driven by ControllerSearcher (slow: starts Ray)."""

import os

import pytest

from dropsearch.controller import ControllerSearcher, ReinforceController
from dropsearch.regularizers.pattern import Site
from dropsearch.search.builtin import build_space
from tests.controller._tune_trainable import trainable

ray = pytest.importorskip("ray")
tune = pytest.importorskip("ray.tune")

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("local_ray")]
SPACE = build_space((Site("conv", "conv", 8), Site("fc", "linear", 8)), variants=["bernoulli", "autodropout"])


def _tuner(tmp_path, searcher, trials):
    return tune.Tuner(
        trainable,
        param_space={"flag": str(tmp_path / "fail.flag"), "driver_pid": os.getpid()},
        tune_config=tune.TuneConfig(
            search_alg=searcher, num_samples=trials, max_concurrent_trials=2, reuse_actors=True
        ),
        run_config=tune.RunConfig(
            name="exp",
            storage_path=str(tmp_path),
            verbose=0,
        ),
    )


def _stored_searcher(path):
    searcher = ControllerSearcher(ReinforceController(SPACE, seed=0), metric="reward", mode="max")
    searcher.restore_from_dir(path)
    return searcher


def test_tune_run_updates_the_policy_per_batch(tmp_path):
    searcher = ControllerSearcher(
        ReinforceController(SPACE, seed=0, lr=0.05), metric="reward", mode="max", batch_size=2, max_trials=6
    )
    results = _tuner(tmp_path, searcher, 6).fit()
    assert results.num_errors == 0 and len(results) == 6
    configs = sorted((r.config for r in results), key=lambda c: c["proposal_index"])
    assert [c["proposal_index"] for c in configs] == list(range(6))
    assert [c["policy_version"] for c in configs] == [0, 0, 1, 1, 2, 2]
    stored = _stored_searcher(str(tmp_path / "exp"))
    assert stored.controller.n_updates == 3 and len(stored.controller.history) == 6
    assert searcher.controller.n_updates == 3
    for r in results:
        tokens = r.config["tokens"]
        assert r.metrics["reward"] == pytest.approx(sum(tokens) / len(tokens))
    rewards = sorted(rw for _, rw, _ in stored.controller.history)
    assert rewards == sorted(r.metrics["reward"] for r in results)


def test_interrupted_run_resumes_the_stored_controller(tmp_path):
    (tmp_path / "fail.flag").touch()  # proposal 5 sends the driver SIGUSR1 (like Ctrl+C) while this exists
    searcher = ControllerSearcher(
        ReinforceController(SPACE, seed=0, lr=0.05), metric="reward", mode="max", batch_size=2, max_trials=8
    )
    _tuner(tmp_path, searcher, 8).fit()
    exp = str(tmp_path / "exp")
    interrupted = _stored_searcher(exp)
    assert interrupted.controller.n_updates == 2 and len(interrupted.controller.history) == 4
    assert interrupted.n_suggested == 6  # proposals 4 and 5 were handed out; the run stopped during 5
    assert tune.Tuner.can_restore(exp)
    results = tune.Tuner.restore(exp, trainable, resume_unfinished=True).fit()
    assert results.num_errors == 0
    configs = sorted((r.config for r in results), key=lambda c: c["proposal_index"])
    assert [c["proposal_index"] for c in configs] == list(range(8))  # nothing re-sampled or lost
    assert [c["policy_version"] for c in configs] == [0, 0, 1, 1, 2, 2, 3, 3]
    final = _stored_searcher(exp)
    assert final.controller.n_updates == 4 and final.controller.history[:4] == interrupted.controller.history
    # the same controller run straight through proposes exactly what the interrupted + restored run proposed
    straight = ReinforceController(SPACE, seed=0, lr=0.05)
    for b in range(4):
        batch = straight.sample(2)
        assert [list(p.tokens) for p in batch] == [c["tokens"] for c in configs[2 * b : 2 * b + 2]]
        straight.update(batch, [sum(p.tokens) / len(p.tokens) for p in batch])
    assert straight.baseline == final.controller.baseline
    assert straight.most_likely() == final.controller.most_likely()
