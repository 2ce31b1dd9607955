"""The child training loop: build the model, install the pattern, train epoch by epoch, report metrics.

Read top to bottom (nanoGPT style): :func:`train_child` is the whole story; :class:`ChildTraining` holds the
state between epochs so a Ray actor can run one epoch per call and a scheduler (ASHA) can stop it in between.

Usage::

    config = ChildConfig(model="convnet", dataset="digits", pattern={"variant": "none"}, epochs=2)
    history = train_child(config, report=print)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

import dropsearch
from dropsearch.regularizers import AppliedPattern
from dropsearch.regularizers.pattern import Pattern, get_variant
from dropsearch.workers.child import ChildConfig
from dropsearch.workers.datasets import DatasetBundle, load_dataset
from dropsearch.workers.device_data import DeviceData, resolve_device
from dropsearch.workers.models import build_model

__all__ = ["ChildTraining", "train_child", "loss_for_task"]

Report = Callable[[dict[str, Any]], None]


def loss_for_task(task: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Cross-entropy for ``(B, K)`` class logits, or for ``(B, T, V)`` next-token logits against ``(B, T)``."""
    if task == "language_model":
        return lambda logits, y: F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), y.reshape(-1))
    return lambda logits, y: F.cross_entropy(logits.float(), y)


def _make_optimizer(model: nn.Module, config: ChildConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=0.9, weight_decay=config.weight_decay)
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    raise ValueError(f"optimizer must be 'adam' or 'sgd', got {config.optimizer!r}")


