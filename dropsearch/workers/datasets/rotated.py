"""Rotated digits: the bundled 8x8 digits rotated by 0, 15, 30, 45, 60 or 75 degrees, one domain per angle.

This is the small cousin of DomainBed's Rotated MNIST (Gulrajani and Lopez-Paz 2020, arXiv 2007.01434, after
Ghifary et al. 2015, arXiv 1508.07680): the images are shuffled by the seed and cut into one disjoint shard per
chosen domain, and each shard is rotated by its domain's angle. Training and validation come from the training
domains; the held-out domains go to ``DatasetBundle.test_domains`` for leave-domains-out rewards.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from dropsearch.workers.datasets.base import DatasetBundle, split_with_label_noise
from dropsearch.workers.datasets.digits import digits_tensors

__all__ = ["ANGLES", "rotate_images", "load_rotated_digits"]

#: The domains: rotation angles in degrees.
ANGLES: tuple[int, ...] = (0, 15, 30, 45, 60, 75)


def rotate_images(x: torch.Tensor, degrees: float) -> torch.Tensor:
    """Rotate images counter-clockwise (as displayed, row 0 on top) about their centre; bilinear, zero fill.

    One batched ``affine_grid`` + ``grid_sample`` on the input's device; deterministic.

    Args:
        x: images.
        degrees: the angle.

    Shape:
        - Input: (B, C, H, W)
        - Output: (B, C, H, W)
    """
    B, C, H, W = x.shape
    if degrees == 0:
        return x.clone()
    rad = math.radians(degrees)
    cos, sin = math.cos(rad), math.sin(rad)
    # output pixel -> input pixel, in normalized coordinates (x right, y down); H/W terms keep non-square images round
    theta = torch.tensor([[cos, -sin * H / W, 0.0], [sin * W / H, cos, 0.0]], dtype=x.dtype, device=x.device)
    grid = F.affine_grid(theta.expand(B, 2, 3), [B, C, H, W], align_corners=False)  # (B, H, W, 2)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _check_domains(value: object, *, name: str, allow_empty: bool) -> list[int]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise ValueError(f"rotated-digits param {name} must be a list of angles from {ANGLES}, got {value!r}")
    angles = []
    for a in value:
        if isinstance(a, bool) or not isinstance(a, (int, float)) or a not in ANGLES:
            raise ValueError(f"rotated-digits param {name}: {a!r} is not one of {ANGLES}")
        angles.append(int(a))
    if len(set(angles)) != len(angles):
        raise ValueError(f"rotated-digits param {name} repeats an angle: {list(value)!r}")
    if not angles and not allow_empty:
        raise ValueError(f"rotated-digits param {name} must name at least one angle")
    return angles


def load_rotated_digits(
    *,
    seed: int,
    allowed_roots: Sequence[str | os.PathLike[str]] = (),
    train_domains: Sequence[int] = (0, 15, 30, 45),
    test_domains: Sequence[int] = (60, 75),
    size: int = 8,
    val_fraction: float = 0.2,
    n_train: int | None = None,
    train_fraction: float | None = None,
    shard: bool = True,
    label_noise: float = 0.0,
) -> DatasetBundle:
    """Digits rotated by 0-75 degrees, one domain per angle; trains on some angles, holds others out.

    Args:
        seed: seeds the shards and the splits.
        allowed_roots: unused (no files are read).
        train_domains: angles to train (and validate) on. Default: ``(0, 15, 30, 45)``
        test_domains: held-out angles, disjoint from ``train_domains``. Default: ``(60, 75)``
        size: image side (bilinear upsampling before rotation). Default: ``8``
        val_fraction: share of each (domain, class) stratum held out for validation. Default: ``0.2``
        n_train: keep exactly this many training examples. Default: all.
        train_fraction: keep this share of the training examples. Default: all.
        shard: give each domain a disjoint shard of the images (DomainBed); ``False`` rotates every image into
            every domain. Default: ``True``
        label_noise: fraction of training labels flipped to another class, in ``[0, 1)``. Default: ``0.0``
    """
    train = _check_domains(train_domains, name="train_domains", allow_empty=False)
    test = _check_domains(test_domains, name="test_domains", allow_empty=True)
    overlap = sorted(set(train) & set(test))
    if overlap:
        raise ValueError(f"rotated-digits param test_domains overlaps train_domains at {overlap}")
    x, y = digits_tensors(size)
    g = torch.Generator().manual_seed(int(seed))
    angles = train + test
    if shard:
        shards = torch.tensor_split(torch.randperm(len(y), generator=g), len(angles))
    else:
        shards = tuple(torch.arange(len(y)) for _ in angles)
    domain_x = [rotate_images(x[idx], a) for idx, a in zip(shards, angles, strict=True)]
    domain_y = [y[idx] for idx in shards]
    xs, ys = torch.cat(domain_x[: len(train)]), torch.cat(domain_y[: len(train)])
    ds = torch.cat([torch.full((len(shards[i]),), i, dtype=torch.int64) for i in range(len(train))])
    train_idx, val_idx, y_train, flipped = split_with_label_noise(
        ds * 10 + ys, ys, g, seed, val_fraction, n_train, train_fraction, label_noise, 10, "rotated-digits param"
    )
    held_out = {str(a): (domain_x[len(train) + i], domain_y[len(train) + i]) for i, a in enumerate(test)}
    return DatasetBundle(
        x_train=xs[train_idx],
        y_train=y_train,
        x_val=xs[val_idx],
        y_val=ys[val_idx],
        in_shape=(1, x.shape[2], x.shape[3]),
        num_classes=10,
        train_domains=tuple(str(a) for a in train),
        d_train=ds[train_idx],
        d_val=ds[val_idx],
        test_domains=held_out,
        classes=tuple(str(c) for c in range(10)),
        info={
            "source": "sklearn.datasets.load_digits",
            "seed": int(seed),
            "angles": angles,
            "shard": bool(shard),
            "label_noise": float(label_noise),
            "flipped": len(flipped),
        },
    )


load_rotated_digits.input_kind = "image"  # type: ignore[attr-defined]
