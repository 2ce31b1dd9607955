"""DropBlock: drop contiguous ``block_size x block_size`` squares of a feature map.

Ghiasi, Lin and Le 2018, "DropBlock: A regularization method for convolutional networks" (arXiv 1810.12890).
Seeds are sampled with rate ``gamma = p / bs^2 * (H * W) / ((H - bs + 1) * (W - bs + 1))`` at the positions where
a whole block fits inside the map, expanded into blocks with a max-pool, and the kept activations are rescaled
by ``numel / kept`` over the whole batch (as in the paper and timm's ``drop_block_2d``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dropsearch.regularizers._checks import check_positive_int, check_rank, check_rate
from dropsearch.regularizers._rng import uniform

__all__ = ["drop_block_2d", "DropBlock2d", "seed_rate", "expected_drop_rate"]


def seed_rate(p: float, block_size: int, height: int, width: int) -> float:
    """The DropBlock seed rate ``gamma`` for a ``height x width`` map (block side clipped to the map).

    ``gamma = p / bs^2 * (H * W) / ((H - bs + 1) * (W - bs + 1))``, capped at 1.
    """
    bs = min(block_size, height, width)
    gamma = p / bs**2 * (height * width) / ((height - bs + 1) * (width - bs + 1))
    return min(gamma, 1.0)


def expected_drop_rate(p: float, block_size: int, height: int, width: int) -> float:
    """The exact expected fraction of dropped activations of :func:`drop_block_2d` on a ``height x width`` map.

    A position covered by ``k`` possible blocks survives with probability ``(1 - gamma) ** k``, so the expected
    drop fraction is ``1 - mean((1 - gamma) ** coverage)``. Overlaps make it lower than ``p`` at high rates
    (e.g. 0.18 for ``p = 0.2`` and 0.26 for ``p = 0.3`` with ``block_size = 3`` on 32 x 32).
    """
    bs = min(block_size, height, width)
    gamma = seed_rate(p, bs, height, width)
    ones = torch.ones(1, 1, height - bs + 1, width - bs + 1, dtype=torch.float64)
    coverage = _expand_count(ones, bs)  # (1, 1, H, W): how many block positions cover each pixel
    return float(1.0 - ((1.0 - gamma) ** coverage).mean())


def _expand_count(seeds: torch.Tensor, block_size: int) -> torch.Tensor:
    """Like :func:`_expand_seeds` but counts the covering seeds instead of taking their max."""
    pad = block_size - 1
    kernel = torch.ones(1, 1, block_size, block_size, dtype=seeds.dtype, device=seeds.device)
    return F.conv2d(F.pad(seeds, (pad, pad, pad, pad)), kernel)


def _expand_seeds(seeds: torch.Tensor, block_size: int) -> torch.Tensor:
    """Turn block seeds into a drop indicator.

    Args:
        seeds: ``(B, C, H - bs + 1, W - bs + 1)`` {0, 1} tensor; a 1 at ``(i, j)`` is the top-left corner of a
            dropped ``bs x bs`` block.
        block_size: the block side ``bs``.

    Returns:
        ``(B, C, H, W)`` {0, 1} tensor, 1 where some block covers the position.
    """
    pad = block_size - 1
    padded = F.pad(seeds, (pad, pad, pad, pad))  # (B, C, H + bs - 1, W + bs - 1)
    return F.max_pool2d(padded, kernel_size=block_size, stride=1)  # (B, C, H, W)


def drop_block_2d(
    x: torch.Tensor,
    p: float,
    block_size: int,
    training: bool = True,
    *,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Drop ``block_size x block_size`` squares of ``x``; see :class:`DropBlock2d`.

    Args:
        x: a ``(B, C, H, W)`` tensor.
        p: target fraction of dropped activations, in ``[0, 1)``.
        block_size: side of the dropped squares (clipped to ``min(H, W)``).
        training: apply DropBlock; when ``False`` return ``x`` unchanged.
        generator: draws the seeds when given.

    Returns:
        A tensor shaped like ``x`` (``x`` itself when not training or ``p == 0``).
    """
    check_rank(x, (4,))
    p = check_rate(p, name="p")
    block_size = check_positive_int(block_size, name="block_size")
    if not training or p == 0.0:
        return x
    B, C, H, W = x.shape
    bs = min(block_size, H, W)
    gamma = seed_rate(p, bs, H, W)
    seed_shape = (B, C, H - bs + 1, W - bs + 1)  # positions where a whole block fits
    seeds = (uniform(seed_shape, generator=generator, device=x.device) < gamma).float()
    keep = 1.0 - _expand_seeds(seeds, bs)  # (B, C, H, W)
    scale = keep.numel() / keep.sum().clamp_min(1.0)  # numel / kept over the batch
    return x * (keep * scale).to(x.dtype)


class DropBlock2d(nn.Module):
    """DropBlock (Ghiasi et al. 2018, arXiv 1810.12890) for ``(B, C, H, W)`` feature maps.

    Contiguous squares are dropped independently per example and channel. ``p`` is the target fraction of
    dropped activations; overlapping blocks make the realized fraction a little lower than ``p`` at high rates
    (``1 - mean((1 - gamma) ** coverage)``). Kept activations are scaled by ``numel / kept`` over the batch.
    A ``block_size`` larger than the map is clipped to ``min(H, W)``. In eval mode the module is the identity.

    Args:
        p: target drop fraction in ``[0, 1)``. Default: 0.1
        block_size: side of the dropped squares. Default: 3

    Shape:
        - Input: ``(B, C, H, W)``
        - Output: same shape as input

    Examples::

        >>> m = DropBlock2d(p=0.1, block_size=3)
        >>> m(torch.randn(2, 4, 8, 8)).shape
        torch.Size([2, 4, 8, 8])
    """

    def __init__(self, p: float = 0.1, block_size: int = 3) -> None:
        super().__init__()
        self.p = check_rate(p, name="p")
        self.block_size = check_positive_int(block_size, name="block_size")

    def forward(self, x: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """Apply DropBlock in training mode; identity in eval mode."""
        return drop_block_2d(x, self.p, self.block_size, self.training, generator=generator)

    def extra_repr(self) -> str:
        """The settings shown by ``print(module)``."""
        return f"p={self.p:.3f}, block_size={self.block_size}"
