"""Which module a pattern's variant puts at a site, and which step helper it needs: both read from the registry.

:func:`dropsearch.regularizers.apply` and the worker that trains children use these two look-ups; the code of each
variant lives in its :class:`~dropsearch.regularizers.registry.VariantSpec` (``build_module``, ``step_helper``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from dropsearch.regularizers.bernoulli import BernoulliDropout
from dropsearch.regularizers.conv_pattern import PatternDropout2d
from dropsearch.regularizers.drop_block import DropBlock2d
from dropsearch.regularizers.pattern import Pattern, SitePattern
from dropsearch.regularizers.registry import get_variant
from dropsearch.regularizers.sequence_pattern import SequencePatternDropout
from dropsearch.regularizers.spatial import SpatialDropout
from dropsearch.regularizers.ydrop import YDrop

__all__ = ["SITE_MODULE_FLAG", "build_site_module", "is_dropout_module", "step_helper_for"]

#: Attribute set on every module a variant's ``build_module`` returns, so a later pattern can replace it.
SITE_MODULE_FLAG = "_dropsearch_site_module"

_DROPOUT_TYPES: tuple[type[nn.Module], ...] = (
    nn.Dropout,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.Dropout3d,
    nn.AlphaDropout,
    BernoulliDropout,
    SpatialDropout,
    DropBlock2d,
    PatternDropout2d,
    SequencePatternDropout,
    YDrop,
)


def is_dropout_module(module: nn.Module) -> bool:
    """True for ``torch.nn`` dropout layers and every module a variant installed at a site."""
    return isinstance(module, _DROPOUT_TYPES) or bool(getattr(module, SITE_MODULE_FLAG, False))


def build_site_module(
    variant: str, site: SitePattern, params: Mapping[str, Any], target: nn.Module, *, kind: str | None = None
) -> nn.Module | None:
    """The dropout module ``variant`` installs at ``site`` (``None`` when the variant installs nothing there).

    Args:
        variant: the pattern's variant.
        site: the site's rate and shape tokens.
        params: the pattern's variant parameters (e.g. Y-Drop ``scale``, ``floor``, ``ema``).
        target: the module currently at the site (unused by the built-ins; there for plugins' checks).
        kind: the site's kind when the model lists it (``Site.kind``); AutoDropout picks the sequence pattern for
            ``"sequence"`` sites and the ConvNet pattern otherwise. Default: ``None``.

    Raises:
        ValueError: naming the variant when it takes no sites, or when its builder returns something else than a
            module.
    """
    spec = get_variant(variant)
    if spec.build_module is None:
        raise ValueError(f"variant {variant!r} takes no sites; remove 'sites' from the pattern or pick a site variant")
    module = spec.build_module(site, params, target, kind)
    if module is None:
        return None
    if not isinstance(module, nn.Module):
        raise ValueError(f"variant {variant!r}: build_module returned {type(module).__name__}, not an nn.Module")
    setattr(module, SITE_MODULE_FLAG, True)
    return module


def step_helper_for(pattern: Pattern, model: nn.Module) -> Any:
    """Prepare ``model`` for the pattern's variant and return its step helper (``None`` for a plain step).

    Very-large dropout freezes BatchNorm (``params.freeze_bn``, default true); GSNR, GradAug and Y-Drop return
    an object with ``training_step(inputs, targets, loss_fn, optimizer=None)``.
    """
    helper = get_variant(pattern.variant).step_helper
    return None if helper is None else helper(pattern, model)
