"""Multi-seed children: lockstep seeds equal the seeds trained alone, and the reported metrics are their mean."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from dropsearch.search.spec import SearchSpec
from dropsearch.workers.child import ChildConfig
from dropsearch.workers.datasets import load_dataset
from dropsearch.workers.multi_seed import MultiSeedTraining, mean_metrics
from dropsearch.workers.setup import PreparedSearch
from dropsearch.workers.train import ChildTraining, train_child

PATTERN = {"variant": "bernoulli", "sites": [{"site": "layers.drop1", "rate": 0.3}, {"site": "head.drop", "rate": 0.2}]}


@pytest.fixture(scope="module")
def bundle():
    return load_dataset("synthetic", params={"n": 128}, seed=5)


def config(**kw) -> ChildConfig:
    base = dict(model="mlp", model_params={"hidden": [16, 16]}, dataset="synthetic", dataset_params={"n": 128})
    base.update(pattern=PATTERN, epochs=3, batch_size=16, seed=5, device="cpu")
    base.update(kw)
    return ChildConfig(**base)


def test_child_training_returns_a_multi_seed_child_only_for_several_seeds(bundle):
    assert type(ChildTraining(config(), bundle=bundle)) is ChildTraining
    multi = ChildTraining(config(seeds=3), bundle=bundle)
    assert isinstance(multi, MultiSeedTraining) and multi.seeds == [5, 6, 7]
    assert all(type(c) is ChildTraining and c.config.seeds == 1 for c in multi.children)
    with pytest.raises(ValueError, match="seeds must be a positive integer"):
        ChildTraining(config(seeds=0), bundle=bundle)


def test_lockstep_seeds_equal_each_seed_alone_and_report_the_mean(bundle):
    torch.set_num_threads(1)
    history = train_child(config(seeds=3), report=lambda m: None, bundle=bundle)
    alone = [train_child(config(seed=s), report=lambda m: None, bundle=bundle) for s in (5, 6, 7)]
    assert [m["epoch"] for m in history] == [1, 2, 3]
    for epoch, merged in enumerate(history):
        for key in ("val_accuracy", "val_loss", "train_loss"):
            per_seed = [run[epoch][key] for run in alone]
            assert merged[f"{key}_seeds"] == per_seed  # bit for bit: dropout masks included
            assert merged[key] == pytest.approx(sum(per_seed) / 3, abs=1e-12)
        assert merged["seeds"] == [5, 6, 7]
    # the seeds really differ (otherwise the mean would prove nothing)
    assert len({tuple(m["val_loss_seeds"]) for m in history}) == 3
    assert len(set(history[-1]["val_loss_seeds"])) == 3


def test_every_seed_sees_the_same_split_when_the_bundle_is_loaded_here():
    multi = MultiSeedTraining(config(seeds=2))
    a, b = multi.children
    assert torch.equal(a.data.x_train, b.data.x_train) and torch.equal(a.data.evals["val"][1], b.data.evals["val"][1])


def test_mean_metrics_rules():
    merged = mean_metrics([{"epoch": 2, "acc": 0.5, "name": "a", "flag": True}, {"epoch": 2, "acc": 0.75}])
    assert merged == {"epoch": 2, "acc": 0.625, "acc_seeds": [0.5, 0.75], "name": "a", "flag": True}
    assert math.isnan(mean_metrics([{"loss": 1.0}, {"loss": float("nan")}])["loss"])
    with pytest.raises(ValueError, match="at least one seed"):
        mean_metrics([])


def test_checkpoint_round_trip_and_evaluate(bundle):
    multi = ChildTraining(config(seeds=2), bundle=bundle)
    multi.run_epoch()
    state = multi.state_dict()
    other = ChildTraining(config(seeds=2), bundle=bundle)
    other.load_state_dict(state)
    assert other.epoch == 1 and other.evaluate() == multi.evaluate()
    ev = multi.evaluate()
    assert ev["val_accuracy"] == pytest.approx(sum(ev["val_accuracy_seeds"]) / 2)
    with pytest.raises(ValueError, match="2 seeds"):
        ChildTraining(config(seeds=3), bundle=bundle).load_state_dict(state)


def test_the_spec_budget_reaches_the_child_config(bundle):
    spec = SearchSpec.model_validate(
        {"model": {"name": "mlp"}, "dataset": {"name": "synthetic"}, "budget": {"seeds_per_trial": 4}}
    )
    prepared = PreparedSearch(spec=spec, bundle=bundle, sites=(), space=None)  # type: ignore[arg-type]
    child = prepared.child_config({"variant": "none"})
    assert child.seeds == 4 and replace(child, seeds=1).seeds == 1
    default = SearchSpec.model_validate({"model": {"name": "mlp"}, "dataset": {"name": "synthetic"}})
    assert PreparedSearch(spec=default, bundle=bundle, sites=(), space=None).child_config({}).seeds == 1  # type: ignore[arg-type]
