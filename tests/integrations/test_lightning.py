"""``PatternModule``: one epoch of real PyTorch Lightning per variant that needs its own step; the loss falls."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from tests.integrations._data import blobs, mean_first_last

L = pytest.importorskip("lightning")
from dropsearch.integrations.lightning import PatternModule, split_batch  # noqa: E402
from dropsearch.regularizers.gradaug import GradAug  # noqa: E402
from dropsearch.regularizers.gsnr_dropout import GSNRDropout  # noqa: E402


def small_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.1), nn.Linear(16, 3),
    )  # fmt: skip


class Losses(L.Callback):
    def __init__(self) -> None:
        self.values: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        self.values.append(float(loss))


def fit_one_epoch(pattern: dict) -> tuple[PatternModule, list[float]]:
    x, y = blobs()
    loader = DataLoader(TensorDataset(x, y), batch_size=16, shuffle=True, generator=torch.Generator().manual_seed(0))
    val = DataLoader(TensorDataset(*blobs(96, seed=1)), batch_size=32)
    module = PatternModule(small_cnn(), pattern, lr=1e-2)
    losses = Losses()
    trainer = L.Trainer(
        max_epochs=1, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, callbacks=[losses], num_sanity_val_steps=0,
    )  # fmt: skip
    trainer.fit(module, loader, val)
    assert trainer.callback_metrics["val_loss"] > 0
    return module, losses.values


@pytest.mark.parametrize(
    ("pattern", "helper_type"),
    [
        ({"variant": "gsnr", "params": {"p": 0.1}}, GSNRDropout),
        ({"variant": "gradaug", "params": {"n_subnets": 2, "resolutions": [8, 6]}}, GradAug),
    ],
    ids=["gsnr", "gradaug"],
)
def test_one_epoch_with_the_variants_own_step_and_the_loss_falls(pattern, helper_type):
    module, losses = fit_one_epoch(pattern)
    assert isinstance(module.pattern_step.applied.helper, helper_type)
    assert module.automatic_optimization is False
    assert len(losses) == 32  # 512 examples / 16
    first, last = mean_first_last(losses, 6)
    assert last < 0.8 * first, losses


def test_gsnr_masks_were_applied_during_the_lightning_steps():
    module, _ = fit_one_epoch({"variant": "gsnr", "params": {"p": 0.25}})
    masks = module.pattern_step.applied.helper.masks  # the last step's dropped entries per weight
    assert set(masks) == {"0.weight", "3.weight"}  # conv weights; the classifier is left alone
    for name, mask in masks.items():
        assert int(mask.sum()) == round(0.25 * mask.numel()), name


def test_batches_are_pairs_or_dicts_with_labels():
    x, y = torch.zeros(2, 3), torch.tensor([0, 1])
    assert split_batch((x, y))[1] is y
    inputs, targets = split_batch({"input_ids": x, "labels": y})
    assert targets is y and list(inputs) == ["input_ids"]
    with pytest.raises(ValueError, match="no targets under 'labels'"):
        split_batch({"input_ids": x})
