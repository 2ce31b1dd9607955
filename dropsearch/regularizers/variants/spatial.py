"""``spatial``: SpatialDropout, whole channels of a conv feature map (Tompson et al. 2015, arXiv 1411.4280)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dropsearch.regularizers.pattern import SitePattern
from dropsearch.regularizers.registry import VariantSpec

__all__ = ["SPEC", "build_module", "mask_preview"]


def build_module(site: SitePattern, params: Mapping[str, Any], target: Any, kind: str | None) -> Any:
    """``SpatialDropout(rate)``; nothing at rate 0."""
    if site.rate == 0.0:
        return None
    from dropsearch.regularizers.spatial import SpatialDropout

    return SpatialDropout(site.rate)


def mask_preview(site: Mapping[str, Any], side: int, generator: Any) -> tuple[Any, str]:
    """Which of 16 channels of 4 x 4 are kept, drawn as 4 x 4 tiles (``side`` is not used)."""
    import torch

    from dropsearch.regularizers.spatial import spatial_dropout

    out = spatial_dropout(torch.ones(1, 16, 4, 4), float(site.get("rate", 0.0)), generator=generator)
    tiles = (out[0] != 0).float().reshape(4, 4, 4, 4).permute(0, 2, 1, 3).reshape(16, 16)
    return tiles, "16 channels (4 x 4 tiles)"


SPEC = VariantSpec(
    name="spatial",
    description=(
        "SpatialDropout (Tompson et al. 2015, arXiv 1411.4280): drops whole channels of a conv feature map with "
        "the site's rate, so neighbouring, strongly correlated pixels cannot stand in for each other."
    ),
    site_kinds=("conv",),
    build_module=build_module,
    mask_preview=mask_preview,
)
