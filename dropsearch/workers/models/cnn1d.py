"""A small 1-D CNN for signals such as MNIST-1D: Conv1d-ReLU blocks, a flatten, a linear classifier.

After the CNN of the MNIST-1D paper (Greydanus and Kobak, arXiv 2011.14439: three Conv1d layers of 25 channels,
stride 2, then a linear layer on the flattened maps), with a configurable width and depth.

Dropout sites: ``drop<i>`` after every block, of kind "sequence": the site sees the block's output as
``(B, L, C)`` (positions as tokens, channels as features; the model transposes around it), so a site module
drops positions and channels exactly as it would on a Transformer's tokens, and AutoDropout puts its sequence
pattern (runs of ``size`` dropped positions) there. The 2-D variants (spatial dropout, DropBlock, the ConvNet
pattern) need ``(B, C, H, W)`` maps and are never offered at these sites. ``head.drop`` (kind "features") sits on
the flattened maps right before the classifier.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from dropsearch.regularizers._checks import check_positive_int
from dropsearch.workers.models._common import ClassifierHead, SiteModel, add_site, check_shape

__all__ = ["CNN1d", "build_cnn1d"]


class CNN1d(SiteModel):
    """Conv1d-ReLU blocks, each followed by a "sequence" dropout site; blocks after the first use stride 2.

    Args:
        in_channels: channels of the input signals.
        length: points per input signal.
        num_classes: number of classes.
        widths: output channels of each block. Default: ``(32, 32, 32)``
        kernel_size: odd kernel size of every conv (padding keeps the length before striding). Default: ``5``

    Shape:
        - Input: (B, C, L), or (B, L) for one channel
        - Output: (B, num_classes)

    Examples::

        >>> model = CNN1d(1, 40, 10, widths=(8, 8))
        >>> model(torch.randn(2, 1, 40)).shape
        torch.Size([2, 10])
    """

    def __init__(
        self,
        in_channels: int,
        length: int,
        num_classes: int,
        widths: Sequence[int] = (32, 32, 32),
        *,
        kernel_size: int = 5,
    ) -> None:
        super().__init__()
        c_in, n = in_channels, length
        self.num_blocks = len(widths)
        for i, width in enumerate(widths, start=1):
            stride = 1 if i == 1 or n < 4 else 2
            block = nn.Sequential(
                nn.Conv1d(c_in, width, kernel_size=kernel_size, stride=stride, padding=kernel_size // 2),
                nn.ReLU(),
            )
            self.add_module(f"block{i}", block)
            add_site(self, f"drop{i}", "sequence", width)
            n = (n + 2 * (kernel_size // 2) - kernel_size) // stride + 1
            c_in = width
        self.out_length = n
        self.head = ClassifierHead(c_in * n, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Run the module on ``x`` (see the class ``Shape:``)."""
        if x.ndim == 2:
            x = x.unsqueeze(1)  # (B, L) -> (B, 1, L)
        for i in range(1, self.num_blocks + 1):
            x = getattr(self, f"block{i}")(x)  # (B, C_i, L_i)
            x = getattr(self, f"drop{i}")(x.transpose(1, 2)).transpose(1, 2)  # the site sees (B, L_i, C_i)
        return self.head(x.flatten(1))  # (B, C * L) -> (B, num_classes)


def build_cnn1d(
    *,
    in_shape: Sequence[int],
    num_classes: int,
    widths: Sequence[int] = (32, 32, 32),
    kernel_size: int = 5,
) -> CNN1d:
    """Small 1-D CNN for signals (C, L) such as MNIST-1D: Conv1d-ReLU blocks, flatten, linear classifier.

    Args:
        in_shape: ``(C, L)`` of one example (``(L,)`` is read as one channel).
        num_classes: number of classes.
        widths: channels of each block. Default: ``(32, 32, 32)``
        kernel_size: odd kernel size of every conv. Default: ``5``
    """
    shape = check_shape(in_shape, (1, 2), model="cnn1d")
    c, length = (1, shape[0]) if len(shape) == 1 else shape
    if isinstance(widths, (str, bytes)) or not isinstance(widths, Sequence) or not widths:
        raise ValueError(f"cnn1d param widths must be a non-empty list of positive ints, got {widths!r}")
    widths = [check_positive_int(v, name="cnn1d param widths") for v in widths]
    kernel_size = check_positive_int(kernel_size, name="cnn1d param kernel_size")
    if kernel_size % 2 == 0:
        raise ValueError(f"cnn1d param kernel_size must be odd, got {kernel_size!r}")
    return CNN1d(c, length, check_positive_int(num_classes, name="num_classes"), widths, kernel_size=kernel_size)


build_cnn1d.input_kinds = ("signal",)  # type: ignore[attr-defined]
build_cnn1d.tiny_params = {"widths": [8, 8]}  # type: ignore[attr-defined]
