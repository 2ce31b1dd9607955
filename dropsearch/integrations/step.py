"""One training step of an installed pattern on a tensor batch or a dict batch (torch only).

GSNR, GradAug and Y-Drop run their own forward/backward passes through ``model(inputs)``, and GSNR splits the batch
into micro-batches along dim 0. A Hugging Face batch is a dict of tensors (``input_ids``, ``attention_mask``...)
and a Hugging Face model returns an output object, not logits. :class:`BatchModel` bridges the two: it keeps the
dict batch and runs the model on the rows ``idx`` of every batch-sized tensor in it, returning the logits, so the
variant's step runs on ``idx = torch.arange(B)`` unchanged (a micro-batch ``idx[a:b]`` runs the model on those
rows). GradAug then only slices widths: an index cannot be resized, so its ``resolutions`` are not used there.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import torch
from torch import nn

from dropsearch.regularizers._apply import AppliedPattern, apply
from dropsearch.regularizers.pattern import Pattern, Site
from dropsearch.regularizers.site_modules import step_helper_for

__all__ = ["BatchModel", "PatternStep", "logits_of"]

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def logits_of(output: Any) -> torch.Tensor:
    """The logits in a model's output: the tensor itself, ``output.logits``, ``output["logits"]`` or ``output[0]``.

    Raises:
        TypeError: when none of these is a tensor.
    """
    if isinstance(output, torch.Tensor):
        return output
    logits = getattr(output, "logits", None)
    if logits is None and isinstance(output, Mapping):
        logits = output.get("logits")
    if logits is None and isinstance(output, (tuple, list)) and output:
        logits = output[0]
    if not isinstance(logits, torch.Tensor):
        raise TypeError(f"cannot find logits in a model output of type {type(output).__name__}")
    return logits


class BatchModel(nn.Module):
    """``model`` run on the rows ``idx`` of a stored batch; returns logits.

    Args:
        model: the wrapped model (a child module, so its parameters are this module's ``model.*`` parameters).

    Shape:
        - Input: ``idx`` (b,) int64 row indices into the stored batch of B rows
        - Output: the model's logits for those rows, e.g. (b, num_classes)
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.args: tuple[Any, ...] = ()
        self.kwargs: dict[str, Any] = {}
        self.rows = 0

    def hold(self, args: Sequence[Any], kwargs: Mapping[str, Any], rows: int) -> None:
        """Keep one batch: positional and keyword model arguments whose tensors have ``rows`` rows."""
        self.args, self.kwargs, self.rows = tuple(args), dict(kwargs), int(rows)

    def _take(self, value: Any, idx: torch.Tensor) -> Any:
        if isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape[0] == self.rows:
            return value[idx]
        return value

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """Run the model on rows ``idx`` of the held batch (see the class ``Shape:``)."""
        args = [self._take(a, idx) for a in self.args]
        kwargs = {k: self._take(v, idx) for k, v in self.kwargs.items()}
        return logits_of(self.model(*args, **kwargs))


class PatternStep:
    """A pattern installed into ``model`` (:func:`dropsearch.apply`) and its training step for any batch.

    Args:
        model: the model; the pattern is installed in place.
        pattern: the pattern or its JSON dict.
        sites: the model's sites with kinds (:func:`dropsearch.find_sites`). Default: ``None``

    Attributes:
        applied: the :class:`~dropsearch.regularizers.AppliedPattern`.
        own_step: whether the variant needs its own step (GSNR, GradAug, Y-Drop); site variants train with a
            plain step once installed.
    """

    def __init__(
        self, model: nn.Module, pattern: Pattern | Mapping[str, Any], *, sites: Sequence[Site] | None = None
    ) -> None:
        self.applied: AppliedPattern = apply(model, pattern, sites=sites)
        self.own_step = self.applied.helper is not None
        self._batch_model: BatchModel | None = None
        self._batch_helper: Any = None
        self._tensor_output: bool | None = None

    @property
    def model(self) -> nn.Module:
        """The model the pattern is installed in."""
        return self.applied.model

    def _dict_helper(self) -> tuple[BatchModel, Any]:
        if self._batch_model is None:
            self._batch_model = BatchModel(self.model)
            pattern = self.applied.pattern
            if pattern.variant == "gradaug":  # index inputs cannot be resized: width slicing only
                pattern = replace(pattern, params={**pattern.params, "resolutions": None})
            self._batch_helper = step_helper_for(pattern, self._batch_model)
        return self._batch_model, self._batch_helper

    def step(
        self,
        inputs: torch.Tensor | Mapping[str, Any],
        targets: torch.Tensor,
        loss_fn: LossFn,
        optimizer: torch.optim.Optimizer | None = None,
    ) -> torch.Tensor:
        """Forward and backward the way the variant needs; returns the detached loss.

        Args:
            inputs: a tensor batch ``(B, ...)`` for ``model(inputs)``, or a dict of keyword arguments (tensors with
                B rows are split with the batch; targets must not be in it).
            targets: ``(B,)`` labels.
            loss_fn: ``loss_fn(logits, targets) -> scalar``.
            optimizer: stepped once when given (zeroed first); otherwise the gradients stay in ``.grad``.
        """
        model = self.model
        model.train()
        if isinstance(inputs, torch.Tensor):
            if self._returns_tensor(inputs):
                return self.applied.training_step(inputs, targets, loss_fn, optimizer)
            args: tuple[Any, ...] = (inputs,)
            kwargs: dict[str, Any] = {}
        else:
            args, kwargs = (), dict(inputs)
        rows = int(targets.shape[0])
        batch_model, helper = self._dict_helper()
        batch_model.hold(args, kwargs, rows)
        idx = torch.arange(rows, device=targets.device)
        try:
            if helper is not None:
                return helper.training_step(idx, targets, loss_fn, optimizer=optimizer)
            if optimizer is not None:
                optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(batch_model(idx), targets)
            loss.backward()
            if optimizer is not None:
                optimizer.step()
            return loss.detach()
        finally:
            batch_model.hold((), {}, 0)

    def _returns_tensor(self, inputs: torch.Tensor) -> bool:
        """Whether ``model(inputs)`` gives a plain tensor (checked once, on two rows, without gradients)."""
        if self._tensor_output is None:
            model = self.model
            model.eval()  # no running-statistics update, no dropout draw
            try:
                with torch.no_grad():
                    self._tensor_output = isinstance(model(inputs[:2]), torch.Tensor)
            finally:
                model.train()
        return self._tensor_output
