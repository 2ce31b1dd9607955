"""scikit-learn's bundled 8x8 handwritten digits (1797 images, 10 classes; no download ever happens)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import lru_cache

import torch
import torch.nn.functional as F

from dropsearch.regularizers._checks import check_positive_int
from dropsearch.workers.datasets.base import DatasetBundle, split_with_label_noise

__all__ = ["digits_tensors", "load_digits_bundle"]


@lru_cache(maxsize=1)
def _raw_digits() -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits  # reads the CSV shipped inside scikit-learn

    x, y = load_digits(return_X_y=True)
    images = torch.as_tensor(x, dtype=torch.float32).view(-1, 1, 8, 8) / 16.0  # (N, 1, 8, 8) in [0, 1]
    return images, torch.as_tensor(y, dtype=torch.int64)


def digits_tensors(size: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """All 1797 digits as ``(x, y)``: x (N, 1, size, size) in [0, 1], bilinearly resized when ``size != 8``."""
    size = check_positive_int(size, name="digits param size")
    x, y = _raw_digits()
    if size != 8:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False).clamp_(0.0, 1.0)
    return x.clone(), y.clone()


def load_digits_bundle(
    *,
    seed: int,
    allowed_roots: Sequence[str | os.PathLike[str]] = (),
    size: int = 8,
    val_fraction: float = 0.2,
    n_train: int | None = None,
    train_fraction: float | None = None,
    label_noise: float = 0.0,
) -> DatasetBundle:
    """scikit-learn's bundled 8x8 digits, scaled to [0, 1], with a seeded stratified validation split.

    Args:
        seed: seeds the split (same seed, same split).
        allowed_roots: unused (no files are read).
        size: image side; other than 8 upsamples bilinearly (e.g. 16). Default: ``8``
        val_fraction: share of each class held out for validation. Default: ``0.2``
        n_train: keep exactly this many training examples (stratified). Default: all.
        train_fraction: keep this share of the training examples (stratified). Default: all.
        label_noise: fraction of training labels flipped to another class, in ``[0, 1)``. Default: ``0.0``
    """
    x, y = digits_tensors(size)
    g = torch.Generator().manual_seed(int(seed))
    train_idx, val_idx, y_train, flipped = split_with_label_noise(
        y, y, g, seed, val_fraction, n_train, train_fraction, label_noise, 10, "digits param"
    )
    return DatasetBundle(
        x_train=x[train_idx],
        y_train=y_train,
        x_val=x[val_idx],
        y_val=y[val_idx],
        in_shape=(1, x.shape[2], x.shape[3]),
        num_classes=10,
        classes=tuple(str(c) for c in range(10)),
        info={
            "source": "sklearn.datasets.load_digits",
            "seed": int(seed),
            "size": x.shape[2],
            "label_noise": float(label_noise),
            "flipped": len(flipped),
        },
    )


load_digits_bundle.input_kind = "image"  # type: ignore[attr-defined]
