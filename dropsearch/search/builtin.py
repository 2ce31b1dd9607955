"""Built-in search spaces generated from a model's dropout sites (DESIGN.md section 4; ALGORITHMS.md).

Decisions, in sampling order:

1. ``variant``: which regularizer (one of the requested :data:`~dropsearch.regularizers.pattern.VARIANTS` that fits
   the model's sites).
2. Variant parameters, named ``"<variant>/<param>"`` (:data:`VARIANT_PARAMS`), e.g. ``gsnr/p``, ``ydrop/scale``,
   ``gradaug/min_width``, ``dropblock/block_size``, ``largedrop/rate``.
3. Per site, in site order: ``"<site>/rate"`` (the requested rates) when some variant puts a rate on that kind of
   site (:data:`RATE_KINDS`), and, when ``autodropout`` is searched, the AutoDropout shape tokens
   ``"<site>/size"``, ``"<site>/stride"``, ... (:data:`CONV_SHAPE_CHOICES` on conv sites,
   :data:`SEQUENCE_SHAPE_CHOICES` on sequence sites).

Every decision is always sampled; decoding (:mod:`dropsearch.search.codec`) ignores the ones the chosen variant does
not use. Value sets follow ALGORITHMS.md "Our choice" (AutoDropout, arXiv 2101.01761).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from dropsearch.regularizers.pattern import VARIANTS, Site, check_rate
from dropsearch.search.space import Decision, SearchSpace

__all__ = [
    "DEFAULT_VARIANTS",
    "DEFAULT_RATES",
    "RATE_KINDS",
    "CONV_SHAPE_CHOICES",
    "SEQUENCE_SHAPE_CHOICES",
    "VARIANT_PARAMS",
    "SITE_PARAMS",
    "CONSTANT_PARAMS",
    "build_space",
    "variant_sites",
]

DEFAULT_VARIANTS: tuple[str, ...] = ("bernoulli", "dropblock", "autodropout", "gsnr", "ydrop", "gradaug")
DEFAULT_RATES: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.5)

#: Site kinds on which a variant places a per-site ``"<site>/rate"``. ``largedrop`` uses the ``features`` sites
#: with its own ``largedrop/rate``; ``gsnr`` and ``gradaug`` act model-wide and use no site.
RATE_KINDS: dict[str, tuple[str, ...]] = {
    "bernoulli": ("conv", "linear", "sequence", "features"),
    "spatial": ("conv",),
    "dropblock": ("conv",),
    "autodropout": ("conv", "sequence"),
    "ydrop": ("conv", "linear", "features"),
}

#: AutoDropout shape tokens of a conv site, in ConvShape field order; choice 0 is the canonical default.
CONV_SHAPE_CHOICES: dict[str, tuple[Any, ...]] = {
    "size": (1, 2, 3, 4, 5, 7),
    "stride": (1, 2, 3, 4),
    "repeat": (1, 2, 3, 4, 6, 8),
    "rotate": (0, 15, 30, 45, 60, 75),
    "shear_x": (-0.3, -0.15, 0.0, 0.15, 0.3),
    "shear_y": (-0.3, -0.15, 0.0, 0.15, 0.3),
    "share_c": (True, False),
    "residual": (False, True),
}

#: AutoDropout shape tokens of a sequence (Transformer) site, in SequenceShape field order.
SEQUENCE_SHAPE_CHOICES: dict[str, tuple[Any, ...]] = {
    "size": (1, 2, 3, 4, 6, 8),
    "stride": (1, 2, 3, 4),
    "share": (True, False),
}

#: Global decisions ``"<variant>/<param>"`` and their choices.
VARIANT_PARAMS: dict[str, dict[str, tuple[Any, ...]]] = {
    "gsnr": {"p": (0.05, 0.1, 0.2, 0.3), "meta": (False, True), "estimator": ("microbatch", "per_example")},
    "ydrop": {"scale": (0.5, 1.0, 2.0), "refresh_every": (10, 50, 200), "steps": (4, 8)},
    # resolutions are scale factors of the input side (1.0 = unchanged), widest first.
    "gradaug": {"min_width": (0.7, 0.8, 0.9), "n_subnets": (2, 3, 4), "resolutions": ((1.0,), (1.0, 0.875, 0.75))},
    "dropblock": {"block_size": (2, 3, 5, 7)},
    "largedrop": {"rate": (0.5, 0.8, 0.9, 0.95), "pretrain_epochs": (2, 5)},
}

#: Global parameters that decode into every site of the variant instead of ``params``: dropblock's block size goes
#: into each site's ``shape``, largedrop's rate into each features site's ``rate``.
SITE_PARAMS: dict[str, str] = {"dropblock": "block_size", "largedrop": "rate"}

#: Parameters a variant always carries, not searched.
CONSTANT_PARAMS: dict[str, dict[str, Any]] = {"largedrop": {"freeze_bn": True}}


def variant_sites(variant: str, sites: Sequence[Site]) -> tuple[Site, ...]:
    """The sites a variant regularizes, in model order (``largedrop``: the features sites)."""
    if variant == "largedrop":
        return tuple(s for s in sites if s.kind == "features")
    kinds = RATE_KINDS.get(variant, ())
    return tuple(s for s in sites if s.kind in kinds)


def _check_inputs(sites: Sequence[Site], variants: Sequence[str], rates: Sequence[float]) -> None:
    names = [s.name for s in sites]
    for s in sites:
        if not isinstance(s, Site):
            raise ValueError(f"sites must be Site objects, got {s!r}")
        if "/" in s.name or "*" in s.name:
            raise ValueError(f"site name {s.name!r} must not contain '/' or '*'")
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise ValueError(f"site name(s) {duplicated} listed more than once")
    if not variants:
        raise ValueError("variants must not be empty")
    for v in variants:
        if v not in VARIANTS:
            raise ValueError(f"unknown variant {v!r}; expected one of {', '.join(VARIANTS)}")
    if not rates:
        raise ValueError("rates must not be empty")
    for r in rates:
        check_rate(r, name="rates entry")


def build_space(
    sites: Sequence[Site],
    *,
    variants: Sequence[str] = DEFAULT_VARIANTS,
    rates: Sequence[float] = DEFAULT_RATES,
    choices: Mapping[str, Sequence[Any]] | None = None,
) -> SearchSpace:
    """Generate the search space of a model from its dropout sites.

    Args:
        sites: the model's dropout sites (the workers layer lists them from the real model).
        variants: the variants to search; those that need a kind of site the model lacks (e.g. ``spatial`` on an
            MLP) are left out. Default: :data:`DEFAULT_VARIANTS`.
        rates: per-site drop rates in ``[0, 1)``. Default: :data:`DEFAULT_RATES`.
        choices: optional restrictions, decision name (or ``"*/suffix"``) -> subset of its choices; see
            :meth:`SearchSpace.restrict`.

    Returns:
        The space, carrying ``sites`` so its tokens decode to patterns.

    Raises:
        ValueError: naming the bad site, variant, rate or choice; or when no requested variant fits the model.
    """
    sites = tuple(sites)
    _check_inputs(sites, variants, rates)
    kept = [v for v in dict.fromkeys(variants) if v in ("none", "gsnr", "gradaug") or variant_sites(v, sites)]
    if not kept:
        raise ValueError(f"none of the variants {list(variants)} fits the model's sites {[s.name for s in sites]}")
    decisions = [Decision("variant", tuple(kept))]
    for v in kept:
        decisions += [Decision(f"{v}/{k}", c) for k, c in VARIANT_PARAMS.get(v, {}).items()]
    rate_kinds = {k for v in kept for k in RATE_KINDS.get(v, ())}
    for s in sites:
        if s.kind in rate_kinds:
            decisions.append(Decision(f"{s.name}/rate", tuple(float(r) for r in rates)))
        if "autodropout" in kept and s.kind in ("conv", "sequence"):
            table = CONV_SHAPE_CHOICES if s.kind == "conv" else SEQUENCE_SHAPE_CHOICES
            decisions += [Decision(f"{s.name}/{k}", c) for k, c in table.items()]
    space = SearchSpace(tuple(decisions), sites=sites)
    return space.restrict(dict(choices)) if choices else space
