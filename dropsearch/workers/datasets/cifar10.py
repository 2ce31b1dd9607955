"""CIFAR-10 (Krizhevsky 2009) from the standard python-pickle batches in a local directory; never downloaded.

The directory (e.g. ``cifar-10-batches-py``) holds ``data_batch_1`` .. ``data_batch_5`` and ``test_batch``, each a
pickled dict with ``b"data"`` (N, 3072) uint8 (1024 red, then green, then blue values, row-major 32x32) and
``b"labels"`` (N ints). The pickles are read with an unpickler that only admits numpy arrays and plain Python
containers, so a crafted file cannot run code. Full CIFAR-10 in float32 takes about 740 MB: use ``n_train`` for
proxies.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dropsearch.workers.datasets.base import (
    DatasetBundle,
    confine_path,
    require_dir,
    require_file,
    split_with_label_noise,
)
from dropsearch.workers.datasets.label_noise import check_label_noise

__all__ = ["CLASSES", "TRAIN_FILES", "TEST_FILE", "read_batch", "load_cifar10"]

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILE = "test_batch"

_ALLOWED_GLOBALS = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("_codecs", "encode"),  # protocol-2 pickles written by Python 3 store array bytes this way
}


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays and builtin containers only; any other global is refused."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a CIFAR-10 batch")


def read_batch(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """One CIFAR-10 batch file as images in [0, 1] and labels.

    Shape:
        - Output: x (N, 3, 32, 32) float32, y (N,) int64

    Raises:
        ValueError: naming the file when it is not a CIFAR-10 batch.
    """
    try:
        with open(path, "rb") as fh:
            batch = _ArrayUnpickler(fh, encoding="bytes").load()
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
    except (pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError, AttributeError) as err:
        raise ValueError(f"cifar10: {str(path)!r} is not a CIFAR-10 python batch ({err})") from None
    if data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data) or labels.ndim != 1:
        raise ValueError(f"cifar10: {str(path)!r} has data {data.shape} and {len(labels)} labels, expected (N, 3072)")
    if len(labels) and (labels.min() < 0 or labels.max() > 9):
        raise ValueError(f"cifar10: {str(path)!r} has labels outside 0..9")
    x = torch.from_numpy(data.reshape(-1, 3, 32, 32).astype(np.float32) / 255.0)  # (N, 3, 32, 32)
    return x, torch.from_numpy(labels)


def load_cifar10(
    *,
    seed: int,
    allowed_roots: Sequence[str | os.PathLike[str]] = (),
    path: str | None = None,
    val_fraction: float = 0.1,
    n_train: int | None = None,
    train_fraction: float | None = None,
    include_test: bool = True,
    label_noise: float = 0.0,
) -> DatasetBundle:
    """CIFAR-10 from the python batches in a local directory (never downloaded); seeded stratified validation.

    Args:
        seed: seeds the split.
        allowed_roots: the configured dataset roots; ``path`` must lie inside one.
        path: the directory holding ``data_batch_1`` .. ``data_batch_5`` and ``test_batch``. Required.
        val_fraction: share of each class of the training batches held out for validation. Default: ``0.1``
        n_train: keep exactly this many training examples (stratified), e.g. for a proxy. Default: all.
        train_fraction: keep this share of the training examples (stratified). Default: all.
        include_test: load ``test_batch`` into ``x_test`` / ``y_test``. Default: ``True``
        label_noise: fraction of training labels flipped to another class, in ``[0, 1)``. Default: ``0.0``
    """
    name = "cifar10 param path"
    if path is None:
        raise ValueError(f"{name} is required")
    root = require_dir(confine_path(path, allowed_roots, name=name), name=name)
    check_label_noise(label_noise, name="cifar10 param label_noise")  # before reading the batches
    files = [require_file(root / f, name="cifar10") for f in TRAIN_FILES]
    test_file = require_file(root / TEST_FILE, name="cifar10") if include_test else None
    parts = [read_batch(f) for f in files]
    x, y = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
    g = torch.Generator().manual_seed(int(seed))
    train_idx, val_idx, y_train, flipped = split_with_label_noise(
        y, y, g, seed, val_fraction, n_train, train_fraction, label_noise, 10, "cifar10 param"
    )
    x_test, y_test = read_batch(test_file) if test_file is not None else (None, None)
    return DatasetBundle(
        x_train=x[train_idx],
        y_train=y_train,
        x_val=x[val_idx],
        y_val=y[val_idx],
        in_shape=(3, 32, 32),
        num_classes=10,
        x_test=x_test,
        y_test=y_test,
        classes=CLASSES,
        info={"source": str(root), "seed": int(seed), "label_noise": float(label_noise), "flipped": len(flipped)},
    )


load_cifar10.input_kind = "image"  # type: ignore[attr-defined]
load_cifar10.uses_path = True  # type: ignore[attr-defined]
