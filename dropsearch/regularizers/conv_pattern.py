"""AutoDropout ConvNet patterns (Pham and Le, AAAI 2021, arXiv 2101.01761).

A site's tokens (``size``, ``stride``, ``repeat``, ``rotate``, ``shear_x``, ``shear_y``, ``share_c``, plus the
``rate`` token; their value sets are the ``autodropout`` variant's ``site_tokens["conv"]`` in
:mod:`dropsearch.regularizers.registry`) describe a structured keep mask: ``repeat x repeat`` squares of
side ``size`` spaced by ``stride`` form a cell; cells tile a periodic canvas and a fraction of them is active so
that the dropped area is close to ``rate``; the tiling is rotated and sheared, shifted by a random offset per
example (and per channel unless ``share_c``) and cropped to ``H x W``. See :mod:`._conv_canvas` for the exact
geometry and :mod:`._pattern_common` for how ``rate`` picks the active cells.

The drop fraction is predictable: :func:`implied_drop_rate` is the exact expectation of the realized fraction,
``m / 64 * (size / (size + stride)) ** 2`` with ``m = round(64 * min(1, rate / density))``. It is within
``density / 128`` (<= 0.006) of ``rate`` whenever ``rate <= density = (size / (size + stride)) ** 2``; tokens with
a lower density than ``rate`` cap the fraction at that density (all cells active).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from dropsearch.regularizers._checks import check_rank, check_rate
from dropsearch.regularizers._conv_canvas import keep_table, period, sample_keep
from dropsearch.regularizers._pattern_common import (
    DITHER_LEVELS,
    active_cells,
    check_finite,
    check_mask_shape,
    read_tokens,
    rescale_per_example,
)
from dropsearch.regularizers._rng import randint
from dropsearch.regularizers.pattern import ConvShape, SitePattern

__all__ = ["pattern_mask", "implied_drop_rate", "PatternDropout2d"]

MAX_SHEAR = 1.0
MAX_ROTATE = 360.0


def _conv_tokens(pattern: SitePattern | Mapping[str, Any]) -> tuple[ConvShape, float]:
    tokens, rate = read_tokens(pattern, ConvShape, flags=("share_c", "residual"))
    check_finite(tokens.rotate, name="rotate", bound=MAX_ROTATE)
    check_finite(tokens.shear_x, name="shear_x", bound=MAX_SHEAR)
    check_finite(tokens.shear_y, name="shear_y", bound=MAX_SHEAR)
    return tokens, rate


def _check_shape(shape: Sequence[int]) -> tuple[int, ...]:
    return check_mask_shape(shape, ("B", "C", "H", "W"))


def _density(tokens: ConvShape) -> float:
    return (tokens.size / (tokens.size + tokens.stride)) ** 2


def implied_drop_rate(pattern: SitePattern | Mapping[str, Any], shape: Sequence[int]) -> float:
    """The expected fraction of zeros of :func:`pattern_mask` for these tokens.

    Exact: with offsets uniform over the canvas period every pixel samples a uniform canvas residue, so the
    expectation is the canvas's zero fraction, ``m / 64 * (size / (size + stride)) ** 2``, for any ``shape``,
    rotation or shear (``shape`` is only validated).

    Args:
        pattern: a :class:`SitePattern` or a mapping with ``rate`` and :class:`ConvShape` tokens.
        shape: ``(B, C, H, W)``.

    Returns:
        The implied drop rate in ``[0, 1)``.
    """
    _check_shape(shape)
    tokens, rate = _conv_tokens(pattern)
    density = _density(tokens)
    return active_cells(rate, density) / DITHER_LEVELS * density


def _pattern_mask_from_offsets(
    tokens: ConvShape, rate: float, shape: tuple[int, int, int, int], offsets: torch.Tensor
) -> torch.Tensor:
    """The mask for explicit integer offsets ``(N, 2) = (o_y, o_x)``, N = B if ``share_c`` else B * C."""
    B, C, H, W = shape
    keep = sample_keep(tokens, active_cells(rate, _density(tokens)), (H, W), offsets)  # (N, 1, H, W)
    if tokens.share_c:
        return keep.view(B, 1, H, W).expand(B, C, H, W)
    return keep.view(B, C, H, W)


def pattern_mask(
    pattern: SitePattern | Mapping[str, Any],
    shape: Sequence[int],
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Sample an AutoDropout ConvNet keep mask (Pham and Le 2021, arXiv 2101.01761).

    Args:
        pattern: a :class:`SitePattern` (``rate`` + ``shape`` dict of :class:`ConvShape` tokens) or a mapping,
            flat (``{"rate": 0.2, "size": 3, ...}``) or nested (``{"rate": 0.2, "shape": {...}}``, the shape
            may also be a :class:`ConvShape`). Missing tokens take the :class:`ConvShape` defaults.
        shape: ``(B, C, H, W)`` of the activations.
        generator: draws the offsets when given.
        device: where the mask is built. Default: the CPU.

    Returns:
        A float32 {0, 1} mask of ``shape`` (0 = dropped; the caller rescales). With ``share_c`` it is an
        expanded ``(B, 1, H, W)`` view.

    Shape:
        - Output: ``(B, C, H, W)``

    Examples::

        >>> m = pattern_mask({"rate": 0.3, "size": 2, "stride": 1}, (2, 3, 16, 16))
        >>> m.shape, bool(((m == 0) | (m == 1)).all())
        (torch.Size([2, 3, 16, 16]), True)
    """
    dims = _check_shape(shape)
    tokens, rate = _conv_tokens(pattern)
    device = torch.device(device) if device is not None else torch.device("cpu")
    B, C, H, W = dims
    if active_cells(rate, _density(tokens)) == 0:
        return torch.ones(B, 1, H, W, device=device).expand(B, C, H, W)
    n = B if tokens.share_c else B * C
    offsets = randint(period(tokens)[2], (n, 2), generator=generator, device=device)  # (N, 2): (o_y, o_x)
    return _pattern_mask_from_offsets(tokens, rate, dims, offsets)


