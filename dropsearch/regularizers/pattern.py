"""The pattern document: what a search finds and what a user downloads (docs/REGULARIZERS.md, "The pattern JSON").

A pattern is a versioned, self-contained JSON document::

    {"format": "dropsearch.pattern/v1", "variant": "autodropout",
     "sites": [{"site": "features.drop1", "rate": 0.2,
                "shape": {"size": 3, "stride": 2, "repeat": 2, "rotate": 30, "shear_x": 0.0,
                          "shear_y": 0.15, "share_c": true, "residual": false}}],
     "params": {}, "provenance": {...}}

This module holds the data classes and their validation; :func:`dropsearch.regularizers.apply` turns a pattern
into modules. A pattern's ``variant`` names an entry of the variant registry
(:mod:`dropsearch.regularizers.registry`), whose torch-free look-ups are re-exported here for the layers that must not
load torch (search spaces, the API). It imports nothing but the standard library.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from dropsearch.regularizers.registry import (
    SITE_KINDS,
    VariantSpec,
    builtin_variant_names,
    get_variant,
    is_variant,
    variant_names,
    variants,
)

__all__ = [
    "PATTERN_FORMAT",
    "VARIANTS",  # noqa: F822 (a lazy module attribute, see __getattr__)
    "SITE_KINDS",
    "VariantSpec",
    "get_variant",
    "is_variant",
    "variant_names",
    "variants",
    "CONV_SHAPE_KEYS",
    "SEQUENCE_SHAPE_KEYS",
    "ConvShape",
    "SequenceShape",
    "Site",
    "SitePattern",
    "Pattern",
    "check_rate",
]

PATTERN_FORMAT = "dropsearch.pattern/v1"


def __getattr__(name: str) -> Any:
    # ``VARIANTS``: the built-in variant names, in registry order (read lazily: the built-ins import this module).
    # Plugins add more; :func:`variant_names` lists them all.
    if name == "VARIANTS":
        return builtin_variant_names()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


CONV_SHAPE_KEYS = ("size", "stride", "repeat", "rotate", "shear_x", "shear_y", "share_c", "residual")
SEQUENCE_SHAPE_KEYS = ("size", "stride", "share")


def check_rate(p: float, *, name: str = "rate", upper_inclusive: bool = False) -> float:
    """Validate a drop probability.

    Args:
        p: the probability of dropping.
        name: how the value is called in the error message.
        upper_inclusive: allow ``p == 1``. Default: ``False`` (rates live in ``[0, 1)``).

    Returns:
        ``p`` as a float.

    Raises:
        ValueError: naming ``name`` and the value when ``p`` is outside the allowed range or not a number.
    """
    try:
        value = float(p)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number in [0, 1), got {p!r}") from None
    ok = 0.0 <= value <= 1.0 if upper_inclusive else 0.0 <= value < 1.0
    if math.isnan(value) or not ok:
        bound = "[0, 1]" if upper_inclusive else "[0, 1)"
        raise ValueError(f"{name} must be in {bound}, got {p!r}")
    return value


@dataclass(frozen=True)
class Site:
    """A place in a model where a dropout module can go.

    Args:
        name: the module path (``model.get_submodule(name)`` finds it).
        kind: one of :data:`SITE_KINDS`.
        channels: channels of a conv site, features of a linear/features site, model width of a sequence site.
    """

    name: str
    kind: str
    channels: int = 0

    def __post_init__(self) -> None:
        if self.kind not in SITE_KINDS:
            raise ValueError(f"site kind must be one of {SITE_KINDS}, got {self.kind!r} for site {self.name!r}")


@dataclass(frozen=True)
class ConvShape:
    """AutoDropout shape tokens of one ConvNet site (Pham and Le 2021, arXiv 2101.01761).

    Args:
        size: side of each dropped square, in pixels.
        stride: gap between tiled copies, in pixels.
        repeat: copies per axis (``repeat x repeat`` tiles per tile group).
        rotate: rotation of the tiling, in degrees.
        shear_x: horizontal shear factor.
        shear_y: vertical shear factor.
        share_c: one pattern offset for all channels (``True``) or one per channel.
        residual: also apply the pattern on the residual/shortcut branch of the site's block.
    """

    size: int = 3
    stride: int = 2
    repeat: int = 2
    rotate: float = 0.0
    shear_x: float = 0.0
    shear_y: float = 0.0
    share_c: bool = True
    residual: bool = False

    def __post_init__(self) -> None:
        for key in ("size", "stride", "repeat"):
            value = getattr(self, key)
            if int(value) != value or value < 1:
                raise ValueError(f"shape.{key} must be a positive integer, got {value!r}")


@dataclass(frozen=True)
class SequenceShape:
    """AutoDropout shape tokens of one Transformer site.

    Args:
        size: consecutive positions dropped per block.
        stride: positions between the starts of consecutive dropped blocks beyond ``size``.
        share: drop whole tokens (all channels, ``True``) or an independent offset per channel.
    """

    size: int = 2
    stride: int = 2
    share: bool = True

    def __post_init__(self) -> None:
        for key in ("size", "stride"):
            value = getattr(self, key)
            if int(value) != value or value < 1:
                raise ValueError(f"shape.{key} must be a positive integer, got {value!r}")


@dataclass(frozen=True)
class SitePattern:
    """The regularization at one site.

    Args:
        site: the module path of the site.
        rate: drop probability in ``[0, 1)`` (``largedrop`` allows up to 0.99).
        shape: variant-specific shape tokens (:class:`ConvShape` / :class:`SequenceShape` fields for
            ``autodropout``, ``{"block_size": k}`` for ``dropblock``); empty otherwise.
    """

    site: str
    rate: float
    shape: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.site, str) or not self.site:
            raise ValueError(f"site must be a non-empty module path, got {self.site!r}")
        check_rate(self.rate, name=f"rate of site {self.site!r}")


@dataclass(frozen=True)
class Pattern:
    """A whole regularization: one variant, its sites and its parameters.

    Args:
        variant: a registered variant (:func:`variant_names`: the built-ins and installed plugins).
        sites: per-site settings.
        params: the variant's own settings (e.g. ``{"p": 0.1, "meta": true}`` for GSNR).
        provenance: where the pattern came from (search, trial, reward, metric, model, dataset, time).
        format: the document version; only ``dropsearch.pattern/v1`` is understood.
    """

    variant: str
    sites: tuple[SitePattern, ...] = ()
    params: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    format: str = PATTERN_FORMAT

    def __post_init__(self) -> None:
        if self.format != PATTERN_FORMAT:
            raise ValueError(f"pattern format must be {PATTERN_FORMAT!r}, got {self.format!r}")
        if not is_variant(self.variant):
            raise ValueError(f"unknown variant {self.variant!r}; expected one of {', '.join(variant_names())}")
        object.__setattr__(self, "sites", tuple(self.sites))
        names = [s.site for s in self.sites]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f"pattern names site(s) {duplicated} more than once")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Pattern:
        """Build a pattern from its JSON form; raises ValueError naming the bad value.

        A downloaded best pattern may also carry ``validation``, the table of the search's validation stage: it
        is information for people, not part of the regularization, and is not kept.
        """
        if not isinstance(data, dict):
            raise ValueError(f"a pattern must be a JSON object, got {type(data).__name__}")
        unknown = set(data) - {"format", "variant", "sites", "params", "provenance", "validation"}
        if unknown:
            raise ValueError(f"unknown pattern field(s): {sorted(unknown)}")
        if "variant" not in data:
            raise ValueError("pattern field 'variant' is missing")
        sites = []
        for raw in data.get("sites", []) or []:
            if not isinstance(raw, dict) or "site" not in raw:
                raise ValueError(f"each entry of 'sites' must be an object with 'site', got {raw!r}")
            sites.append(SitePattern(site=raw["site"], rate=raw.get("rate", 0.0), shape=dict(raw.get("shape") or {})))
        return cls(
            variant=data["variant"],
            sites=tuple(sites),
            params=dict(data.get("params") or {}),
            provenance=dict(data.get("provenance") or {}),
            format=data.get("format", PATTERN_FORMAT),
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (a plain dict of lists, strings and numbers)."""
        return {
            "format": self.format,
            "variant": self.variant,
            "sites": [asdict(s) for s in self.sites],
            "params": dict(self.params),
            "provenance": dict(self.provenance),
        }
