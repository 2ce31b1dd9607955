"""``example-blobs``: seeded 8x8 images whose class sets a fixed mean image (generated, nothing downloaded)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch

from dropsearch.workers.datasets.base import DatasetBundle


def load_example_blobs(
    *,
    seed: int,
    allowed_roots: Sequence[str | os.PathLike[str]] = (),
    n: int = 600,
    classes: int = 3,
    noise: float = 0.8,
) -> DatasetBundle:
    """Noisy 1x8x8 images around one mean image per class; 80 % training, 20 % validation (example plugin)."""
    if n < 10 or classes < 2 or noise < 0:
        raise ValueError(f"example-blobs needs n >= 10, classes >= 2, noise >= 0; got {n}, {classes}, {noise}")
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(classes, 1, 8, 8, generator=g)
    y = torch.arange(n) % classes
    x = means[y] + noise * torch.randn(n, 1, 8, 8, generator=g)
    order = torch.randperm(n, generator=g)
    x, y = x[order], y[order]
    cut = int(0.8 * n)
    return DatasetBundle(
        x_train=x[:cut], y_train=y[:cut], x_val=x[cut:], y_val=y[cut:], in_shape=(1, 8, 8), num_classes=classes,
        info={"generator": "example-blobs", "seed": seed, "n": n, "noise": noise},
    )  # fmt: skip


load_example_blobs.input_kind = "image"  # type: ignore[attr-defined]