class ChildTraining:
    """One child network in training; call :meth:`run_epoch` once per epoch.

    With ``config.seeds > 1`` the constructor returns a :class:`~dropsearch.workers.multi_seed.MultiSeedTraining`
    instead: that many seeds of the child in lockstep, reporting the mean of each metric (same interface).

    Args:
        config: what to train.
        bundle: the dataset, when the caller already holds it (workers cache it); loaded otherwise.
        device: where to train; ``None`` resolves ``config.device``.
        model_factory: builds the model instead of the registry's ``config.model``:
            ``model_factory(*, in_shape, num_classes) -> nn.Module``. Only ``dropsearch.optimize`` gives one (an
            in-process callable, never a name from a request).
    """

    def __new__(cls, config: ChildConfig | None = None, **kwargs: Any) -> Any:
        """One child, or a :class:`~dropsearch.workers.multi_seed.MultiSeedTraining` when ``config.seeds > 1``."""
        if cls is ChildTraining and config is not None and config.seeds != 1:
            from dropsearch.workers.multi_seed import MultiSeedTraining

            return MultiSeedTraining(config, **kwargs)
        return super().__new__(cls)

    def __init__(
        self,
        config: ChildConfig,
        *,
        bundle: DatasetBundle | None = None,
        device: str | None = None,
        model_factory: Callable[..., nn.Module] | None = None,
    ):
        self.config = config
        self.device = torch.device(device or resolve_device(config.device))
        torch.manual_seed(config.seed)
        bundle = bundle or load_dataset(
            config.dataset, params=config.dataset_params, seed=config.seed, allowed_roots=config.allowed_roots
        )
        self.data = DeviceData.from_bundle(bundle, self.device, pin=self.device.type == "cuda")
        self._test = (bundle.x_test, bundle.y_test) if bundle.x_test is not None else None  # moved when asked
        self.task = bundle.task
        self.loss_fn = loss_for_task(bundle.task)
        if model_factory is not None:
            self.model = model_factory(in_shape=bundle.in_shape, num_classes=bundle.num_classes).to(self.device)
        else:
            self.model = build_model(
                config.model, params=config.model_params, in_shape=bundle.in_shape, num_classes=bundle.num_classes
            ).to(self.device)
        self._images = len(bundle.in_shape) == 3
        if self.device.type == "cuda" and config.channels_last and self._images:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.generator = torch.Generator(device="cpu").manual_seed(config.seed)
        self.optimizer = _make_optimizer(self.model, config)
        self.epoch = 0
        self.pattern = Pattern.from_dict(config.pattern)
        self.pretrain_epochs = self._pretrain_epochs()
        self.forward_model: nn.Module = self.model
        self.installed = False
        if self.pretrain_epochs:  # a plain step (no pattern) until the pre-training epochs are done
            self.applied = AppliedPattern(model=self.model, pattern=Pattern.from_dict({"variant": "none"}))
        else:
            self._install()

    def _autocast(self) -> Any:
        if self.device.type == "cuda" and self.config.bf16:
            return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
        return nullcontext()

    def _pretrain_epochs(self) -> int:
        """How many of the ``config.epochs`` epochs train without the pattern first (loads a checkpoint if given).

        Pre-training counts inside the trial's epochs: ``config.pretrain_epochs``, or a fine-tuning variant's
        ``params.pretrain_epochs`` (e.g. largedrop's) when larger, capped so that at least one epoch trains under
        the pattern; 0 when ``config.checkpoint_path`` gives an already trained network.
        """
        if self.config.checkpoint_path:
            state = torch.load(self.config.checkpoint_path, map_location=self.device, weights_only=True)
            self.model.load_state_dict(state)
            return 0
        epochs = self.config.pretrain_epochs
        if get_variant(self.pattern.variant).fine_tune:
            epochs = max(epochs, int(self.pattern.params.get("pretrain_epochs", 0)))
        return max(0, min(epochs, self.config.epochs - 1))

    def _install(self) -> None:
        """Install the pattern (after pre-training); a fine-tuning variant starts a fresh optimizer."""
        self.applied = dropsearch.apply(self.model, self.pattern)
        if get_variant(self.pattern.variant).fine_tune:
            self.optimizer = _make_optimizer(self.model, self.config)  # fresh moments for the fine-tuning phase
        if self.config.compile:
            self.forward_model = torch.compile(self.model)
            if self.applied.helper is None:
                self.applied.model = self.forward_model  # the plain training step runs the compiled model too
        self.installed = True

    def run_epoch(self) -> dict[str, Any]:
        """Train one epoch, then evaluate; returns the epoch's metrics.

        Epochs ``1..pretrain_epochs`` train without the pattern (plain step) and are reported like any other; the
        pattern is installed when the last of them ends, so the later epochs train under it.
        """
        self.epoch += 1
        cfg = self.config
        if cfg.inject_failure_at_epoch == self.epoch and cfg.attempt <= cfg.inject_failure_attempts:
            raise RuntimeError(f"injected failure at epoch {self.epoch}")
        start, seen = time.perf_counter(), 0
        total_loss = torch.zeros((), device=self.device)  # summed on the device: no host sync per step
        for x, y, d in self.data.train_batches_with_domains(self.config.batch_size, self.generator):
            with self._autocast():  # domain ids (None without domains) reach helpers that use them (GSNR)
                loss = self.applied.training_step(x, y, self.loss_fn, optimizer=self.optimizer, domains=d)
            total_loss += loss.detach().float() * len(x)
            seen += len(x)
        train_loss = float(total_loss) / max(seen, 1)
        train_s = time.perf_counter() - start
        metrics: dict[str, Any] = {
            "epoch": self.epoch,
            "train_loss": train_loss,
            "samples_per_s": seen / max(train_s, 1e-9),
            "train_s": train_s,
        }
        metrics.update(self.evaluate())
        if not self.installed and self.epoch >= self.pretrain_epochs:
            self._install()
        return metrics

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Validation loss and accuracy, plus held-out-domain accuracy where the dataset has domains."""
        self.model.eval()
        out: dict[str, float] = {}
        for prefix, (x, y) in self.data.eval_sets().items():
            out.update(self._score(prefix, x, y))
        self.model.train()
        return out

    @torch.no_grad()
    def evaluate_test(self) -> dict[str, float]:
        """``test_loss`` and ``test_accuracy`` on the dataset's test split (``x_test``), for final numbers only.

        Never called during a search: rewards and choices come from the validation split. Empty when the dataset
        has no test split (e.g. digits; MNIST-1D has 1000 examples, CIFAR-10 its ``test_batch``).
        """
        if self._test is None:
            return {}
        self.model.eval()
        x, y = (t.to(self.device) for t in self._test)
        out = self._score("test", x, y)
        self.model.train()
        return out

    def _score(self, prefix: str, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        """Mean loss and accuracy of the model (already in eval mode) on ``x``, in chunks of 1024."""
        loss, correct, count = 0.0, 0, 0
        for start in range(0, len(x), 1024):
            xb, yb = x[start : start + 1024], y[start : start + 1024]
            with self._autocast():
                logits = self.forward_model(xb)
            loss += float(self.loss_fn(logits, yb)) * len(xb)
            correct += int((logits.argmax(-1) == yb).sum())
            count += yb.numel()
        return {f"{prefix}_loss": loss / max(len(x), 1), f"{prefix}_accuracy": correct / max(count, 1)}

    def state_dict(self) -> dict[str, Any]:
        """Model and optimizer state, for a per-epoch checkpoint."""
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(), "epoch": self.epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume from :meth:`state_dict` (a restored Tune checkpoint)."""
        if not self.installed and int(state["epoch"]) >= self.pretrain_epochs:
            self._install()  # the checkpoint was taken after pre-training: the pattern (and its optimizer) first
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.epoch = int(state["epoch"])


def train_child(
    config: ChildConfig,
    report: Report,
    *,
    bundle: DatasetBundle | None = None,
    should_stop: Callable[[dict[str, Any]], bool] | None = None,
) -> list[dict[str, Any]]:
    """Train one child for ``config.epochs`` epochs, calling ``report(metrics)`` after each.

    Args:
        config: the child to train.
        report: receives each epoch's metrics (``epoch``, ``val_accuracy``, ``val_loss``, ``heldout_accuracy``
            where the dataset has held-out domains, ``train_loss``, ``samples_per_s``).
        bundle: an already loaded dataset.
        should_stop: asked after each epoch; ``True`` ends training early (a scheduler's decision).

    Returns:
        The list of per-epoch metrics.
    """
    child = ChildTraining(config, bundle=bundle)
    history = []
    for _ in range(config.epochs):
        metrics = child.run_epoch()
        history.append(metrics)
        report(metrics)
        if should_stop is not None and should_stop(metrics):
            break
    return history
