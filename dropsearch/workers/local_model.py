"""A model and a dataset given in-process (``dropsearch.optimize``), in the form the child trainer expects.

The service builds children from registry names; a local search instead carries a Python callable, which Ray
ships to its workers with cloudpickle (as it ships any trainable's parameters). Nothing here is reachable from an
HTTP request: a :class:`LocalModelFactory` exists only when a caller made one in its own process.

- :class:`LocalModelFactory` wraps the user's ``model_fn`` as a registry-style builder
  ``factory(*, in_shape, num_classes) -> nn.Module``.
- :class:`LocalModel` presents the user's model to the trainer: the same module paths (so a pattern found on it
  applies to a fresh instance of the user's model), the sites found in the driver (``dropout_sites()``, which
  tells AutoDropout which sites are token sequences), and an optional ``forward`` adapter that turns the trainer's
  input tensor into the model's call (``model(input_ids=x).logits`` for a Hugging Face classifier).
- :func:`bundle_from_tensors` turns ``(x, y)`` tensors into a classification :class:`DatasetBundle`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from dropsearch.regularizers.pattern import Site
from dropsearch.workers.datasets.base import DatasetBundle

__all__ = ["LocalModel", "LocalModelFactory", "bundle_from_tensors"]

#: The keywords a ``model_fn`` may take (any other parameter must have a default).
MODEL_FN_KEYWORDS = ("in_shape", "num_classes")


class LocalModel(nn.Module):
    """A view of ``model`` with its own forward: same parameters, buffers and module paths, no extra prefix.

    The view shares ``model``'s ``_modules``, ``_parameters`` and ``_buffers`` dictionaries, so ``named_modules()``
    spells every path as the user's model does, a pattern installed through the view (a module replaced at a
    site, a forward hook) lands in ``model`` itself, and ``state_dict()`` has the model's keys. The view adds no
    attribute a submodule name could collide with (the model is kept as ``_dropsearch_model``).

    Args:
        model: the user's module.
        forward: ``forward(model, x) -> logits (B, K)``; ``None`` calls ``model(x)``.
        sites: the sites found in the driver, returned by :meth:`dropout_sites`.
    """

    def __init__(
        self,
        model: nn.Module,
        forward: Callable[[nn.Module, Any], torch.Tensor] | None = None,
        sites: Sequence[Site] = (),
    ) -> None:
        super().__init__()
        # plain attributes, not a child module, under names no user submodule takes (paths stay the model's)
        object.__setattr__(self, "_dropsearch_model", model)
        object.__setattr__(self, "_dropsearch_forward", forward)
        object.__setattr__(self, "_dropsearch_sites", tuple(sites))
        for shared in ("_modules", "_parameters", "_buffers", "_non_persistent_buffers_set"):
            object.__setattr__(self, shared, getattr(model, shared))
        self.training = model.training

    def forward(self, x: Any) -> torch.Tensor:
        """Logits of ``x``: ``adapter(model, x)``, or ``model(x)`` without an adapter."""
        adapter = self._dropsearch_forward
        return self._dropsearch_model(x) if adapter is None else adapter(self._dropsearch_model, x)

    def train(self, mode: bool = True) -> LocalModel:
        """Set training mode on the view and on the model (whose own forward may read ``self.training``)."""
        super().train(mode)
        self._dropsearch_model.training = mode
        return self

    def dropout_sites(self) -> list[Site]:
        """The sites found on the model in the driver (``dropsearch.find_sites``)."""
        return list(self._dropsearch_sites)


def _keywords(fn: Callable[..., Any]) -> tuple[str, ...]:
    """Which of :data:`MODEL_FN_KEYWORDS` ``fn`` takes; TypeError when it needs any other argument."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):  # a builtin without a signature: call it with nothing
        return ()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return MODEL_FN_KEYWORDS
    required = [
        name
        for name, p in params.items()
        if p.default is inspect.Parameter.empty
        and p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
        and name not in MODEL_FN_KEYWORDS
    ]
    if required:
        raise TypeError(
            f"model_fn must take no arguments, or only the keywords {MODEL_FN_KEYWORDS}; it requires {required}"
        )
    return tuple(k for k in MODEL_FN_KEYWORDS if k in params)


