"""``bernoulli``: standard elementwise dropout at every site (Srivastava et al. 2014)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dropsearch.regularizers.pattern import SitePattern
from dropsearch.regularizers.registry import VariantSpec

__all__ = ["SPEC", "build_module", "mask_preview"]


def build_module(site: SitePattern, params: Mapping[str, Any], target: Any, kind: str | None) -> Any:
    """``BernoulliDropout(rate)``; nothing at rate 0."""
    if site.rate == 0.0:
        return None
    from dropsearch.regularizers.bernoulli import BernoulliDropout

    return BernoulliDropout(site.rate)


def mask_preview(site: Mapping[str, Any], side: int, generator: Any) -> tuple[Any, str]:
    """One elementwise keep mask of ``side x side``."""
    import torch

    from dropsearch.regularizers.bernoulli import bernoulli_dropout

    out = bernoulli_dropout(torch.ones(1, 1, side, side), float(site.get("rate", 0.0)), generator=generator)
    return out[0, 0] != 0, "elementwise"


SPEC = VariantSpec(
    name="bernoulli",
    description=(
        "Standard elementwise dropout (Srivastava et al. 2014): every activation at a site is zeroed with the "
        "site's rate and the rest scaled by 1/(1-rate), exactly nn.Dropout. Works on every kind of site."
    ),
    site_kinds=("conv", "linear", "sequence", "features"),
    build_module=build_module,
    mask_preview=mask_preview,
)
