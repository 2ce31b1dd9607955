"""A Hugging Face ``Trainer`` that trains under a dropsearch pattern.

Site variants only install modules, so the stock training step is kept. GSNR, GradAug and Y-Drop replace
``training_step``: the variant runs its own forward/backward passes (GSNR's masked step, GradAug's sub-network
passes, Y-Drop's refreshes) on the batch and leaves the gradients in ``.grad``; the ``Trainer`` then clips them,
steps its optimizer and scheduler, and zeroes them as usual::

    from dropsearch.integrations.hf import PatternTrainer

    trainer = PatternTrainer(model=model, args=TrainingArguments(...), train_dataset=train,
                             pattern=json.load(open("pattern.json")))
    trainer.train()

The targets are the batch's ``labels``; the model gets the other keys and must return logits (``output.logits``).
For those variants ``gradient_accumulation_steps`` must be 1 and fp16 mixed precision is refused (the variant's
backward bypasses the gradient scaler). Importing this module imports ``transformers``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import Trainer

from dropsearch.integrations.step import PatternStep
from dropsearch.regularizers.pattern import Pattern, Site

__all__ = ["PatternTrainer"]


class PatternTrainer(Trainer):
    """``transformers.Trainer`` with ``pattern`` installed into ``model``.

    Args:
        *args: the ``Trainer``'s positional arguments (``model`` first).
        pattern: the pattern or its JSON dict (keyword only).
        sites: the model's sites with kinds (:func:`dropsearch.find_sites`). Default: ``None``
        pattern_loss: ``loss(logits, labels) -> scalar`` of the variant's own step. Default: ``F.cross_entropy``
        label_key: the batch key of the targets. Default: ``"labels"``
        **kwargs: the ``Trainer``'s keyword arguments.

    Raises:
        ValueError: for ``gradient_accumulation_steps != 1`` or fp16 with a variant that needs its own step.
    """

    def __init__(
        self,
        *args: Any,
        pattern: Pattern | Mapping[str, Any],
        sites: Sequence[Site] | None = None,
        pattern_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.cross_entropy,
        label_key: str = "labels",
        **kwargs: Any,
    ) -> None:
        model = kwargs.get("model", args[0] if args else None)
        if not isinstance(model, nn.Module):
            raise ValueError("PatternTrainer needs the model (an nn.Module) to install the pattern into")
        self.pattern_step = PatternStep(model, pattern, sites=sites)  # before the Trainer moves the model
        self.pattern_loss = pattern_loss
        self.label_key = label_key
        super().__init__(*args, **kwargs)
        if self.pattern_step.own_step:
            variant = self.pattern_step.applied.pattern.variant
            if self.args.gradient_accumulation_steps != 1:
                raise ValueError(f"variant {variant!r} runs its own step: gradient_accumulation_steps must be 1")
            if self.args.fp16:
                raise ValueError(f"variant {variant!r} runs its own backward: fp16 is not supported (use bf16 or fp32)")

    def training_step(
        self, model: nn.Module, inputs: dict[str, Any], num_items_in_batch: torch.Tensor | int | None = None
    ) -> torch.Tensor:
        """The variant's step (GSNR, GradAug, Y-Drop) or the stock step; returns the detached loss."""
        if not self.pattern_step.own_step:
            return super().training_step(model, inputs, num_items_in_batch)
        inputs = dict(self._prepare_inputs(inputs))
        if self.label_key not in inputs:
            raise ValueError(f"batch has no {self.label_key!r}; keys: {sorted(inputs)}")
        labels = inputs.pop(self.label_key)
        loss = self.pattern_step.step(inputs, labels, self.pattern_loss)
        return loss.detach().to(self.args.device)
