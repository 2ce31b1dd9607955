"""Bernoulli (standard) dropout: zero each element independently with probability ``p``.

Srivastava et al. 2014 (JMLR 15, "Dropout: a simple way to prevent neural networks from overfitting"); the
classic baseline every search is compared with, equal to ``nn.Dropout(p)`` plus an optional ``torch.Generator``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dropsearch.regularizers._checks import check_rate
from dropsearch.regularizers._rng import uniform

__all__ = ["bernoulli_dropout", "BernoulliDropout"]


def bernoulli_dropout(
    x: torch.Tensor, p: float, training: bool = True, *, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Zero each element of ``x`` with probability ``p`` and scale the rest by ``1 / (1 - p)``.

    See :class:`BernoulliDropout` for details.

    Args:
        x: any tensor.
        p: drop probability in ``[0, 1)``.
        training: apply dropout; when ``False`` return ``x`` unchanged.
        generator: draws the mask when given (the fused ``F.dropout`` kernel is used otherwise).

    Returns:
        A tensor shaped like ``x`` (``x`` itself when not training or ``p == 0``).
    """
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"x must be a torch.Tensor, got {type(x).__name__}")
    p = check_rate(p, name="p")
    if not training or p == 0.0:
        return x
    if generator is None:
        return F.dropout(x, p, training=True)
    keep = uniform(tuple(x.shape), generator=generator, device=x.device) >= p
    return x * keep.to(x.dtype) * (1.0 / (1.0 - p))


class BernoulliDropout(nn.Module):
    """Element-wise dropout with inverted scaling (the ``nn.Dropout`` baseline).

    Each element is zeroed independently with probability ``p``; the kept ones are multiplied by
    ``1 / (1 - p)`` so the expected activation is unchanged. In eval mode the module is the identity.

    Args:
        p: probability of an element to be zeroed, in ``[0, 1)``. Default: 0.1

    Shape:
        - Input: any shape ``(*)``
        - Output: same shape as input

    Examples::

        >>> m = BernoulliDropout(p=0.2)
        >>> m(torch.randn(4, 16)).shape
        torch.Size([4, 16])
    """

    def __init__(self, p: float = 0.1) -> None:
        super().__init__()
        self.p = check_rate(p, name="p")

    def forward(self, x: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """Apply dropout in training mode; identity in eval mode."""
        return bernoulli_dropout(x, self.p, self.training, generator=generator)

    def extra_repr(self) -> str:
        """The settings shown by ``print(module)``."""
        return f"p={self.p:.3f}"
