"""``PatternTrainer``: one epoch of the real Hugging Face ``Trainer`` with a GSNR and a GradAug pattern."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from tests.integrations._data import mean_first_last, token_rows

transformers = pytest.importorskip("transformers")
from dropsearch.integrations.hf import PatternTrainer  # noqa: E402
from dropsearch.regularizers.bernoulli import BernoulliDropout  # noqa: E402
from dropsearch.regularizers.gradaug import GradAug  # noqa: E402
from dropsearch.regularizers.gsnr_dropout import GSNRDropout  # noqa: E402
from dropsearch.regularizers.slimmable import SlicedLinear  # noqa: E402


class Rows(Dataset):
    def __init__(self, ids: torch.Tensor, labels: torch.Tensor) -> None:
        self.ids, self.labels = ids, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.ids[i], "attention_mask": torch.ones_like(self.ids[i]), "labels": self.labels[i]}


def tiny_bert() -> nn.Module:
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=40, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        max_position_embeddings=16, num_labels=3,
    )  # fmt: skip
    return transformers.BertForSequenceClassification(config)


class BagOfTokens(nn.Module):
    """Embedding bag and an MLP; returns ``{"logits", "loss"}`` like a Hugging Face model."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.emb = nn.Embedding(40, 32)
        self.fc1 = nn.Linear(32, 64)
        self.drop = nn.Dropout(0.1)
        self.fc2 = nn.Linear(64, 3)

    def forward(self, input_ids, attention_mask=None, labels=None):
        h = self.emb(input_ids).mean(1)  # (B, 32)
        logits = self.fc2(self.drop(torch.relu(self.fc1(h))))
        out = {"logits": logits}
        if labels is not None:
            out["loss"] = F.cross_entropy(logits, labels)
        return out


def train_one_epoch(model: nn.Module, pattern: dict, tmp_path, lr: float) -> tuple[PatternTrainer, list[float]]:
    ids, labels = token_rows()
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path), num_train_epochs=1, per_device_train_batch_size=16, learning_rate=lr,
        logging_steps=1, save_strategy="no", report_to=[], use_cpu=True, disable_tqdm=True, seed=0,
        lr_scheduler_type="constant", dataloader_num_workers=0,
    )  # fmt: skip
    trainer = PatternTrainer(model=model, args=args, train_dataset=Rows(ids, labels), pattern=pattern)
    trainer.train()
    losses = [row["loss"] for row in trainer.state.log_history if "loss" in row]
    return trainer, losses


def test_bert_one_epoch_with_gsnr_and_the_loss_falls(tmp_path):
    trainer, losses = train_one_epoch(tiny_bert(), {"variant": "gsnr", "params": {"p": 0.1}}, tmp_path, 5e-3)
    step = trainer.pattern_step
    assert step.own_step and isinstance(step._batch_helper, GSNRDropout)
    assert step._batch_helper.masks  # the masked step ran through the Trainer
    assert len(losses) == 32
    first, last = mean_first_last(losses, 6)
    assert last < 0.8 * first, losses


def test_one_epoch_with_gradaug_sub_networks_and_the_loss_falls(tmp_path):
    model = BagOfTokens()
    trainer, losses = train_one_epoch(model, {"variant": "gradaug", "params": {"n_subnets": 2}}, tmp_path, 1e-2)
    assert isinstance(trainer.pattern_step._batch_helper, GradAug)
    assert isinstance(model.fc1, SlicedLinear)  # the sub-networks are width slices of this model
    first, last = mean_first_last(losses, 6)
    assert last < 0.8 * first, losses


def test_site_variants_keep_the_stock_step_and_bad_settings_are_refused(tmp_path):
    model = BagOfTokens()
    trainer, losses = train_one_epoch(
        model, {"variant": "bernoulli", "sites": [{"site": "drop", "rate": 0.2}]}, tmp_path, 1e-2
    )
    assert not trainer.pattern_step.own_step and isinstance(model.drop, BernoulliDropout)
    first, last = mean_first_last(losses, 6)
    assert last < first
    args = transformers.TrainingArguments(output_dir=str(tmp_path), gradient_accumulation_steps=2, report_to=[])
    with pytest.raises(ValueError, match="gradient_accumulation_steps must be 1"):
        PatternTrainer(model=BagOfTokens(), args=args, pattern={"variant": "gsnr"})
