"""Geometry of the AutoDropout ConvNet pattern mask (Pham and Le 2021, arXiv 2101.01761).

The keep canvas is periodic. Along each axis the pitch is ``p = size + stride`` (a dropped run of ``size``
pixels, then ``stride`` kept ones); ``repeat`` pitches make a cell (``repeat x repeat`` squares) and
``DITHER_LEVELS ** 0.5 = 8`` cells make the period ``P = 8 * repeat * p``. A cell's squares are dropped when its
Bayer threshold is below ``m`` (see :mod:`._pattern_common`).

For output pixel ``(i, j)`` (row, column) and integer offset ``(o_y, o_x)`` the mask is, with ``M`` the rotation
(``rotate`` degrees) times the shear ``[[1, shear_x], [shear_y, 1]]`` acting on ``(x, y) = (j, i)``::

    (x', y') = M @ (j, i) + SUBPIXEL_SHIFT
    mask[i, j] = canvas[(round(y') + o_y) mod P, (round(x') + o_x) mod P]

Because offsets are uniform over the period, every pixel samples a uniform residue of the canvas, so the expected
drop fraction is exactly the canvas's zero fraction, whatever the rotation, shear or map size. ``SUBPIXEL_SHIFT``
keeps the (rational) shear values away from rounding ties.

Evaluation (a :class:`KeepTable`, cached per tokens, active cells, ``H x W`` and device): the rounded positions
``(round(y') mod P, round(x') mod P)`` depend on neither the batch nor the offsets, so they are computed once (in
float64) as flat indices into a ``2P x 2P`` canvas; a step only adds each offset's flat shift and gathers. When
all ``P * P`` masks of one map fit in ``BANK_BYTES`` (e.g. ``P = 64`` at 32 x 32: 4 MiB) they are built once as a
uint8 bank with their kept counts, and a step is one row gather (``index_select``) per mask: no per-pixel
arithmetic and no reduction for the per-example rescale.
"""

from __future__ import annotations

import functools
import math

import torch

from dropsearch.regularizers._pattern_common import bayer_matrix
from dropsearch.regularizers.pattern import ConvShape

__all__ = [
    "SUBPIXEL_SHIFT",
    "CELLS_PER_PERIOD",
    "BANK_BYTES",
    "period",
    "pattern_matrix",
    "keep_canvas",
    "KeepTable",
    "keep_table",
    "sample_keep",
]

SUBPIXEL_SHIFT = 0.02
CELLS_PER_PERIOD = 8  # the Bayer matrix side: 64 dither levels
#: Largest bank of precomputed masks (``P * P * H * W`` uint8) a :class:`KeepTable` builds; beyond it, gathers.
BANK_BYTES = 1 << 23


def period(tokens: ConvShape) -> tuple[int, int, int]:
    """``(pitch, cell, P)`` in pixels: square pitch, cell side and canvas period."""
    pitch = int(tokens.size) + int(tokens.stride)
    cell = int(tokens.repeat) * pitch
    return pitch, cell, CELLS_PER_PERIOD * cell


def pattern_matrix(rotate: float, shear_x: float, shear_y: float) -> tuple[float, float, float, float]:
    """``(a11, a12, a21, a22)`` of ``M = R(rotate) @ [[1, shear_x], [shear_y, 1]]`` acting on ``(x, y)``."""
    c, s = math.cos(math.radians(rotate)), math.sin(math.radians(rotate))
    return c - s * shear_y, c * shear_x - s, s + c * shear_y, s * shear_x + c


