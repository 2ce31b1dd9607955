"""SpatialDropout: drop whole channels of a feature map.

Tompson et al. 2015, "Efficient Object Localization Using Convolutional Networks" (arXiv 1411.4280); the same
operation as ``nn.Dropout2d`` / ``nn.Dropout1d``, for ``(B, C, H, W)`` and ``(B, C, L)`` inputs, with a generator.
"""

from __future__ import annotations

import torch
from torch import nn

from dropsearch.regularizers._checks import check_rank, check_rate
from dropsearch.regularizers._rng import uniform

__all__ = ["spatial_dropout", "SpatialDropout"]


def spatial_dropout(
    x: torch.Tensor, p: float, training: bool = True, *, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Zero whole channels of ``x`` with probability ``p`` and scale the rest by ``1 / (1 - p)``.

    See :class:`SpatialDropout` for details.

    Args:
        x: a ``(B, C, H, W)`` or ``(B, C, L)`` tensor.
        p: channel drop probability in ``[0, 1)``.
        training: apply dropout; when ``False`` return ``x`` unchanged.
        generator: draws the channel mask when given.

    Returns:
        A tensor shaped like ``x`` (``x`` itself when not training or ``p == 0``).
    """
    check_rank(x, (3, 4))
    p = check_rate(p, name="p")
    if not training or p == 0.0:
        return x
    mask_shape = tuple(x.shape[:2]) + (1,) * (x.ndim - 2)  # (B, C, 1[, 1]): one draw per channel
    keep = uniform(mask_shape, generator=generator, device=x.device) >= p
    return x * keep.to(x.dtype) * (1.0 / (1.0 - p))


class SpatialDropout(nn.Module):
    """Drop entire channels (feature maps) with inverted scaling.

    Neighbouring activations of a conv feature map are strongly correlated, so element-wise dropout barely
    removes information; dropping a whole channel does. Each ``(b, c)`` channel is zeroed with probability
    ``p`` and the kept ones are scaled by ``1 / (1 - p)``. In eval mode the module is the identity.

    Args:
        p: probability of a channel to be zeroed, in ``[0, 1)``. Default: 0.1

    Shape:
        - Input: ``(B, C, H, W)`` or ``(B, C, L)``
        - Output: same shape as input

    Examples::

        >>> m = SpatialDropout(p=0.2)
        >>> m(torch.randn(2, 8, 5, 5)).shape
        torch.Size([2, 8, 5, 5])
    """

    def __init__(self, p: float = 0.1) -> None:
        super().__init__()
        self.p = check_rate(p, name="p")

    def forward(self, x: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """Apply channel dropout in training mode; identity in eval mode."""
        return spatial_dropout(x, self.p, self.training, generator=generator)

    def extra_repr(self) -> str:
        """The settings shown by ``print(module)``."""
        return f"p={self.p:.3f}"
