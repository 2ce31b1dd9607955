"""Built-in search spaces generated from a model's dropout sites and the variant registry.

Decisions, in sampling order:

1. ``variant``: which regularizer (the requested variants that the model's sites admit: a site variant needs a site
   of one of its kinds, and a variant is not offered to a model with a site of a kind it excludes, e.g. GradAug and
   the Transformer's sequence sites).
2. Variant parameters, named ``"<variant>/<param>"`` (each variant's ``params`` in the registry), e.g. ``gsnr/p``,
   ``ydrop/scale``, ``gradaug/min_width``, ``dropblock/block_size``, ``largedrop/rate``. A conditional parameter
   (GradAug's ``resolutions``) is a decision only when the model has a site of the kind it needs.
3. Per site, in site order: ``"<site>/rate"`` (the requested rates) when some variant puts its own rate on that kind
   of site, then the per-site tokens the variants declare for that kind (AutoDropout's ``"<site>/size"``,
   ``"<site>/stride"``, ...).

Every decision is always sampled; decoding (:mod:`dropsearch.search.codec`) ignores the ones the chosen variant does
not use. Everything variant-specific is read from :mod:`dropsearch.regularizers.registry`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from dropsearch.regularizers.pattern import Site, check_rate, get_variant, is_variant, variant_names
from dropsearch.search.space import Decision, SearchSpace

__all__ = [
    "DEFAULT_VARIANTS",
    "DEFAULT_RATES",
    "CONV_SHAPE_CHOICES",
    "SEQUENCE_SHAPE_CHOICES",
    "build_space",
    "offered_variants",
    "variant_sites",
]

DEFAULT_VARIANTS: tuple[str, ...] = ("bernoulli", "dropblock", "autodropout", "gsnr", "ydrop", "gradaug")
DEFAULT_RATES: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.5)

#: AutoDropout shape tokens of a conv site (from the registry), in ConvShape field order.
CONV_SHAPE_CHOICES: dict[str, tuple[Any, ...]] = dict(get_variant("autodropout").site_tokens["conv"])
#: AutoDropout shape tokens of a sequence (Transformer) site (from the registry), in SequenceShape field order.
SEQUENCE_SHAPE_CHOICES: dict[str, tuple[Any, ...]] = dict(get_variant("autodropout").site_tokens["sequence"])


def variant_sites(variant: str, sites: Sequence[Site]) -> tuple[Site, ...]:
    """The sites a variant regularizes, in model order (``largedrop``: the features sites; model-wide: none)."""
    return get_variant(variant).sites_of(sites)


def offered_variants(sites: Sequence[Site], variants: Sequence[str] | None = None) -> tuple[str, ...]:
    """The variants (of ``variants``, default: every registered one) a model with ``sites`` is offered, in order."""
    names = variant_names() if variants is None else variants
    return tuple(v for v in dict.fromkeys(names) if get_variant(v).offered_to(sites))


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
        if not is_variant(v):
            raise ValueError(f"unknown variant {v!r}; expected one of {', '.join(variant_names())}")
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
        variants: the variants to search; those the model's sites do not admit (e.g. ``spatial`` on an MLP, or
            ``gradaug`` on a model with sequence sites) are left out. Default: :data:`DEFAULT_VARIANTS`.
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
    kept = offered_variants(sites, variants)
    if not kept:
        raise ValueError(f"none of the variants {list(variants)} fits the model's sites {[s.name for s in sites]}")
    specs = [get_variant(v) for v in kept]
    kinds = {s.kind for s in sites}
    decisions = [Decision("variant", tuple(kept))]
    for spec in specs:
        decisions += [Decision(f"{spec.name}/{k}", c) for k, c in spec.param_decisions(kinds).items()]
    rate_kinds = {k for spec in specs if spec.rate_param is None for k in spec.site_kinds}
    for s in sites:
        if s.kind in rate_kinds:
            decisions.append(Decision(f"{s.name}/rate", tuple(float(r) for r in rates)))
        tokens: dict[str, tuple[Any, ...]] = {}
        for spec in specs:
            for key, values in spec.site_tokens.get(s.kind, {}).items():
                if tokens.setdefault(key, values) != values:
                    raise ValueError(f"variants declare different choices for the site token {key!r} of {s.kind} sites")
        decisions += [Decision(f"{s.name}/{k}", c) for k, c in tokens.items()]
    space = SearchSpace(tuple(decisions), sites=sites)
    return space.restrict(dict(choices)) if choices else space
