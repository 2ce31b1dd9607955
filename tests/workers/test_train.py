"""Every variant trains every compatible built-in model for 2 epochs and beats chance (workers issue)."""

from __future__ import annotations

import random

import pytest
import torch

from dropsearch.search.builtin import build_space
from dropsearch.search.codec import tokens_to_pattern
from dropsearch.workers.child import ChildConfig
from dropsearch.workers.datasets import load_dataset
from dropsearch.workers.models import build_model, dropout_sites, model_info
from dropsearch.workers.train import ChildTraining, train_child

VARIANTS = ("none", "bernoulli", "spatial", "dropblock", "autodropout", "gsnr", "ydrop", "gradaug", "largedrop")
MODELS = ("convnet", "resnet", "mlp", "transformer")
# Model params a little larger than the registry's tiny ones, so that 2 epochs learn something.
PARAMS = {
    "convnet": {"widths": [16, 32]},
    "resnet": {"width": 8},
    "mlp": {"hidden": [64, 64]},
    "transformer": {"n_layer": 1, "n_head": 2, "n_embd": 32},
}


def _pattern_for(model: str, variant: str, bundle) -> dict | None:
    """A pattern of ``variant`` at rate 0.2 on every site of ``model``, or None when the variant does not fit."""
    net = build_model(model, params=PARAMS[model], in_shape=bundle.in_shape, num_classes=bundle.num_classes)
    try:
        space = build_space(dropout_sites(net), variants=[variant], rates=[0.2])
    except ValueError:
        return None
    if variant == "gradaug":
        try:
            from dropsearch.regularizers.slimmable import make_sliceable

            make_sliceable(net)
            net(torch.zeros(2, *bundle.in_shape))
        except (ValueError, RuntimeError):
            return None
    rng = random.Random(0)
    tokens = [rng.randrange(len(d.choices)) for d in space.decisions]
    tokens[space.position("variant")] = 0
    for name in space.names:  # variant parameters at their first (mildest) choice
        if name.startswith(f"{variant}/"):
            tokens[space.position(name)] = 0
    return tokens_to_pattern(space, tokens).to_dict()


@pytest.fixture(scope="module")
def bundles():
    return {
        "digits": load_dataset("digits", params={}, seed=0),
        "rotated-digits": load_dataset("rotated-digits", params={}, seed=0),
    }


@pytest.mark.parametrize("dataset", ["digits", "rotated-digits"])
@pytest.mark.parametrize("model", MODELS)
def test_every_variant_beats_chance(model, dataset, bundles):
    torch.set_num_threads(1)
    bundle = bundles[dataset]
    chance = 1.0 / bundle.num_classes
    trained = []
    for variant in VARIANTS:
        pattern = _pattern_for(model, variant, bundle)
        if pattern is None:
            continue
        config = ChildConfig(
            model=model,
            model_params=PARAMS[model],
            dataset=dataset,
            pattern=pattern,
            epochs=2,
            lr=3e-3,
            batch_size=32,
            pretrain_epochs=2 if variant == "largedrop" else 0,
        )
        history = train_child(config, report=lambda m: None, bundle=bundle)
        assert len(history) == 2
        last = history[-1]
        assert last["val_accuracy"] > chance + 0.15, (variant, last)
        if dataset == "rotated-digits":
            assert last["heldout_accuracy"] > chance + 0.05, (variant, last)
        trained.append(variant)
    assert {"none", "bernoulli", "gsnr", "ydrop", "largedrop"} <= set(trained)
    if model in ("convnet", "resnet"):
        assert set(trained) == set(VARIANTS)


def test_reports_every_epoch_with_metrics():
    reports = []
    config = ChildConfig(model="convnet", dataset="synthetic", pattern={"variant": "none"}, epochs=3)
    train_child(config, report=reports.append)
    assert [r["epoch"] for r in reports] == [1, 2, 3]
    for r in reports:
        assert {"val_accuracy", "val_loss", "train_loss", "samples_per_s"} <= set(r)
        assert 0.0 <= r["val_accuracy"] <= 1.0 and r["samples_per_s"] > 0


def test_should_stop_ends_training_early():
    config = ChildConfig(model="mlp", dataset="synthetic", pattern={"variant": "none"}, epochs=5)
    history = train_child(config, report=lambda m: None, should_stop=lambda m: m["epoch"] >= 2)
    assert len(history) == 2


def test_same_seed_same_metrics_and_checkpoint_round_trip():
    config = ChildConfig(
        model="convnet",
        model_params={"widths": [8, 16]},
        dataset="synthetic",
        pattern={"variant": "bernoulli", "sites": [{"site": "features.drop1", "rate": 0.3}]},
        epochs=2,
    )
    a = train_child(config, report=lambda m: None)
    b = train_child(config, report=lambda m: None)
    assert [m["val_loss"] for m in a] == [m["val_loss"] for m in b]
    child = ChildTraining(config)
    child.run_epoch()
    state = child.state_dict()
    other = ChildTraining(config)
    other.load_state_dict(state)
    assert other.epoch == 1
    assert other.evaluate() == child.evaluate()