class PatternDropout2d(nn.Module):
    """AutoDropout structured dropout for ConvNet feature maps (Pham and Le 2021, arXiv 2101.01761).

    Multiplies ``x`` by a fresh :func:`pattern_mask` every training step and rescales each example by its own
    ``numel / kept`` (an example whose mask drops everything becomes zeros). Eval mode is the identity.

    Args:
        size: side of each dropped square, in pixels. Default: 3
        stride: gap between neighbouring squares, in pixels. Default: 2
        repeat: squares per cell side (``repeat x repeat`` per cell). Default: 2
        rotate: rotation of the tiling, in degrees (``|rotate| <= 360``). Default: 0
        shear_x: horizontal shear factor (``|shear_x| <= 1``). Default: 0
        shear_y: vertical shear factor (``|shear_y| <= 1``). Default: 0
        share_c: one offset for all channels (``True``) or one per channel. Default: ``True``
        residual: also apply on the residual branch (stored only; ``apply()`` installs it). Default: ``False``
        rate: target drop fraction, in ``[0, 1)``; see :func:`implied_drop_rate`. Default: 0.1

    Shape:
        - Input: ``(B, C, H, W)``
        - Output: same shape as input

    Examples::

        >>> m = PatternDropout2d(size=2, stride=1, repeat=2, rotate=30, rate=0.2)
        >>> m(torch.randn(2, 4, 8, 8)).shape
        torch.Size([2, 4, 8, 8])
    """

    def __init__(
        self,
        size: int = 3,
        stride: int = 2,
        repeat: int = 2,
        rotate: float = 0.0,
        shear_x: float = 0.0,
        shear_y: float = 0.0,
        share_c: bool = True,
        residual: bool = False,
        rate: float = 0.1,
    ) -> None:
        super().__init__()
        tokens = dict(size=size, stride=stride, repeat=repeat, rotate=rotate, shear_x=shear_x, shear_y=shear_y)
        shape, rate = _conv_tokens({"rate": rate, **tokens, "share_c": share_c, "residual": residual})
        self.size, self.stride, self.repeat = int(shape.size), int(shape.stride), int(shape.repeat)
        self.rotate, self.shear_x, self.shear_y = float(rotate), float(shear_x), float(shear_y)
        self.share_c, self.residual, self.rate = share_c, residual, rate

    @classmethod
    def from_site(cls, site: SitePattern | Mapping[str, Any]) -> PatternDropout2d:
        """Build the module from a site's tokens (a :class:`SitePattern` or a mapping as in :func:`pattern_mask`)."""
        shape, rate = _conv_tokens(site)
        return cls(**dataclasses.asdict(shape), rate=rate)

    def tokens(self) -> dict[str, Any]:
        """The pattern as a flat mapping accepted by :func:`pattern_mask`."""
        keys = ("size", "stride", "repeat", "rotate", "shear_x", "shear_y", "share_c", "residual", "rate")
        return {k: getattr(self, k) for k in keys}

    def forward(self, x: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """Apply the pattern in training mode; identity in eval mode."""
        check_rank(x, (4,))
        if not self.training or check_rate(self.rate) == 0.0:
            return x
        tokens, rate = _conv_tokens(self.tokens())
        B, C, H, W = x.shape
        active = active_cells(rate, _density(tokens))
        if active == 0:
            return rescale_per_example(x, torch.ones(B, 1, H, W, device=x.device))
        n = B if tokens.share_c else B * C
        offsets = randint(period(tokens)[2], (n, 2), generator=generator, device=x.device)  # (N, 2): (o_y, o_x)
        keep, kept = keep_table(tokens, active, (H, W), x.device).gather(offsets)  # (N, H * W) uint8, (N,)
        if tokens.share_c:
            keep, kept = keep.view(B, 1, H, W), kept * C
        else:
            keep, kept = keep.view(B, C, H, W), kept.view(B, C).sum(1)
        scale = (C * H * W / kept.clamp_min(1.0)).view(B, 1, 1, 1)  # per-example numel / kept, as rescale_per_example
        return x * (keep * scale).to(x.dtype)

    def extra_repr(self) -> str:
        """The settings shown by ``print(module)``."""
        return (
            f"size={self.size}, stride={self.stride}, repeat={self.repeat}, rotate={self.rotate:g}, "
            f"shear_x={self.shear_x:g}, shear_y={self.shear_y:g}, share_c={self.share_c}, "
            f"residual={self.residual}, rate={self.rate:.3f}"
        )
