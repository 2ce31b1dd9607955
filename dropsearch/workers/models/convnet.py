"""A small ConvNet for 8x8 to 32x32 images: conv-BN-ReLU blocks, global average pooling, a linear classifier.

There is no flatten of spatial maps, so every layer can be width-sliced (GradAug, arXiv 2006.07989). Dropout
sites: ``features.drop<i>`` (kind "conv") after each block, ``head.drop`` (kind "features") before the classifier.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn

from dropsearch.regularizers._checks import check_positive_int
from dropsearch.workers.models._common import ClassifierHead, SiteModel, add_site, check_shape

__all__ = ["ConvNet", "build_convnet"]


class ConvNet(SiteModel):
    """Conv-BN-ReLU blocks, each followed by a conv dropout site; 2x2 max-pooling between blocks.

    A block is followed by a max-pool (except the last one) while the map is at least 4 pixels on its short side.

    Args:
        in_channels: channels of the input images.
        num_classes: number of classes.
        widths: output channels of each block. Default: ``(32, 64)``

    Shape:
        - Input: (B, C, H, W)
        - Output: (B, num_classes)

    Examples::

        >>> model = ConvNet(1, 10, widths=(8, 16))
        >>> model(torch.randn(2, 1, 8, 8)).shape
        torch.Size([2, 10])
    """

    def __init__(self, in_channels: int, num_classes: int, widths: Sequence[int] = (32, 64), *, size: int = 8) -> None:
        super().__init__()
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        c_in, side = in_channels, size
        for i, width in enumerate(widths, start=1):
            layers[f"conv{i}"] = nn.Conv2d(c_in, width, kernel_size=3, padding=1, bias=False)
            layers[f"bn{i}"] = nn.BatchNorm2d(width)
            layers[f"relu{i}"] = nn.ReLU()
            layers[f"drop{i}"] = nn.Identity()
            if i < len(widths) and side >= 4:
                layers[f"pool{i}"] = nn.MaxPool2d(2)
                side //= 2
            c_in = width
        self.features = nn.Sequential(layers)
        for i, width in enumerate(widths, start=1):
            add_site(self.features, f"drop{i}", "conv", width)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = ClassifierHead(c_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Run the module on ``x`` (see the class ``Shape:``)."""
        x = self.features(x)  # (B, C', H', W')
        x = self.pool(x).flatten(1)  # (B, C')
        return self.head(x)  # (B, num_classes)


def build_convnet(
    *,
    in_shape: Sequence[int],
    num_classes: int,
    widths: Sequence[int] = (32, 64),
    width_mult: float = 1.0,
) -> ConvNet:
    """Small CNN for 8x8 to 32x32 images (conv-BN-ReLU blocks, global pooling, linear classifier).

    Args:
        in_shape: ``(C, H, W)`` of one example.
        num_classes: number of classes.
        widths: channels of each block. Default: ``(32, 64)``
        width_mult: multiplies every width (rounded, at least 1). Default: ``1.0``
    """
    c, h, w = check_shape(in_shape, (3,), model="convnet")
    if isinstance(widths, (str, bytes)) or not isinstance(widths, Sequence) or not widths:
        raise ValueError(f"convnet param widths must be a non-empty list of positive ints, got {widths!r}")
    widths = [check_positive_int(v, name="convnet param widths") for v in widths]
    if not float(width_mult) > 0:
        raise ValueError(f"convnet param width_mult must be > 0, got {width_mult!r}")
    scaled = [max(1, round(v * float(width_mult))) for v in widths]
    return ConvNet(c, check_positive_int(num_classes, name="num_classes"), scaled, size=min(h, w))


build_convnet.input_kinds = ("image",)  # type: ignore[attr-defined]
build_convnet.tiny_params = {"widths": [8, 16]}  # type: ignore[attr-defined]