def test_largedrop_fine_tunes_from_a_checkpoint(tmp_path):
    bundle = load_dataset("digits", params={}, seed=0)
    net = build_model("convnet", params={}, in_shape=bundle.in_shape, num_classes=bundle.num_classes)
    path = tmp_path / "backbone.pt"
    torch.save(net.state_dict(), path)
    config = ChildConfig(
        model="convnet",
        dataset="digits",
        pattern={"variant": "largedrop", "sites": [{"site": "head.drop", "rate": 0.9}]},
        epochs=1,
        checkpoint_path=str(path),
    )
    child = ChildTraining(config, bundle=bundle)
    for name, value in net.state_dict().items():
        assert torch.equal(child.model.state_dict()[name], value), name


def test_injected_failure_raises_at_that_epoch():
    config = ChildConfig(
        model="mlp", dataset="synthetic", pattern={"variant": "none"}, epochs=3, inject_failure_at_epoch=2
    )
    reports = []
    with pytest.raises(RuntimeError, match="epoch 2"):
        train_child(config, report=reports.append)
    assert len(reports) == 1


def test_every_model_lists_tiny_params():
    for model in MODELS:
        assert isinstance(model_info(model).tiny_params, dict)


def _largedrop(epochs: int, pretrain: int, **extra) -> ChildConfig:
    pattern = {"variant": "largedrop", "sites": [{"site": "head.drop", "rate": 0.9}], "params": {}}
    pattern["params"]["pretrain_epochs"] = pretrain
    return ChildConfig(
        model="convnet", model_params={"widths": [8, 16]}, dataset="digits", pattern=pattern, epochs=epochs, **extra
    )


def test_largedrop_pretraining_epochs_count_inside_the_trial_budget(monkeypatch):
    """epochs_per_trial = 5 with pretrain_epochs = 2: 2 plain epochs, then 3 under the pattern; 5 in all, each
    reported (1..5), as the engine's loop ``while child.epoch < epochs`` runs it."""
    bundle = load_dataset("digits", params={}, seed=0)
    steps: list[str] = []  # one entry per optimizer step: whether the pattern's dropout was installed then
    real_step = torch.optim.Adam.step

    def counting_step(self, *args, **kwargs):
        steps.append("pattern" if child_ref and getattr(child_ref[0], "installed", True) else "plain")
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", counting_step)
    child_ref: list[ChildTraining] = []
    config = _largedrop(epochs=5, pretrain=2, batch_size=64)
    child = ChildTraining(config, bundle=bundle)
    child_ref.append(child)
    in_constructor = len(steps)
    reports = []
    while child.epoch < config.epochs:  # the engine's loop (dropsearch.runner.trainable.train_trial)
        reports.append(child.run_epoch())
    per_epoch = -(-len(bundle.x_train) // 64)  # batches of one pass over the training split (the last one partial)
    assert [r["epoch"] for r in reports] == [1, 2, 3, 4, 5]
    assert len(steps) == 5 * per_epoch  # pre-training + fine-tuning == epochs_per_trial, not 2 + 5
    assert in_constructor == 0  # pre-training is not hidden in the constructor: its epochs are reported
    assert steps == ["plain"] * (2 * per_epoch) + ["pattern"] * (3 * per_epoch)
    assert child.pretrain_epochs == 2 and child.installed
    assert type(child.model.head.drop).__name__ == "BernoulliDropout"
    for r in reports:
        assert {"val_accuracy", "val_loss", "train_loss"} <= set(r)


@pytest.mark.parametrize(("epochs", "pretrain", "expected"), [(3, 5, 2), (1, 5, 0), (4, 0, 0), (4, 3, 3)])
def test_largedrop_pretraining_leaves_at_least_one_epoch_under_the_pattern(epochs, pretrain, expected):
    history = train_child(_largedrop(epochs=epochs, pretrain=pretrain), report=lambda m: None)
    assert [m["epoch"] for m in history] == list(range(1, epochs + 1))
    child = ChildTraining(_largedrop(epochs=epochs, pretrain=pretrain))
    assert child.pretrain_epochs == expected and child.installed == (expected == 0)


def test_a_checkpoint_taken_after_pretraining_restores_under_the_pattern():
    config = _largedrop(epochs=4, pretrain=2)
    child = ChildTraining(config)
    for _ in range(3):
        child.run_epoch()
    other = ChildTraining(config)
    assert not other.installed
    other.load_state_dict(child.state_dict())
    assert other.installed and other.epoch == 3
    assert other.evaluate() == child.evaluate()
    assert other.run_epoch()["epoch"] == 4
