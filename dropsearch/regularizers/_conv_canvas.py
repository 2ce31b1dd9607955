"""Geometry of the AutoDropout ConvNet pattern mask (Pham and Le 2021, arXiv 2101.01761).

The keep canvas is periodic. Along each axis the pitch is ``p = size + stride`` (a dropped run of ``size``
pixels, then ``stride`` kept ones); ``repeat`` pitches make a cell (``repeat x repeat`` squares) and
``DITHER_LEVELS ** 0.5 = 8`` cells make the period ``P = 8 * repeat * p``. A cell's squares are dropped when its
Bayer threshold is below ``m`` (see :mod:`._pattern_common`).

For output pixel ``(i, j)`` (row, column) and integer offset ``(o_y, o_x)`` the mask is, with ``M`` the rotation
(``rotate`` degrees) times the shear ``[[1, shear_x], [shear_y, 1]]`` acting on ``(x, y) = (j, i)``::

    (x', y') = M @ (j, i) + SUBPIXEL_SHIFT
    mask[i, j] = canvas[(round(y') + o_y) mod P, (round(x') + o_x) mod P]

evaluated for all examples at once by one ``affine_grid`` + ``grid_sample(mode="nearest")`` on a source canvas
that covers every sampled position. Because offsets are uniform over the period, every pixel samples a uniform
residue of the canvas, so the expected drop fraction is exactly the canvas's zero fraction, whatever the
rotation, shear or map size. ``SUBPIXEL_SHIFT`` keeps the (rational) shear values away from rounding ties.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from dropsearch.regularizers._pattern_common import bayer_matrix
from dropsearch.regularizers.pattern import ConvShape

__all__ = ["SUBPIXEL_SHIFT", "CELLS_PER_PERIOD", "period", "pattern_matrix", "keep_canvas", "sample_keep"]

SUBPIXEL_SHIFT = 0.02
CELLS_PER_PERIOD = 8  # the Bayer matrix side: 64 dither levels


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


def _axis_extent(a_x: float, a_y: float, width: int, height: int) -> tuple[int, int]:
    """Floor of the minimum and ceiling of the maximum of ``a_x * j + a_y * i`` over the output corners."""
    values = [a_x * j + a_y * i for j in (0, width - 1) for i in (0, height - 1)]
    return math.floor(min(values)), math.ceil(max(values))


def sample_keep(tokens: ConvShape, active: int, hw: tuple[int, int], offsets: torch.Tensor) -> torch.Tensor:
    """The keep masks for a batch of integer offsets, in one ``affine_grid`` + ``grid_sample``.

    Args:
        tokens: the shape tokens.
        active: active cells out of 64 (:func:`._pattern_common.active_cells`).
        hw: output ``(H, W)``.
        offsets: ``(N, 2)`` int64 ``(o_y, o_x)`` on the target device; any integers (used modulo the period).

    Returns:
        ``(N, 1, H, W)`` float32 {0, 1} tensor on ``offsets.device``.
    """
    H, W = hw
    N, device = offsets.shape[0], offsets.device
    _, _, full = period(tokens)
    a11, a12, a21, a22 = pattern_matrix(tokens.rotate, tokens.shear_x, tokens.shear_y)
    (x_lo, x_hi), (y_lo, y_hi) = _axis_extent(a11, a12, W, H), _axis_extent(a21, a22, W, H)
    base_x, base_y = 1 - x_lo, 1 - y_lo  # source index of M @ (0, 0) before the offset
    Ws, Hs = x_hi + base_x + full + 2, y_hi + base_y + full + 2  # room for every offset in [0, P)
    idx_y = torch.arange(Hs, device=device) - base_y
    idx_x = torch.arange(Ws, device=device) - base_x
    source = keep_canvas(idx_y, idx_x, tokens, active)[None, None]  # (1, 1, Hs, Ws)
    off = offsets.remainder(full).to(torch.float32)  # (N, 2), exact small integers
    cx, cy = (W - 1) / 2, (H - 1) / 2
    # source position of the output centre at zero offset, normalized to the source's [-1, 1] range
    c_x = 2.0 * (a11 * cx + a12 * cy + base_x + SUBPIXEL_SHIFT - (Ws - 1) / 2) / Ws
    c_y = 2.0 * (a21 * cx + a22 * cy + base_y + SUBPIXEL_SHIFT - (Hs - 1) / 2) / Hs
    linear = torch.tensor([[a11 * W / Ws, a12 * H / Ws], [a21 * W / Hs, a22 * H / Hs]], device=device)
    shift = torch.tensor([c_x, c_y], device=device) + off.flip(1) * torch.tensor([2.0 / Ws, 2.0 / Hs], device=device)
    theta = torch.cat([linear.expand(N, 2, 2), shift[:, :, None]], dim=2)  # (N, 2, 3)
    grid = F.affine_grid(theta, [N, 1, H, W], align_corners=False)  # (N, H, W, 2)
    return F.grid_sample(
        source.expand(N, 1, Hs, Ws), grid, mode="nearest", padding_mode="border", align_corners=False
    )  # (N, 1, H, W)
