"""MNIST-1D (Greydanus and Kobak, arXiv 2011.14439), generated offline by the ``mnist1d`` package; never downloaded.

Ten 1-D templates of 12 points (one per digit) are padded, dilated, scaled, translated, sheared, made noisy and
resampled to 40 points, with the package's default arguments (5000 examples, seed 42): the first 4000 are the
training examples, the last 1000 the test examples. The generation is deterministic and takes about 1.4 s (plus
about 2 s to import the package, which imports matplotlib) on one CPU core, so the arrays are generated once per
process and cached. Only ``mnist1d.data.make_dataset`` is called (``get_dataset`` would download a pickle); the
package seeds Python's and NumPy's global random generators, which are restored afterwards.

A linear model reaches about 32 % test accuracy, an MLP about 68 % and a small CNN about 94 % (the paper's numbers):
the task separates models and regularizers where the image digits are saturated. Choices are made on a validation
split of the 4000 training examples; the 1000 test examples are ``x_test`` / ``y_test``, for final numbers only.
"""

from __future__ import annotations

import os
import random
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import torch

from dropsearch.workers.datasets.base import DatasetBundle, split_with_label_noise

__all__ = ["LENGTH", "mnist1d_arrays", "load_mnist1d"]

#: Points per signal (the package's ``final_seq_length``).
LENGTH = 40


@lru_cache(maxsize=1)
def _generated() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    try:
        from mnist1d.data import get_dataset_args, make_dataset  # generation only: no download
    except ImportError as err:
        raise ImportError(
            "the mnist1d dataset needs the mnist1d package: pip install 'dropsearch[service]' (or mnist1d)"
        ) from err

    py_state, np_state = random.getstate(), np.random.get_state()
    try:
        data = make_dataset(get_dataset_args())
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
    return data["x"], data["y"], data["x_test"], data["y_test"]


def mnist1d_arrays() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The generated dataset as fresh tensors ``(x, y, x_test, y_test)``.

    Shape:
        - x: (4000, 1, 40) float32; y: (4000,) int64; x_test: (1000, 1, 40) float32; y_test: (1000,) int64
    """
    x, y, x_test, y_test = _generated()

    def signals(a: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(a, dtype=torch.float32).view(-1, 1, LENGTH)  # (N, 1, L): one channel

    def labels(a: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(a, dtype=torch.int64).clone()

    return signals(x), labels(y), signals(x_test), labels(y_test)


def load_mnist1d(
    *,
    seed: int,
    allowed_roots: Sequence[str | os.PathLike[str]] = (),
    val_fraction: float = 0.2,
    n_train: int | None = None,
    train_fraction: float | None = None,
    label_noise: float = 0.0,
    include_test: bool = True,
) -> DatasetBundle:
    """MNIST-1D: 1-D signals of 40 points in 10 classes, generated offline (4000 train / 1000 test).

    Args:
        seed: seeds the stratified validation split and the label noise (the signals themselves are fixed).
        allowed_roots: unused (no files are read).
        val_fraction: share of each class of the 4000 training examples held out for validation. Default: ``0.2``
            (3200 / 800)
        n_train: keep exactly this many training examples (stratified). Default: all.
        train_fraction: keep this share of the training examples (stratified). Default: all.
        label_noise: fraction of training labels flipped to another class, in ``[0, 1)``. Default: ``0.0``
        include_test: put the 1000 test examples in ``x_test`` / ``y_test``. Default: ``True``
    """
    x, y, x_test, y_test = mnist1d_arrays()
    g = torch.Generator().manual_seed(int(seed))
    train_idx, val_idx, y_train, flipped = split_with_label_noise(
        y, y, g, seed, val_fraction, n_train, train_fraction, label_noise, 10, "mnist1d param"
    )
    return DatasetBundle(
        x_train=x[train_idx],
        y_train=y_train,
        x_val=x[val_idx],
        y_val=y[val_idx],
        in_shape=(1, LENGTH),
        num_classes=10,
        x_test=x_test if include_test else None,
        y_test=y_test if include_test else None,
        classes=tuple(str(c) for c in range(10)),
        info={
            "source": "mnist1d.data.make_dataset (default arguments)",
            "seed": int(seed),
            "label_noise": float(label_noise),
            "flipped": len(flipped),
        },
    )


load_mnist1d.input_kind = "signal"  # type: ignore[attr-defined]
