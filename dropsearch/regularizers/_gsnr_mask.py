"""Per-layer top-p GSNR masks and the context that zeroes masked weights for one step (arXiv 2310.07361)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

__all__ = ["drop_count", "gsnr_masks", "masked_weights", "top_k_mask"]


def drop_count(numel: int, p: float) -> int:
    """How many of a layer's ``numel`` weights a drop fraction ``p`` zeroes: ``floor(p * numel + 0.5)``."""
    return min(numel, int(p * numel + 0.5))


#: Below this many entries a layer's mask is a plain ``topk``; above, the sampled-bracket selection.
_SMALL = 1 << 16
#: Size of the strided sample that brackets the threshold.
_SAMPLE = 1 << 14


def top_k_mask(score: torch.Tensor, k: int) -> torch.Tensor:
    """Boolean mask of exactly ``k`` largest entries of ``score`` (ties at the threshold broken by ``topk``).

    Exact, and O(numel) for large tensors instead of ``topk``'s partial sort: a strided sample of
    ``_SAMPLE`` entries gives values ``lo <= hi`` that bracket the ``k``-th largest entry with a margin of
    4 binomial standard deviations (plus 16); every entry above ``hi`` is kept, and ``topk`` picks the rest
    among the few entries in ``[lo, hi]``. If the bracket misses (a sample unlike the tensor), it falls back to
    ``topk`` over the whole tensor, so the result never depends on the sample.

    Args:
        score: any tensor (it is flattened).
        k: how many entries to mark, in ``[0, numel]``.

    Returns:
        A boolean tensor shaped like ``score``.
    """
    flat = score.reshape(-1)
    n = flat.numel()
    if not 0 <= k <= n:
        raise ValueError(f"k must be in [0, {n}], got {k!r}")
    if n > _SMALL and 0 < k < n:
        step = n // _SAMPLE
        sample = flat[::step].sort(descending=True).values  # (L,)
        size = sample.numel()
        q = k / n
        margin = int(4.0 * (size * q * (1.0 - q)) ** 0.5) + 16
        rank = int(q * size)
        i_hi, i_lo = rank - margin, rank + margin
        above = flat > sample[i_hi] if i_hi >= 0 else torch.zeros_like(flat, dtype=torch.bool)
        inside = ~above if i_lo >= size else (flat >= sample[i_lo]) & ~above
        n_above = int(above.sum())
        idx = inside.nonzero().squeeze(1)
        if n_above <= k <= n_above + idx.numel():
            above[idx[flat[idx].topk(k - n_above).indices]] = True
            return above.view_as(score)
    mask = torch.zeros(n, dtype=torch.bool, device=score.device)
    mask[flat.topk(k).indices] = True
    return mask.view_as(score)


def gsnr_masks(gsnr: dict[str, torch.Tensor], p: float) -> dict[str, torch.Tensor]:
    """Boolean masks (``True`` = dropped) of the top-``p`` fraction of each tensor by GSNR.

    Exactly :func:`drop_count` ``(numel, p)`` entries are dropped per tensor (:func:`top_k_mask`; ties at the
    threshold broken by ``torch.topk``). Tensors with nothing to drop are left out of the result.

    Args:
        gsnr: name -> GSNR tensor.
        p: fraction of each tensor to drop, in ``[0, 1]``.

    Returns:
        name -> boolean mask shaped like the GSNR tensor.
    """
    masks = {}
    for name, score in gsnr.items():
        k = drop_count(score.numel(), p)
        if k > 0:
            masks[name] = top_k_mask(score, k)
    return masks


@contextmanager
def masked_weights(model: nn.Module, masks: dict[str, torch.Tensor]) -> Iterator[dict[str, torch.Tensor]]:
    """Zero the masked weights inside the block; on exit zero their gradients and restore their values exactly.

    Args:
        model: the network whose parameters the masks name.
        masks: parameter name -> boolean mask (``True`` = dropped).

    Yields:
        name -> the saved original values of the masked entries (1-D, in mask order).
    """
    named = dict(model.named_parameters())
    saved, index = {}, {}
    with torch.no_grad():
        for name, mask in masks.items():
            param = named[name]
            if param.is_contiguous():  # one nonzero() per mask; the flat view writes through to the parameter
                index[name] = mask.reshape(-1).nonzero().squeeze(1)
                saved[name] = param.view(-1).index_select(0, index[name])
                param.view(-1).index_fill_(0, index[name], 0)
            else:
                saved[name] = param[mask].clone()
                param[mask] = 0
    try:
        yield saved
    finally:
        with torch.no_grad():
            for name, mask in masks.items():
                param = named[name]
                if name in index:
                    param.view(-1).index_copy_(0, index[name], saved[name])
                else:
                    param[mask] = saved[name]
                if param.grad is not None:
                    param.grad.masked_fill_(mask, 0)
