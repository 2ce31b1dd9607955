"""``autodropout``: searched structured dropout patterns (Pham and Le 2021, arXiv 2101.01761).

Conv sites take tiled, rotated and sheared squares (:class:`~dropsearch.regularizers.conv_pattern.PatternDropout2d`),
sequence sites runs of positions (:class:`~dropsearch.regularizers.sequence_pattern.SequencePatternDropout`); each
site has its own shape tokens. Value sets follow the paper's search space; choice 0 is the canonical default.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dropsearch.regularizers.pattern import SitePattern
from dropsearch.regularizers.registry import VariantSpec

__all__ = ["SPEC", "CONV_SHAPE_CHOICES", "SEQUENCE_SHAPE_CHOICES", "build_module", "mask_preview"]

#: Shape tokens of a conv site, in ConvShape field order.
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

#: Shape tokens of a sequence (Transformer) site, in SequenceShape field order.
SEQUENCE_SHAPE_CHOICES: dict[str, tuple[Any, ...]] = {
    "size": (1, 2, 3, 4, 6, 8),
    "stride": (1, 2, 3, 4),
    "share": (True, False),
}


def _is_sequence_shape(shape: Mapping[str, Any], kind: str | None) -> bool:
    if kind is not None:
        return kind == "sequence"
    return "share" in shape and "share_c" not in shape


def build_module(site: SitePattern, params: Mapping[str, Any], target: Any, kind: str | None) -> Any:
    """The sequence pattern on ``"sequence"`` sites, the ConvNet pattern otherwise; nothing at rate 0.

    Without ``kind`` (a model that lists no sites), a shape with ``share`` and no ``share_c`` is a sequence pattern.
    """
    if site.rate == 0.0:
        return None
    if _is_sequence_shape(site.shape, kind):
        from dropsearch.regularizers.sequence_pattern import SequencePatternDropout

        return SequencePatternDropout.from_site(site)
    from dropsearch.regularizers.conv_pattern import PatternDropout2d

    return PatternDropout2d.from_site(site)


def mask_preview(site: Mapping[str, Any], side: int, generator: Any) -> tuple[Any, str]:
    """A conv pattern on ``side x side``, or a sequence pattern of ``side`` channels x ``side // 2`` positions."""
    rate = float(site.get("rate", 0.0))
    shape = dict(site.get("shape") or {})
    if "share" in shape and "share_c" not in shape and "rotate" not in shape:
        from dropsearch.regularizers.sequence_pattern import sequence_pattern_mask

        mask = sequence_pattern_mask({"rate": rate, "shape": shape}, (1, side, side // 2), generator=generator)
        return mask[0].T, "channels x positions"
    from dropsearch.regularizers.conv_pattern import pattern_mask

    mask = pattern_mask({"rate": rate, "shape": shape}, (1, 1, side, side), generator=generator)
    caption = ", ".join(f"{k}={v}" for k, v in shape.items() if k in ("size", "stride", "repeat", "rotate"))
    return mask[0, 0], caption


SPEC = VariantSpec(
    name="autodropout",
    description=(
        "AutoDropout (Pham and Le 2021, arXiv 2101.01761): structured dropout patterns whose shape is searched per "
        "site. On conv sites, squares of a searched size and stride, tiled, rotated and sheared, shared across "
        "channels or not, optionally also on the residual branch; on sequence sites, runs of positions dropped "
        "for whole tokens or per channel. The site's rate sets how many tiling cells are active."
    ),
    site_kinds=("conv", "sequence"),
    site_tokens={"conv": CONV_SHAPE_CHOICES, "sequence": SEQUENCE_SHAPE_CHOICES},
    build_module=build_module,
    mask_preview=mask_preview,
    residual_twin=True,
)
