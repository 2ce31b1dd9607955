"""``dropblock``: contiguous squares of a conv feature map (Ghiasi et al. 2018, arXiv 1810.12890)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dropsearch.regularizers.pattern import SitePattern
from dropsearch.regularizers.registry import VariantSpec

__all__ = ["SPEC", "build_module", "mask_preview"]


def build_module(site: SitePattern, params: Mapping[str, Any], target: Any, kind: str | None) -> Any:
    """``DropBlock2d(rate, block_size)`` with the site's ``shape.block_size`` (3 when absent); nothing at rate 0."""
    if site.rate == 0.0:
        return None
    from dropsearch.regularizers.drop_block import DropBlock2d

    return DropBlock2d(site.rate, block_size=int(site.shape.get("block_size", 3)))


def mask_preview(site: Mapping[str, Any], side: int, generator: Any) -> tuple[Any, str]:
    """One DropBlock keep mask of ``side x side``."""
    import torch

    from dropsearch.regularizers.drop_block import drop_block_2d

    block = int(dict(site.get("shape") or {}).get("block_size", 3))
    out = drop_block_2d(torch.ones(1, 1, side, side), float(site.get("rate", 0.0)), block, generator=generator)
    return out[0, 0] != 0, f"block_size={block}"


SPEC = VariantSpec(
    name="dropblock",
    description=(
        "DropBlock (Ghiasi et al. 2018, arXiv 1810.12890): drops contiguous block_size x block_size squares of a "
        "conv feature map, seeded at a rate chosen so that about the site's rate of the map is dropped. One "
        "block size is searched for the whole model."
    ),
    site_kinds=("conv",),
    params={"block_size": (2, 3, 5, 7)},
    shape_params=("block_size",),
    build_module=build_module,
    mask_preview=mask_preview,
)