@dataclass(frozen=True)
class LocalModelFactory:
    """The user's ``model_fn`` as a registry-style builder: ``factory(*, in_shape, num_classes) -> LocalModel``.

    Args:
        model_fn: returns a fresh ``nn.Module`` on every call; takes no arguments, or the keywords ``in_shape``
            (one example's shape) and / or ``num_classes``.
        forward: ``forward(model, x) -> logits``, see :class:`LocalModel`.
        sites: the sites to report (found on a first instance in the driver).
    """

    model_fn: Callable[..., nn.Module]
    forward: Callable[[nn.Module, Any], torch.Tensor] | None = None
    sites: tuple[Site, ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.model_fn, nn.Module):
            raise TypeError(
                f"model_fn must make a fresh model on each call (e.g. the class {type(self.model_fn).__name__}), "
                "not be a model instance: every trial trains its own"
            )
        if not callable(self.model_fn):
            raise TypeError(f"model_fn must be callable, got {type(self.model_fn).__name__}")
        if self.forward is not None and not callable(self.forward):
            raise TypeError(f"forward must be callable, got {type(self.forward).__name__}")
        _keywords(self.model_fn)

    def user_model(self, *, in_shape: Sequence[int], num_classes: int) -> nn.Module:
        """A fresh instance of the user's model (no view)."""
        given = {"in_shape": tuple(int(d) for d in in_shape), "num_classes": int(num_classes)}
        model = self.model_fn(**{k: given[k] for k in _keywords(self.model_fn)})
        if not isinstance(model, nn.Module):
            raise TypeError(f"model_fn returned {type(model).__name__}, not an nn.Module")
        return model

    def __call__(self, *, in_shape: Sequence[int], num_classes: int) -> LocalModel:
        """A fresh instance of the user's model, seen through :class:`LocalModel`."""
        return LocalModel(self.user_model(in_shape=in_shape, num_classes=num_classes), self.forward, self.sites)


def _pair(data: Any, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x, y)`` from a pair of tensors or a two-tensor ``TensorDataset``; the message names ``name``."""
    tensors = getattr(data, "tensors", data)  # torch.utils.data.TensorDataset keeps its tensors there
    if not isinstance(tensors, (tuple, list)) or len(tensors) != 2:
        raise TypeError(f"{name} must be an (x, y) pair of tensors or a TensorDataset of two tensors")
    x, y = tensors
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
        raise TypeError(f"{name}: x and y must be tensors, got {type(x).__name__} and {type(y).__name__}")
    if x.dim() < 2:
        raise ValueError(f"{name}: x must have a batch dimension and at least one more, got shape {tuple(x.shape)}")
    if y.dim() != 1 or len(y) != len(x):
        raise ValueError(f"{name}: y must be class ids of shape ({len(x)},), got shape {tuple(y.shape)}")
    if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise ValueError(f"{name}: y must hold integer class ids, got dtype {y.dtype}")
    if len(y) and int(y.min()) < 0:
        raise ValueError(f"{name}: y has a negative class id ({int(y.min())})")
    return x.detach().cpu().contiguous(), y.detach().cpu().long()


def bundle_from_tensors(train: Any, val: Any, *, num_classes: int | None = None) -> DatasetBundle:
    """A classification bundle from in-memory tensors; rewards come from ``val``.

    Args:
        train: ``(x, y)`` or a ``TensorDataset``: x float inputs ``(N, ...)`` (images ``(N, C, H, W)``, signals
            ``(N, C, L)``, features ``(N, F)``) or int64 token ids ``(N, T)``; y int64 class ids ``(N,)``.
        val: the same for the validation split (the same input shape and dtype).
        num_classes: classes of the task. Default: the largest class id in either split, plus one.

    Raises:
        TypeError / ValueError: naming ``train`` or ``val`` and what is wrong.
    """
    x_train, y_train = _pair(train, "train")
    x_val, y_val = _pair(val, "val")
    if len(x_train) < 2 or len(x_val) < 1:
        raise ValueError(f"train needs at least 2 examples and val at least 1, got {len(x_train)} and {len(x_val)}")
    if x_train.shape[1:] != x_val.shape[1:] or x_train.dtype != x_val.dtype:
        raise ValueError(
            f"train and val inputs differ: {tuple(x_train.shape[1:])} {x_train.dtype} vs "
            f"{tuple(x_val.shape[1:])} {x_val.dtype}"
        )
    seen = int(max(y_train.max(), y_val.max())) + 1
    if num_classes is None:
        num_classes = seen
    elif num_classes < seen:
        raise ValueError(f"num_classes={num_classes} but the labels go up to {seen - 1}")
    if num_classes < 2:
        raise ValueError(f"a classification task needs at least 2 classes, got {num_classes}")
    return DatasetBundle(
        x_train=x_train,
        y_train=y_train,
        x_val=x_val,
        y_val=y_val,
        in_shape=tuple(x_train.shape[1:]),
        num_classes=int(num_classes),
        info={"source": "in-memory tensors", "n_train": len(x_train), "n_val": len(x_val)},
    )