def keep_canvas(rows: torch.Tensor, cols: torch.Tensor, tokens: ConvShape, active: int) -> torch.Tensor:
    """The {0, 1} float32 keep canvas at integer ``rows x cols`` (any integers; taken modulo the period).

    Returns:
        ``(len(rows), len(cols))`` tensor, 0 on the squares of active cells.
    """
    pitch, cell, full = period(tokens)
    rows, cols = rows % full, cols % full
    in_row, in_col = (rows % pitch) < tokens.size, (cols % pitch) < tokens.size  # (R,), (Q,)
    bayer = bayer_matrix(CELLS_PER_PERIOD, device=rows.device)
    threshold = bayer[(rows // cell)[:, None], (cols // cell)[None, :]]  # (R, Q)
    dropped = in_row[:, None] & in_col[None, :] & (threshold < active)
    return (~dropped).float()


class KeepTable:
    """Everything about a pattern mask that does not depend on the offsets (see the module docstring).

    Args:
        tokens: the shape tokens.
        active: active cells out of 64 (:func:`._pattern_common.active_cells`).
        hw: output ``(H, W)``.
        device: where the tables live.

    Attributes:
        full: the canvas period ``P``.
        index: ``(H * W,)`` int64 flat index into ``canvas`` at zero offset.
        canvas: ``(2P * 2P,)`` uint8 keep canvas over ``[0, 2P)^2``.
        bank: ``(P * P, H * W)`` uint8 mask of every offset ``o_y * P + o_x``, or ``None`` over ``BANK_BYTES``.
        kept: ``(P * P,)`` float32 kept pixels of each banked mask, or ``None``.
    """

    def __init__(self, tokens: ConvShape, active: int, hw: tuple[int, int], device: torch.device) -> None:
        H, W = hw
        _, _, full = period(tokens)
        a11, a12, a21, a22 = pattern_matrix(tokens.rotate, tokens.shear_x, tokens.shear_y)
        i = torch.arange(H, dtype=torch.float64, device=device)[:, None]
        j = torch.arange(W, dtype=torch.float64, device=device)[None, :]
        col = torch.round(a11 * j + a12 * i + SUBPIXEL_SHIFT).long().remainder_(full)  # (H, W)
        row = torch.round(a21 * j + a22 * i + SUBPIXEL_SHIFT).long().remainder_(full)
        self.full = full
        self.index = (row * (2 * full) + col).reshape(-1)
        span = torch.arange(2 * full, device=device)
        self.canvas = keep_canvas(span, span, tokens, active).to(torch.uint8).reshape(-1)
        self.bank: torch.Tensor | None = None
        self.kept: torch.Tensor | None = None
        if full * full * H * W <= BANK_BYTES:
            every = torch.arange(full, device=device)
            rows = [self.canvas[(self.index + o_y * 2 * full)[None, :] + every[:, None]] for o_y in range(full)]
            self.bank = torch.cat(rows)  # (P * P, H * W): row o_y * P + o_x, built one o_y at a time
            self.kept = self.bank.sum(1, dtype=torch.float32)

    def gather(self, offsets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The uint8 keep masks ``(N, H * W)`` and their kept counts ``(N,)`` float32 for ``(N, 2)`` offsets."""
        off = offsets.remainder(self.full)
        if self.bank is not None and self.kept is not None:
            flat = off[:, 0] * self.full + off[:, 1]
            return self.bank.index_select(0, flat), self.kept.index_select(0, flat)
        shift = off[:, 0] * (2 * self.full) + off[:, 1]
        keep = self.canvas[self.index[None, :] + shift[:, None]]
        return keep, keep.sum(1, dtype=torch.float32)


@functools.lru_cache(maxsize=32)
def _cached_table(key: tuple, active: int, hw: tuple[int, int], device: torch.device) -> KeepTable:
    size, stride, repeat, rotate, shear_x, shear_y = key
    tokens = ConvShape(size=size, stride=stride, repeat=repeat, rotate=rotate, shear_x=shear_x, shear_y=shear_y)
    return KeepTable(tokens, active, hw, device)


def keep_table(tokens: ConvShape, active: int, hw: tuple[int, int], device: torch.device | str) -> KeepTable:
    """The cached :class:`KeepTable` for these tokens, active cells, ``(H, W)`` and device."""
    key = (
        int(tokens.size),
        int(tokens.stride),
        int(tokens.repeat),
        *map(float, (tokens.rotate, tokens.shear_x, tokens.shear_y)),
    )
    return _cached_table(key, int(active), (int(hw[0]), int(hw[1])), torch.device(device))


def sample_keep(tokens: ConvShape, active: int, hw: tuple[int, int], offsets: torch.Tensor) -> torch.Tensor:
    """The keep masks for a batch of integer offsets (a gather from the cached :class:`KeepTable`).

    Args:
        tokens: the shape tokens.
        active: active cells out of 64 (:func:`._pattern_common.active_cells`).
        hw: output ``(H, W)``.
        offsets: ``(N, 2)`` int64 ``(o_y, o_x)`` on the target device; any integers (used modulo the period).

    Returns:
        ``(N, 1, H, W)`` float32 {0, 1} tensor on ``offsets.device``.
    """
    keep, _ = keep_table(tokens, active, hw, offsets.device).gather(offsets)
    return keep.to(torch.float32).view(offsets.shape[0], 1, *hw)
