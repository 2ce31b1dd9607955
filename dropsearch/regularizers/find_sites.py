"""``find_sites(model, example_input)``: the dropout sites of any ``nn.Module``, with their kinds.

A model built by someone else has no ``dropout_sites()`` method. :func:`find_sites` lists its sites in two ways:

* by default, every existing dropout layer (``nn.Dropout``, ``Dropout1d/2d/3d``, ``AlphaDropout`` and the
  dropsearch site modules) and every stochastic-depth layer (timm's ``DropPath``, torchvision's
  ``StochasticDepth``, recognized by class name so neither library is imported) is a site;
* with ``paths``, the modules named by those paths (``fnmatch`` globs such as ``"layer*.1"``) are the sites;
  :func:`dropsearch.apply` then replaces a dropout/stochastic-depth module there, or applies the dropout to any
  other module's output through a forward hook.

The kind of each site comes from one dry run on ``example_input``: forward hooks record the shape of the tensor
each site module returns. ``(B, C, H, W)`` is a ``"conv"`` site, ``(B, T, C)`` a ``"sequence"`` site, ``(B, F)``
a ``"linear"`` site, or ``"features"`` when it is the last site the forward pass reaches (the pooled features
right before the classifier).

Example::

    >>> import torch, torch.nn as nn
    >>> net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Dropout2d(0.1), nn.Flatten(), nn.Linear(8 * 6 * 6, 16),
    ...                     nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 3))
    >>> [(s.name, s.kind, s.channels) for s in find_sites(net, torch.randn(2, 3, 8, 8))]
    [('1', 'conv', 8), ('5', 'features', 16)]
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from dropsearch.regularizers.pattern import Site
from dropsearch.regularizers.site_modules import is_dropout_module

__all__ = ["STOCHASTIC_DEPTH_CLASSES", "find_sites", "is_stochastic_depth", "candidate_site_paths", "closest_paths"]

#: Class names of stochastic-depth layers (timm ``DropPath``, torchvision ``StochasticDepth``, and the usual
#: copies of them in other code bases).
STOCHASTIC_DEPTH_CLASSES = frozenset({"DropPath", "StochasticDepth", "DropPathV2", "StochasticDepthPath"})

_RANK_KINDS = {4: "conv", 3: "sequence", 2: "linear"}


def is_stochastic_depth(module: nn.Module) -> bool:
    """True for a stochastic-depth (drop-path) layer, judged by its class name or any base class's name."""
    return any(cls.__name__ in STOCHASTIC_DEPTH_CLASSES for cls in type(module).__mro__)


def candidate_site_paths(model: nn.Module) -> list[str]:
    """Module paths of the model's dropout and stochastic-depth layers, in module order (no forward pass)."""
    return [n for n, m in model.named_modules() if n and (is_dropout_module(m) or is_stochastic_depth(m))]


def closest_paths(path: str, known: Sequence[str], n: int = 3) -> list[str]:
    """Up to ``n`` of ``known`` that look most like ``path`` (``difflib``; globs are compared as written)."""
    return difflib.get_close_matches(path, list(known), n=n, cutoff=0.5)


def _match(model: nn.Module, paths: Sequence[str]) -> list[str]:
    """Module paths matching ``paths`` (exact names or ``fnmatch`` globs), in module order; each must match."""
    if isinstance(paths, str):
        paths = [paths]
    names = [n for n, _ in model.named_modules() if n]
    chosen: set[str] = set()
    for pattern in paths:
        if not isinstance(pattern, str) or not pattern:
            raise ValueError(f"paths must hold non-empty module paths or globs, got {pattern!r}")
        hits = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
        if not hits:
            near = closest_paths(pattern, names)
            hint = f"; closest module paths: {', '.join(map(repr, near))}" if near else ""
            raise ValueError(f"path {pattern!r} matches no module of {type(model).__name__}{hint}")
        chosen.update(hits)
    return [n for n in names if n in chosen]


def _first_tensor(output: Any) -> torch.Tensor | None:
    if isinstance(output, torch.Tensor):
        return output
    return None


def _run(model: nn.Module, example_input: Any) -> None:
    if isinstance(example_input, Mapping):
        model(**example_input)
    elif isinstance(example_input, tuple):
        model(*example_input)
    else:
        model(example_input)


def _record_shapes(model: nn.Module, paths: list[str], example_input: Any) -> dict[str, tuple[int, ...] | None]:
    """One eval-mode, no-grad forward pass; the output shape of each site module (``None``: not a tensor)."""
    order: dict[str, tuple[int, ...] | None] = {}
    handles = []

    def hook_for(path: str):
        def hook(_module: nn.Module, _inputs: Any, output: Any) -> None:
            tensor = _first_tensor(output)
            order.setdefault(path, None if tensor is None else tuple(tensor.shape))

        return hook

    for path in paths:
        handles.append(model.get_submodule(path).register_forward_hook(hook_for(path)))
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            _run(model, example_input)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return order


def find_sites(model: nn.Module, example_input: Any, paths: Sequence[str] | str | None = None) -> list[Site]:
    """The dropout sites of ``model`` in the order the forward pass reaches them, each with its kind.

    Args:
        model: any ``nn.Module``; it is run once in eval mode without gradients and left as it was.
        example_input: one batch the model accepts: a tensor, a tuple of positional arguments, or a dict of
            keyword arguments (e.g. ``{"input_ids": ids, "attention_mask": mask}``).
        paths: module paths or ``fnmatch`` globs naming where dropout may go. Default: every dropout and
            stochastic-depth layer of the model.

    Returns:
        One :class:`~dropsearch.regularizers.Site` per site (``name``: module path; ``kind``: ``"conv"``,
        ``"sequence"``, ``"linear"`` or ``"features"``; ``channels``: ``C`` of ``(B, C, H, W)``, ``C`` of
        ``(B, T, C)``, ``F`` of ``(B, F)``). Dropout layers the forward pass never reaches are left out.

    Raises:
        ValueError: when a path or glob matches no module (closest paths suggested), when a named site is not
            reached by the forward pass, or returns something other than a tensor of rank 2, 3 or 4; when the
            model has no dropout or stochastic-depth layer and no ``paths`` are given.
    """
    named = paths is not None
    chosen = _match(model, paths) if named else candidate_site_paths(model)
    if not chosen:
        raise ValueError(
            f"{type(model).__name__} has no dropout or stochastic-depth layer; name the modules where dropout "
            "may go with paths=[...] (globs allowed)"
        )
    shapes = _record_shapes(model, chosen, example_input)
    sites: list[tuple[str, str, int]] = []
    for path, shape in shapes.items():  # forward (execution) order
        kind = None if shape is None else _RANK_KINDS.get(len(shape))
        if kind is None:
            if named:
                what = "no tensor" if shape is None else f"a tensor of shape {shape}"
                raise ValueError(f"site {path!r} returns {what}; a site must return (B, C, H, W), (B, T, C) or (B, F)")
            continue
        channels = shape[1] if kind == "conv" else shape[-1]
        sites.append((path, kind, int(channels)))
    unreached = [p for p in chosen if p not in shapes]
    if named and unreached:
        raise ValueError(f"the forward pass on example_input never reaches site(s) {unreached}")
    if sites and sites[-1][1] == "linear":
        sites[-1] = (sites[-1][0], "features", sites[-1][2])
    return [Site(name=name, kind=kind, channels=channels) for name, kind, channels in sites]
