"""CIFAR-style ResNet-18 and Wide ResNet WRN-d-k, width-sliceable for GradAug.

ResNet-18: He et al. 2015, arXiv 1512.03385; WRN: Zagoruyko and Komodakis 2016, arXiv 1605.07146. Built from
plain ``nn.Conv2d`` / ``nn.BatchNorm2d`` / ``nn.Linear`` with global average pooling, so a GradAug width-slicing
converter (arXiv 2006.07989) can slice every layer.

Dropout sites: ``layer<g>.<b>.drop`` (kind "conv") on each block's residual-branch output before the add, and
``head.drop`` (kind "features"). Each block also has a ``shortcut_drop`` placeholder (not a site of its own) where
``apply`` installs the same pattern when the AutoDropout ``residual`` token is true.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from dropsearch.regularizers._checks import check_positive_int
from dropsearch.workers.models._common import ClassifierHead, SiteModel, add_placeholder, add_site, check_shape

__all__ = ["BasicBlock", "PreActBlock", "ResNet", "build_resnet"]


def _projection(c_in: int, c_out: int, stride: int, *, bn: bool) -> nn.Module:
    if stride == 1 and c_in == c_out:
        return nn.Identity()
    conv = nn.Conv2d(c_in, c_out, kernel_size=1, stride=stride, bias=False)
    return nn.Sequential(conv, nn.BatchNorm2d(c_out)) if bn else conv


class BasicBlock(nn.Module):
    """ResNet basic block: relu(drop(bn(conv(relu(bn(conv(x)))))) + shortcut_drop(shortcut(x))).

    Shape:
        - Input: (B, C_in, H, W)
        - Output: (B, C_out, H / stride, W / stride)
    """

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(c_out, c_out, kernel_size=3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        add_site(self, "drop", "conv", c_out)
        self.shortcut = _projection(c_in, c_out, stride, bn=True)
        add_placeholder(self, "shortcut_drop")
        self.relu2 = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Run the module on ``x`` (see the class ``Shape:``)."""
        branch = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))  # (B, C_out, H', W')
        return self.relu2(self.drop(branch) + self.shortcut_drop(self.shortcut(x)))


class PreActBlock(nn.Module):
    """Wide-ResNet pre-activation block: drop(conv(relu(bn(conv(relu(bn(x))))))) + shortcut_drop(shortcut).

    The projection shortcut (when the shape changes) reads the pre-activated input, as in the WRN reference code.

    Shape:
        - Input: (B, C_in, H, W)
        - Output: (B, C_out, H / stride, W / stride)
    """

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in)
        self.relu1 = nn.ReLU()
        self.conv1 = nn.Conv2d(c_in, c_out, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.relu2 = nn.ReLU()
        self.conv2 = nn.Conv2d(c_out, c_out, kernel_size=3, padding=1, bias=False)
        add_site(self, "drop", "conv", c_out)
        self.shortcut = _projection(c_in, c_out, stride, bn=False)
        add_placeholder(self, "shortcut_drop")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Run the module on ``x`` (see the class ``Shape:``)."""
        o = self.relu1(self.bn1(x))  # (B, C_in, H, W)
        branch = self.conv2(self.relu2(self.bn2(self.conv1(o))))  # (B, C_out, H', W')
        skip = x if isinstance(self.shortcut, nn.Identity) else self.shortcut(o)
        return self.drop(branch) + self.shortcut_drop(skip)


class ResNet(SiteModel):
    """A stem conv, groups of residual blocks (``layer1``, ``layer2``, ...), global average pooling, a classifier.

    Args:
        in_channels: channels of the input images.
        num_classes: number of classes.
        widths: output channels of each group.
        blocks: blocks per group.
        preact: pre-activation (WRN) blocks instead of post-activation (ResNet) blocks.
        stem_width: output channels of the stem conv.

    Shape:
        - Input: (B, C, H, W)
        - Output: (B, num_classes)

    Examples::

        >>> model = build_resnet(in_shape=(3, 16, 16), num_classes=10, width=4)
        >>> model(torch.randn(2, 3, 16, 16)).shape
        torch.Size([2, 10])
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        widths: Sequence[int],
        blocks: int,
        *,
        preact: bool,
        stem_width: int,
    ) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, stem_width, kernel_size=3, padding=1, bias=False))
        if not preact:
            self.stem.append(nn.BatchNorm2d(stem_width))
            self.stem.append(nn.ReLU())
        block = PreActBlock if preact else BasicBlock
        c_in = stem_width
        for g, width in enumerate(widths, start=1):
            stride = 1 if g == 1 else 2
            group = [block(c_in if b == 0 else width, width, stride if b == 0 else 1) for b in range(blocks)]
            self.add_module(f"layer{g}", nn.Sequential(*group))
            c_in = width
        self.num_groups = len(widths)
        self.final = nn.Sequential(nn.BatchNorm2d(c_in), nn.ReLU()) if preact else nn.Identity()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = ClassifierHead(c_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Run the module on ``x`` (see the class ``Shape:``)."""
        x = self.stem(x)  # (B, stem_width, H, W)
        for g in range(1, self.num_groups + 1):
            x = getattr(self, f"layer{g}")(x)  # (B, C_g, H_g, W_g)
        x = self.pool(self.final(x)).flatten(1)  # (B, C_last)
        return self.head(x)  # (B, num_classes)


def build_resnet(
    *,
    in_shape: Sequence[int],
    num_classes: int,
    depth: int = 18,
    widen: int = 1,
    width: int = 16,
) -> ResNet:
    """CIFAR-style ResNet-18 (depth=18) or Wide ResNet WRN-depth-widen (depth = 6n + 4, e.g. 28).

    Args:
        in_shape: ``(C, H, W)`` of one example.
        num_classes: number of classes.
        depth: 18 for ResNet-18 (4 groups of 2 basic blocks); otherwise a WRN depth ``6n + 4``. Default: ``18``
        widen: WRN widening factor k (for ResNet-18 it multiplies every group width). Default: ``1``
        width: base channels; the group widths are ``width * widen * (1, 2, 4, 8)`` for ResNet-18 (the paper's
            ResNet-18 uses 64) and ``width * widen * (1, 2, 4)`` for WRN (16 in the paper). Default: ``16``
    """
    c, _, _ = check_shape(in_shape, (3,), model="resnet")
    depth = check_positive_int(depth, name="resnet param depth")
    widen = check_positive_int(widen, name="resnet param widen")
    width = check_positive_int(width, name="resnet param width")
    num_classes = check_positive_int(num_classes, name="num_classes")
    if depth == 18:
        widths = [width * widen * m for m in (1, 2, 4, 8)]
        return ResNet(c, num_classes, widths, 2, preact=False, stem_width=width)
    if depth < 10 or (depth - 4) % 6:
        raise ValueError(f"resnet param depth must be 18 or a WRN depth 6n+4 >= 10 (e.g. 28), got {depth!r}")
    widths = [width * widen * m for m in (1, 2, 4)]
    return ResNet(c, num_classes, widths, (depth - 4) // 6, preact=True, stem_width=width)


build_resnet.input_kinds = ("image",)  # type: ignore[attr-defined]
build_resnet.tiny_params = {"width": 4}  # type: ignore[attr-defined]
