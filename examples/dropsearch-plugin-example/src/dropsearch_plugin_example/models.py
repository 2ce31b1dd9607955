"""``example-cnn``: a small ConvNet written without dropsearch in mind; ``find_sites`` lists its dropout layers."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from dropsearch.regularizers import Site, find_sites


class ExampleCNN(nn.Module):
    """Two conv blocks with ``nn.Dropout2d``, global pooling, ``nn.Dropout`` and a linear classifier.

    Args:
        in_shape: ``(C, H, W)`` of one image.
        num_classes: number of classes.
        width: channels of the conv blocks.

    Shape:
        - Input: (B, C, H, W)
        - Output: (B, num_classes)
    """

    def __init__(self, in_shape: Sequence[int], num_classes: int, width: int) -> None:
        super().__init__()
        self.in_shape = tuple(int(d) for d in in_shape)
        c = self.in_shape[0]
        self.features = nn.Sequential(
            nn.Conv2d(c, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(), nn.Dropout2d(0.1),
            nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(), nn.Dropout2d(0.1),
        )  # fmt: skip
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.drop = nn.Dropout(0.2)
        self.fc = nn.Linear(width, num_classes)
        self._sites: list[Site] | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Run the model on ``x`` (see the class ``Shape:``)."""
        return self.fc(self.drop(self.pool(self.features(x)).flatten(1)))

    def dropout_sites(self) -> list[Site]:
        """The dropout sites dropsearch searches over: the model's dropout layers, found on an example batch."""
        if self._sites is None:
            self._sites = find_sites(self, torch.zeros(2, *self.in_shape))
        return list(self._sites)


def build_example_cnn(*, in_shape: Sequence[int], num_classes: int, width: int = 16) -> ExampleCNN:
    """A small ConvNet with Dropout2d after each conv block and Dropout before the classifier (example plugin)."""
    if len(tuple(in_shape)) != 3:
        raise ValueError(f"example-cnn takes images (C, H, W), got in_shape {tuple(in_shape)!r}")
    if not isinstance(width, int) or width < 1:
        raise ValueError(f"example-cnn param width must be a positive int, got {width!r}")
    return ExampleCNN(in_shape, num_classes, width)


build_example_cnn.input_kinds = ("image",)  # type: ignore[attr-defined]
build_example_cnn.tiny_params = {"width": 4}  # type: ignore[attr-defined]
