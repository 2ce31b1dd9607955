"""Which module each variant puts at a site, and which model-wide step helper it needs.

This is the one table that maps a pattern's ``variant`` to code; :func:`dropsearch.regularizers.apply`
uses it, and so does the worker that trains children.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from dropsearch.regularizers.bernoulli import BernoulliDropout
from dropsearch.regularizers.conv_pattern import PatternDropout2d
from dropsearch.regularizers.drop_block import DropBlock2d
from dropsearch.regularizers.large_dropout import freeze_batchnorm
from dropsearch.regularizers.pattern import Pattern, SitePattern
from dropsearch.regularizers.sequence_pattern import SequencePatternDropout
from dropsearch.regularizers.spatial import SpatialDropout
from dropsearch.regularizers.ydrop import YDrop

__all__ = ["SITE_VARIANTS", "MODEL_WIDE_VARIANTS", "build_site_module", "is_dropout_module", "step_helper_for"]

#: Variants that put a module at each site.
SITE_VARIANTS = ("bernoulli", "spatial", "dropblock", "autodropout", "ydrop", "largedrop")
#: Variants that change the training step of the whole model instead (they take no sites).
MODEL_WIDE_VARIANTS = ("none", "gsnr", "gradaug")

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
    """True for ``torch.nn`` dropout layers and every dropsearch site module."""
    return isinstance(module, _DROPOUT_TYPES)


def _is_sequence_shape(shape: dict[str, Any], kind: str | None) -> bool:
    if kind is not None:
        return kind == "sequence"
    return "share" in shape and "share_c" not in shape


def build_site_module(
    variant: str, site: SitePattern, params: dict[str, Any], target: nn.Module, *, kind: str | None = None
) -> nn.Module | None:
    """The dropout module ``variant`` installs at ``site`` (``None`` when the variant installs nothing there).

    Args:
        variant: the pattern's variant.
        site: the site's rate and shape tokens.
        params: the pattern's variant parameters (Y-Drop ``scale``, ``floor``, ``ema``).
        target: the module currently at the site (unused by the built-ins; there for plugins' checks).
        kind: the site's kind when the model lists it (``Site.kind``); AutoDropout picks the sequence pattern for
            ``"sequence"`` sites and the ConvNet pattern otherwise. Without it, a shape with ``share`` (and no
            ``share_c``) is a sequence pattern. Default: ``None``.

    Raises:
        ValueError: naming the variant when it takes no sites.
    """
    if site.rate == 0.0 and variant != "ydrop":
        return None
    if variant in ("bernoulli", "largedrop"):
        return BernoulliDropout(site.rate)
    if variant == "spatial":
        return SpatialDropout(site.rate)
    if variant == "dropblock":
        return DropBlock2d(site.rate, block_size=int(site.shape.get("block_size", 3)))
    if variant == "autodropout":
        if _is_sequence_shape(site.shape, kind):
            return SequencePatternDropout.from_site(site)
        return PatternDropout2d.from_site(site)
    if variant == "ydrop":
        return YDrop(
            site.rate,
            scale=float(params.get("scale", 1.0)),
            floor=float(params.get("floor", 0.3)),
            ema=float(params.get("ema", 0.9)),
        )
    raise ValueError(f"variant {variant!r} takes no sites; remove 'sites' from the pattern or pick a site variant")


def step_helper_for(pattern: Pattern, model: nn.Module) -> Any:
    """Prepare ``model`` for the pattern's variant and return its step helper (``None`` for a plain step).

    Very-large dropout freezes BatchNorm (``params.freeze_bn``, default true); GSNR, GradAug and Y-Drop return
    an object with ``training_step(inputs, targets, loss_fn, optimizer=None)``.
    """
    params = pattern.params
    if pattern.variant == "largedrop":
        if bool(params.get("freeze_bn", True)):
            freeze_batchnorm(model)
        return None
    if pattern.variant == "gsnr":
        from dropsearch.regularizers.gsnr_dropout import GSNRDropout

        return GSNRDropout(
            model,
            p=float(params.get("p", 0.1)),
            estimator=str(params.get("estimator", "microbatch")),
            meta=bool(params.get("meta", False)),
            chunks=int(params.get("chunks", 4)),
            gsnr_batch=params.get("gsnr_batch"),
            bn_refresh=str(params.get("bn_refresh", "gsnr_pass")),
        )
    if pattern.variant == "gradaug":
        from dropsearch.regularizers.gradaug import GradAug

        resolutions = params.get("resolutions")
        if not any(isinstance(m, nn.Conv2d) for m in model.modules()):
            resolutions = None  # an MLP or sequence model cannot take resized inputs: width slicing only
        return GradAug(
            model,
            min_width=float(params.get("min_width", 0.8)),
            n_subnets=int(params.get("n_subnets", 3)),
            resolutions=tuple(resolutions) if resolutions else None,
        )
    if pattern.variant == "ydrop":
        from dropsearch.regularizers.ydrop import YDropTrainer

        return YDropTrainer(
            model,
            refresh_every=int(params.get("refresh_every", 10)),
            steps=int(params.get("steps", 5)),
            refresh_batch=params.get("refresh_batch", 16),
        )
    return None
