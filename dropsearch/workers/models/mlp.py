"""A multilayer perceptron: flatten, Linear-ReLU hidden layers, a linear classifier.

Dropout sites: ``layers.drop<i>`` (kind "linear") after every hidden layer but the last, and ``head.drop``
(kind "features") on the last hidden layer's output, right before the classifier.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn

from dropsearch.regularizers._checks import check_positive_int
from dropsearch.workers.models._common import ClassifierHead, SiteModel, add_site, check_shape

__all__ = ["MLP", "build_mlp"]


class MLP(SiteModel):
    """Linear-ReLU layers with a "linear" dropout site after each hidden layer but the last.

    Args:
        in_features: size of one flattened example.
        num_classes: number of classes.
        hidden: widths of the hidden layers (at least one). Default: ``(256, 256)``

    Shape:
        - Input: (B, *) with ``prod(*) == in_features``
        - Output: (B, num_classes)

    Examples::

        >>> model = MLP(64, 10, hidden=(16, 16))
        >>> model(torch.randn(2, 1, 8, 8)).shape
        torch.Size([2, 10])
    """

    def __init__(self, in_features: int, num_classes: int, hidden: Sequence[int] = (256, 256)) -> None:
        super().__init__()
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        f_in = in_features
        for i, f_out in enumerate(hidden, start=1):
            layers[f"fc{i}"] = nn.Linear(f_in, f_out)
            layers[f"relu{i}"] = nn.ReLU()
            if i < len(hidden):
                layers[f"drop{i}"] = nn.Identity()
            f_in = f_out
        self.layers = nn.Sequential(layers)
        for i, f_out in enumerate(hidden[:-1], start=1):
            add_site(self.layers, f"drop{i}", "linear", f_out)
        self.head = ClassifierHead(f_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Run the module on ``x`` (see the class ``Shape:``)."""
        x = self.layers(x.flatten(1))  # (B, F) -> (B, hidden[-1])
        return self.head(x)  # (B, num_classes)


def build_mlp(
    *,
    in_shape: Sequence[int],
    num_classes: int,
    hidden: Sequence[int] = (256, 256),
) -> MLP:
    """Multilayer perceptron on flattened inputs (Linear-ReLU hidden layers, linear classifier).

    Args:
        in_shape: shape of one example (any rank; it is flattened).
        num_classes: number of classes.
        hidden: widths of the hidden layers. Default: ``(256, 256)``
    """
    shape = check_shape(in_shape, (1, 2, 3), model="mlp")
    if isinstance(hidden, (str, bytes)) or not isinstance(hidden, Sequence) or not hidden:
        raise ValueError(f"mlp param hidden must be a non-empty list of positive ints, got {hidden!r}")
    hidden = [check_positive_int(v, name="mlp param hidden") for v in hidden]
    return MLP(math.prod(shape), check_positive_int(num_classes, name="num_classes"), hidden)


build_mlp.input_kinds = ("image", "signal")  # type: ignore[attr-defined]
build_mlp.tiny_params = {"hidden": [16, 16]}  # type: ignore[attr-defined]
