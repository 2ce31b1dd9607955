"""Per-layer top-p GSNR masks and the context that zeroes masked weights for one step (arXiv 2310.07361)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

__all__ = ["drop_count", "gsnr_masks", "masked_weights"]


def drop_count(numel: int, p: float) -> int:
    """How many of a layer's ``numel`` weights a drop fraction ``p`` zeroes: ``floor(p * numel + 0.5)``."""
    return min(numel, int(p * numel + 0.5))


def gsnr_masks(gsnr: dict[str, torch.Tensor], p: float) -> dict[str, torch.Tensor]:
    """Boolean masks (``True`` = dropped) of the top-``p`` fraction of each tensor by GSNR.

    Exactly :func:`drop_count` ``(numel, p)`` entries are dropped per tensor (ties broken by ``torch.topk``).
    Tensors with nothing to drop are left out of the result.

    Args:
        gsnr: name -> GSNR tensor.
        p: fraction of each tensor to drop, in ``[0, 1]``.

    Returns:
        name -> boolean mask shaped like the GSNR tensor.
    """
    masks = {}
    for name, score in gsnr.items():
        k = drop_count(score.numel(), p)
        if k == 0:
            continue
        flat = torch.zeros(score.numel(), dtype=torch.bool, device=score.device)
        flat[score.reshape(-1).topk(k).indices] = True
        masks[name] = flat.view_as(score)
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
    saved = {}
    with torch.no_grad():
        for name, mask in masks.items():
            saved[name] = named[name][mask].clone()
            named[name][mask] = 0
    try:
        yield saved
    finally:
        with torch.no_grad():
            for name, mask in masks.items():
                param = named[name]
                param[mask] = saved[name]
                if param.grad is not None:
                    param.grad[mask] = 0
