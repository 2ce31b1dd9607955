"""Synthetic Gaussian-blob images: fast, deterministic, learnable; for tests and smoke runs.

Class ``c`` is a Gaussian bump centred at angle ``2 pi c / classes`` on a circle around the image centre, in every
channel, plus Gaussian noise. Optional domains add a constant brightness shift per domain, so held-out-domain code
paths can be tested in milliseconds.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import torch

from dropsearch.regularizers._checks import check_positive_int
from dropsearch.workers.datasets.base import DatasetBundle, split_train_val
from dropsearch.workers.datasets.label_noise import flip_labels

__all__ = ["blob_prototypes", "load_synthetic"]


def blob_prototypes(shape: Sequence[int], classes: int) -> torch.Tensor:
    """One noiseless image per class: a Gaussian bump (peak 1) placed on a circle around the centre.

    Shape:
        - Output: (classes, C, H, W)
    """
    C, H, W = shape
    angle = 2 * math.pi * torch.arange(classes, dtype=torch.float32) / classes  # (K,)
    radius = 0.3 * min(H, W)
    cy = (H - 1) / 2 + radius * torch.sin(angle)  # (K,)
    cx = (W - 1) / 2 + radius * torch.cos(angle)  # (K,)
    sigma = max(H, W) / 6
    rows = torch.arange(H, dtype=torch.float32).view(1, H, 1)
    cols = torch.arange(W, dtype=torch.float32).view(1, 1, W)
    d2 = (rows - cy.view(-1, 1, 1)) ** 2 + (cols - cx.view(-1, 1, 1)) ** 2  # (K, H, W)
    return torch.exp(-d2 / (2 * sigma**2)).unsqueeze(1).expand(classes, C, H, W).contiguous()


def load_synthetic(
    *,
    seed: int,
    allowed_roots: Sequence[str | os.PathLike[str]] = (),
    n: int = 256,
    shape: Sequence[int] = (1, 8, 8),
    classes: int = 4,
    noise: float = 0.5,
    val_fraction: float = 0.25,
    domains: int = 1,
    test_domains: int = 0,
    domain_shift: float = 0.5,
    label_noise: float = 0.0,
) -> DatasetBundle:
    """Gaussian-blob classification images of a given shape, deterministic by seed (fast, for tests).

    Args:
        seed: seeds the labels, the noise and the split.
        allowed_roots: unused (no files are read).
        n: examples per domain. Default: ``256``
        shape: ``(C, H, W)`` of one image. Default: ``(1, 8, 8)``
        classes: number of classes. Default: ``4``
        noise: standard deviation of the added Gaussian noise. Default: ``0.5``
        val_fraction: share of each (domain, class) held out for validation. Default: ``0.25``
        domains: training domains (names ``"0"``, ``"1"``, ...). Default: ``1``
        test_domains: held-out domains, named after the training ones. Default: ``0``
        domain_shift: brightness added per domain index. Default: ``0.5``
        label_noise: fraction of training labels flipped to another class, in ``[0, 1)``. Default: ``0.0``
    """
    if isinstance(shape, (str, bytes)) or not isinstance(shape, Sequence) or len(shape) != 3:
        raise ValueError(f"synthetic param shape must be (C, H, W), got {shape!r}")
    shape = tuple(check_positive_int(s, name="synthetic param shape") for s in shape)
    n = check_positive_int(n, name="synthetic param n")
    classes = check_positive_int(classes, name="synthetic param classes")
    domains = check_positive_int(domains, name="synthetic param domains")
    if isinstance(test_domains, bool) or int(test_domains) != test_domains or test_domains < 0:
        raise ValueError(f"synthetic param test_domains must be an integer >= 0, got {test_domains!r}")
    if not float(noise) >= 0:
        raise ValueError(f"synthetic param noise must be >= 0, got {noise!r}")
    g = torch.Generator().manual_seed(int(seed))
    total = domains + int(test_domains)
    d = torch.arange(total).repeat_interleave(n)  # (D * n,)
    y = torch.arange(n).remainder(classes)[torch.randperm(n, generator=g)].repeat(total)  # (D * n,) balanced
    x = blob_prototypes(shape, classes)[y] + float(noise) * torch.randn((len(y), *shape), generator=g)
    x = x + float(domain_shift) * d.view(-1, 1, 1, 1).float()  # (D * n, C, H, W)
    is_train = d < domains
    xs, ys, ds = x[is_train], y[is_train], d[is_train]
    train_idx, val_idx = split_train_val(
        ds * classes + ys, generator=g, val_fraction=val_fraction, prefix="synthetic param"
    )
    y_train, flipped = flip_labels(ys[train_idx], label_noise, classes, seed=seed, name="synthetic param label_noise")
    held_out = {str(k): (x[d == k], y[d == k]) for k in range(domains, total)}
    return DatasetBundle(
        x_train=xs[train_idx],
        y_train=y_train,
        x_val=xs[val_idx],
        y_val=ys[val_idx],
        in_shape=shape,
        num_classes=classes,
        train_domains=tuple(str(k) for k in range(domains)) if domains > 1 or held_out else (),
        d_train=ds[train_idx] if domains > 1 or held_out else None,
        d_val=ds[val_idx] if domains > 1 or held_out else None,
        test_domains=held_out,
        info={
            "source": "synthetic",
            "seed": int(seed),
            "noise": float(noise),
            "label_noise": float(label_noise),
            "flipped": len(flipped),
        },
    )


load_synthetic.input_kind = "image"  # type: ignore[attr-defined]
