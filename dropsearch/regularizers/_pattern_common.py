"""Pieces shared by the AutoDropout pattern masks (Pham and Le 2021, arXiv 2101.01761).

- Reading a site's tokens from a :class:`SitePattern` or a plain mapping.
- The ``rate`` token: a pattern tiles the plane (or the time axis) with "cells", each holding the tokens'
  squares (or runs). A cell is active when its ordered-dither threshold is below ``m``, with
  ``m = round(levels * min(1, rate / density))`` and ``density`` the dropped fraction of a fully active tiling.
  Ordered dithering (a Bayer matrix in 2-D, bit-reversed order in 1-D) spreads the ``m`` active cells of every
  ``levels`` evenly, so the pattern stays periodic with a small period and the dropped fraction is exactly
  ``m / levels * density``: within ``density / (2 * levels)`` of ``rate`` whenever ``rate <= density``.
- Per-example inverted scaling by ``numel / kept``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from dropsearch.regularizers._checks import check_rate
from dropsearch.regularizers.pattern import SitePattern

__all__ = [
    "DITHER_LEVELS",
    "read_tokens",
    "check_finite",
    "active_cells",
    "bayer_matrix",
    "bit_reversed_order",
    "rescale_per_example",
]

#: Number of cells in one dither period (an 8 x 8 Bayer matrix in 2-D, 64 positions in 1-D).
DITHER_LEVELS = 64


def read_tokens(pattern: Any, shape_cls: type, flags: tuple[str, ...]) -> tuple[Any, float]:
    """Return ``(shape, rate)`` from a :class:`SitePattern` or a mapping.

    A mapping holds ``rate`` and the shape tokens either flat (``{"rate": 0.2, "size": 3, ...}``) or nested under
    ``"shape"`` (a dict or a ``shape_cls`` instance). Missing tokens take ``shape_cls`` defaults.

    Raises:
        ValueError: naming the value, for an unknown type, a missing rate, unknown keys or bad token values.
    """
    if isinstance(pattern, SitePattern):
        rate, tokens = pattern.rate, dict(pattern.shape)
    elif isinstance(pattern, Mapping):
        tokens = dict(pattern)
        if "rate" not in tokens:
            raise ValueError(f"pattern mapping needs a 'rate', got keys {sorted(tokens)}")
        rate = tokens.pop("rate")
        tokens.pop("site", None)
        nested = tokens.pop("shape", None)
        if isinstance(nested, shape_cls):
            nested = dataclasses.asdict(nested)
        if nested is not None:
            if not isinstance(nested, Mapping):
                raise ValueError(f"pattern 'shape' must be a mapping, got {nested!r}")
            tokens.update(nested)
    else:
        raise ValueError(f"pattern must be a SitePattern or a mapping, got {pattern!r}")
    known = {f.name for f in dataclasses.fields(shape_cls)}
    unknown = sorted(set(tokens) - known)
    if unknown:
        raise ValueError(f"unknown shape token(s) {unknown}; expected a subset of {sorted(known)}")
    for key in flags:
        if key in tokens and not isinstance(tokens[key], bool):
            raise ValueError(f"shape.{key} must be a bool, got {tokens[key]!r}")
    try:
        shape = shape_cls(**tokens)
    except TypeError:  # e.g. int(None) inside the dataclass check
        raise ValueError(f"bad shape tokens {tokens!r}") from None
    return shape, check_rate(rate, name="pattern rate")


def check_finite(value: Any, *, name: str, bound: float) -> float:
    """Return ``value`` as a float, or raise ValueError naming it unless it is finite and ``|value| <= bound``."""
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(out) or abs(out) > bound:
        raise ValueError(f"{name} must be finite with |{name}| <= {bound}, got {value!r}")
    return out


def active_cells(rate: float, density: float, levels: int = DITHER_LEVELS) -> int:
    """How many of ``levels`` dither cells are active so that the dropped fraction is closest to ``rate``."""
    if rate <= 0.0 or density <= 0.0:
        return 0
    return min(levels, math.floor(levels * rate / density + 0.5))


def bayer_matrix(order: int = 8, device: torch.device | str | None = None) -> torch.Tensor:
    """The ``order x order`` ordered-dither (Bayer) threshold matrix with values ``0 .. order^2 - 1``.

    Every ``k x k`` block with ``k`` a power of two below ``order`` holds evenly spread thresholds, so the cells
    with threshold ``< m`` are spread over the plane. ``order`` must be a power of two.
    """
    mat = torch.zeros(1, 1, dtype=torch.long)
    while mat.shape[0] < order:
        mat = torch.cat([torch.cat([4 * mat, 4 * mat + 2], 1), torch.cat([4 * mat + 3, 4 * mat + 1], 1)], 0)
    return mat.to(device)


def bit_reversed_order(levels: int = DITHER_LEVELS, device: torch.device | str | None = None) -> torch.Tensor:
    """1-D dither thresholds: position ``k`` gets the bit reversal of ``k`` (``levels`` a power of two)."""
    bits = levels.bit_length() - 1
    k = torch.arange(levels)
    rev = torch.zeros_like(k)
    for b in range(bits):  # loop over bits, not over data
        rev |= ((k >> b) & 1) << (bits - 1 - b)
    return rev.to(device)


def rescale_per_example(x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """``x * keep * numel / kept`` with ``numel`` and ``kept`` counted per example (dim 0).

    ``keep`` is a float32 {0, 1} mask broadcastable to ``x``'s shape (an expanded view is fine). An example whose
    mask drops everything comes out as zeros.
    """
    keep = keep.expand(x.shape)
    per_example = keep[0].numel()
    kept = keep.reshape(keep.shape[0], -1).sum(dim=1).clamp_min(1.0)  # (B,)
    scale = (per_example / kept).view((-1,) + (1,) * (x.ndim - 1))  # (B, 1, ...)
    return x * (keep * scale).to(x.dtype)


def check_mask_shape(shape: Sequence[int], layout: tuple[str, ...]) -> tuple[int, ...]:
    """``shape`` as a tuple of positive ints with one entry per name in ``layout`` (e.g. ``("B", "C", "H", "W")``).

    Raises:
        ValueError: naming the expected layout and the value.
    """
    try:
        dims = tuple(shape)
        ok = len(dims) == len(layout) and all(not isinstance(d, bool) and int(d) == d and d >= 1 for d in dims)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"shape must be ({', '.join(layout)}) with positive sizes, got {shape!r}")
    return tuple(int(d) for d in dims)
