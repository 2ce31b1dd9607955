"""The model registry: built-in models plus plugins from the entry-point group ``dropsearch.models``.

A model *builder* is a callable ``builder(*, in_shape, num_classes, **params) -> nn.Module`` whose params are
keyword arguments with defaults (they are the params a job spec may set; anything else is refused). Optional
attributes on the builder: ``input_kinds`` (any of ``"image"``, ``"signal"``, ``"sequence"``), ``description`` (else the
docstring's first line), ``tiny_params`` (a fast configuration for tests). A plugin package declares::

    [project.entry-points."dropsearch.models"]
    my-net = "my_package.models:build_my_net"

Names from requests are only dictionary keys: nothing is ever imported from a name. Plugins are imported when
their name is first used; a plugin cannot shadow a built-in name.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from torch import nn

from dropsearch.regularizers.pattern import Site
from dropsearch.workers._plugins import PluginRegistry
from dropsearch.workers.models.cnn1d import build_cnn1d
from dropsearch.workers.models.convnet import build_convnet
from dropsearch.workers.models.mlp import build_mlp
from dropsearch.workers.models.resnet import build_resnet
from dropsearch.workers.models.transformer import build_transformer

__all__ = [
    "ENTRY_POINT_GROUP",
    "INPUT_KINDS",
    "ModelInfo",
    "register_model",
    "build_model",
    "model_names",
    "model_info",
    "dropout_sites",
]

ENTRY_POINT_GROUP = "dropsearch.models"
INPUT_KINDS = ("image", "signal", "sequence")

_REGISTRY = PluginRegistry(
    "model",
    ENTRY_POINT_GROUP,
    reserved=("in_shape", "num_classes"),
    attr_defaults={"input_kinds": ("image",), "tiny_params": {}},
)


@dataclass(frozen=True)
class ModelInfo:
    """What the catalog shows about a model.

    Args:
        name: the registry name.
        description: one line.
        params: accepted params and their defaults (``None``: the builder takes any keyword).
        input_kinds: the inputs it accepts, from ``INPUT_KINDS``.
        tiny_params: a fast configuration for tests and smoke runs.
    """

    name: str
    description: str
    params: dict[str, Any] | None
    input_kinds: tuple[str, ...]
    tiny_params: dict[str, Any]


def register_model(
    name: str,
    builder: Callable[..., nn.Module],
    *,
    input_kinds: Sequence[str] | None = None,
    description: str | None = None,
    replace: bool = False,
) -> None:
    """Register ``builder`` under ``name``.

    Args:
        name: a name matching ``^[a-z0-9][a-z0-9_.-]*$``.
        builder: ``builder(*, in_shape, num_classes, **params) -> nn.Module``; every param needs a default.
        input_kinds: accepted inputs; default: the builder's ``input_kinds`` attribute or ``("image",)``.
        description: one line; default: the builder's docstring's first line.
        replace: allow replacing an existing name. Default: ``False``

    Raises:
        ValueError: for a bad name, a taken name, a builder without the reserved keywords, or an unknown input kind.
    """
    attrs: dict[str, Any] = {}
    if input_kinds is not None:
        attrs["input_kinds"] = tuple(input_kinds)
    if description is not None:
        attrs["description"] = description
    kinds = attrs.get("input_kinds", getattr(builder, "input_kinds", ("image",)))
    bad = [k for k in kinds if k not in INPUT_KINDS]
    if bad:
        raise ValueError(f"model {name!r}: unknown input kind(s) {bad}; expected {INPUT_KINDS}")
    _REGISTRY.register(name, builder, replace=replace, **attrs)


def model_names() -> list[str]:
    """Every model name, built-in and plugin, sorted (plugins are not imported)."""
    return _REGISTRY.names()


def model_info(name: str) -> ModelInfo:
    """Description, params with defaults, input kinds and tiny params of model ``name``."""
    entry = _REGISTRY.get(name)
    params = None if entry.params is None else dict(entry.params)
    return ModelInfo(
        name=entry.name,
        description=entry.description,
        params=params,
        input_kinds=tuple(entry.attrs["input_kinds"]),
        tiny_params=dict(entry.attrs["tiny_params"]),
    )


def build_model(
    name: str,
    *,
    params: dict[str, Any] | None = None,
    in_shape: Sequence[int],
    num_classes: int,
) -> nn.Module:
    """Build model ``name`` for inputs of shape ``in_shape`` (one example, no batch dim) and ``num_classes``.

    Args:
        name: a registered model name.
        params: the model's params; unknown ones are refused. Default: all defaults.
        in_shape: ``(C, H, W)`` for images, ``(T,)`` for token sequences.
        num_classes: classes of a classifier, or the vocabulary of a language model.

    Returns:
        The model, with ``nn.Identity()`` placeholders at its dropout sites.

    Raises:
        ValueError: naming an unknown model (and listing the known ones), an unknown param, or a bad value.
    """
    entry = _REGISTRY.get(name)
    merged = _REGISTRY.check_params(entry, params)
    model = entry.factory(in_shape=tuple(in_shape), num_classes=num_classes, **merged)
    if not isinstance(model, nn.Module):
        raise ValueError(f"model {name!r}: builder returned {type(model).__name__}, not an nn.Module")
    return model


def dropout_sites(model: nn.Module) -> list[Site]:
    """The dropout sites of ``model`` in module order, checked to exist.

    Args:
        model: a model with a ``dropout_sites()`` method (every built-in model has one).

    Raises:
        ValueError: when the model lists no sites method, or names a module it does not have.
    """
    lister = getattr(model, "dropout_sites", None)
    if not callable(lister):
        raise ValueError(f"{type(model).__name__} has no dropout_sites() method")
    sites = list(lister())
    modules = dict(model.named_modules())
    for site in sites:
        if not isinstance(site, Site):
            raise ValueError(f"{type(model).__name__}.dropout_sites() returned {site!r}, not a Site")
        if site.name not in modules:
            raise ValueError(f"{type(model).__name__} lists dropout site {site.name!r} but has no such module")
    return sites


for _name, _builder in (
    ("convnet", build_convnet),
    ("resnet", build_resnet),
    ("mlp", build_mlp),
    ("transformer", build_transformer),
    ("cnn1d", build_cnn1d),
):
    register_model(_name, _builder)
