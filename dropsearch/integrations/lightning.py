"""A PyTorch Lightning module that trains any model under a dropsearch pattern.

Site variants (Bernoulli, spatial, DropBlock, AutoDropout, very-large dropout) only install modules; GSNR, GradAug
and Y-Drop need their own training step (GSNR's masked update, GradAug's sub-network passes, Y-Drop's refreshes).
:class:`PatternModule` uses Lightning's manual optimization so every variant runs its own step, with the optimizer
Lightning manages (it is zeroed and stepped once per batch)::

    import lightning as L
    from dropsearch.integrations.lightning import PatternModule

    module = PatternModule(MyNet(), json.load(open("pattern.json")), lr=1e-3)
    L.Trainer(max_epochs=10).fit(module, train_loader, val_loader)

Batches are ``(inputs, targets)`` pairs or dicts with the targets under ``label_key`` (``"labels"``). The variant's
backward runs in full precision (``loss.backward()``): use the default ``precision="32-true"`` or ``"bf16-mixed"``,
not ``"16-mixed"`` (its gradient scaler would not see the step). Importing this module imports ``lightning``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn

from dropsearch.integrations.step import PatternStep, logits_of
from dropsearch.regularizers.pattern import Pattern, Site

__all__ = ["PatternModule", "split_batch"]

OptimizerFactory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]


def split_batch(batch: Any, label_key: str = "labels") -> tuple[Any, torch.Tensor]:
    """``(inputs, targets)`` of a batch: a pair, or a dict whose targets are under ``label_key``.

    Raises:
        ValueError: for a batch of another form, naming it.
    """
    if isinstance(batch, Mapping):
        if label_key not in batch:
            raise ValueError(f"dict batch has no targets under {label_key!r}; keys: {sorted(batch)}")
        inputs = {k: v for k, v in batch.items() if k != label_key}
        return inputs, batch[label_key]
    if isinstance(batch, (tuple, list)) and len(batch) == 2:
        return batch[0], batch[1]
    raise ValueError(f"a batch must be (inputs, targets) or a dict with {label_key!r}, got {type(batch).__name__}")


class PatternModule(L.LightningModule):
    """Train ``model`` under ``pattern``; logs ``train_loss`` and, with validation data, ``val_loss`` and ``val_acc``.

    Args:
        model: any ``nn.Module``; the pattern is installed in place (:func:`dropsearch.apply`).
        pattern: the pattern or its JSON dict.
        sites: the model's sites with kinds (:func:`dropsearch.find_sites`). Default: ``None``
        loss_fn: ``loss_fn(logits, targets) -> scalar``. Default: ``F.cross_entropy``
        optimizer: ``optimizer(parameters) -> torch.optim.Optimizer``. Default: Adam with ``lr``.
        lr: learning rate of the default optimizer. Default: 1e-3
        label_key: where dict batches keep their targets. Default: ``"labels"``

    Shape:
        - batch: ``(inputs (B, ...), targets (B,))`` or ``{..., label_key: (B,)}``
    """

    def __init__(
        self,
        model: nn.Module,
        pattern: Pattern | Mapping[str, Any],
        *,
        sites: Sequence[Site] | None = None,
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.cross_entropy,
        optimizer: OptimizerFactory | None = None,
        lr: float = 1e-3,
        label_key: str = "labels",
    ) -> None:
        super().__init__()
        self.automatic_optimization = False  # GSNR, GradAug and Y-Drop step the optimizer themselves
        self.model = model
        self.pattern_step = PatternStep(model, pattern, sites=sites)
        self.loss_fn = loss_fn
        self.optimizer_factory = optimizer or (lambda params: torch.optim.Adam(params, lr=lr))
        self.label_key = label_key

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """Run the wrapped model."""
        return self.model(*args, **kwargs)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        """One step of the pattern's variant on ``batch``; the optimizer is zeroed and stepped once."""
        inputs, targets = split_batch(batch, self.label_key)
        optimizer = self.optimizers()
        loss = self.pattern_step.step(inputs, targets, self.loss_fn, optimizer=optimizer)
        self.log("train_loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=int(targets.shape[0]))
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        """``val_loss`` and ``val_acc`` of the model in eval mode (dropout off)."""
        inputs, targets = split_batch(batch, self.label_key)
        output = self.model(**inputs) if isinstance(inputs, Mapping) else self.model(inputs)
        logits = logits_of(output)
        loss = self.loss_fn(logits, targets)
        n = int(targets.shape[0])
        self.log("val_loss", loss, prog_bar=True, batch_size=n)
        if logits.dim() == 2:
            self.log("val_acc", (logits.argmax(1) == targets).float().mean(), prog_bar=True, batch_size=n)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """The optimizer of the wrapped model's parameters."""
        return self.optimizer_factory(self.model.parameters())
