"""The study's datasets: each evaluation set is cut in two, a *search* half and a *final* half.

Validating on the held-out domains while searching makes the held-out number of the winner optimistic (the search
picked it there). So the held-out-domain images (rotated digits) or the validation images (digits) are split,
stratified by domain and class, into two disjoint halves: the bundle's ``x_val`` is the search half (every child
reports it as ``val_accuracy``, the reward) and its only held-out "domain" ``final`` is the other half (reported
as ``heldout_accuracy``, never used to choose anything). The split uses a fixed ``data_seed``, so every child of
the study sees the same training set, search half and final half; training seeds vary only initialisation,
batch order and dropout noise.

The loaders are registered as ``quality-digits`` and ``quality-rotated`` in the driver process; Ray workers get
the loaded bundle from the driver (``run_search`` puts it in the object store), so they never look these names up.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch

from dropsearch.workers.datasets.base import DatasetBundle, stratified_split
from dropsearch.workers.datasets.digits import load_digits_bundle
from dropsearch.workers.datasets.registry import dataset_names, register_dataset
from dropsearch.workers.datasets.rotated import load_rotated_digits

__all__ = ["STUDY_DATASETS", "split_halves", "load_quality_digits", "load_quality_rotated", "register_study_datasets"]

#: study name -> registry name of its dataset.
STUDY_DATASETS = {"digits": "quality-digits", "rotated": "quality-rotated"}


def split_halves(
    x: torch.Tensor, y: torch.Tensor, strata: torch.Tensor, *, seed: int
) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """Split ``(x, y)`` into a search half and a final half, stratified by ``strata`` (class or domain-and-class).

    Shape:
        - x: (N, C, H, W), y: (N,), strata: (N,) int64
        - Output: ``((x_search, y_search), (x_final, y_final))`` with about N/2 examples each.
    """
    g = torch.Generator().manual_seed(int(seed) + 7919)
    search, final = stratified_split(strata, fraction=0.5, generator=g)
    return (x[search], y[search]), (x[final], y[final])


def _study_bundle(base: DatasetBundle, search: tuple, final: tuple, info: dict) -> DatasetBundle:
    """``base`` with ``x_val`` = the search half and one held-out domain ``final``."""
    return DatasetBundle(
        x_train=base.x_train,
        y_train=base.y_train,
        x_val=search[0],
        y_val=search[1],
        in_shape=base.in_shape,
        num_classes=base.num_classes,
        train_domains=base.train_domains,
        d_train=base.d_train,
        test_domains={"final": final},
        classes=base.classes,
        info={**base.info, **info},
    )


def load_quality_digits(
    *,
    seed: int,
    allowed_roots: Sequence[str | os.PathLike[str]] = (),
    size: int = 16,
    n_train: int | None = 300,
    val_fraction: float = 0.4,
    data_seed: int = 0,
) -> DatasetBundle:
    """Digits with a small training set; the validation split is cut into a search half and a final half.

    Args:
        seed: ignored (the split follows ``data_seed`` so that every child sees the same data).
        allowed_roots: unused.
        size: image side. Default: ``16``
        n_train: training examples (stratified). Default: ``300``
        val_fraction: share of each class for the two evaluation halves together. Default: ``0.4``
        data_seed: seeds the splits. Default: ``0``
    """
    base = load_digits_bundle(seed=data_seed, size=size, val_fraction=val_fraction, n_train=n_train)
    search, final = split_halves(base.x_val, base.y_val, base.y_val, seed=data_seed)
    return _study_bundle(base, search, final, {"study": "digits", "data_seed": data_seed})


def load_quality_rotated(
    *,
    seed: int,
    allowed_roots: Sequence[str | os.PathLike[str]] = (),
    size: int = 16,
    n_train: int | None = None,
    train_domains: Sequence[int] = (0, 15, 30, 45),
    test_domains: Sequence[int] = (60, 75),
    data_seed: int = 0,
) -> DatasetBundle:
    """Rotated digits: train on ``train_domains``; the held-out-domain images are cut into search and final halves.

    Args:
        seed: ignored (the split follows ``data_seed``).
        allowed_roots: unused.
        size: image side. Default: ``16``
        n_train: training examples (stratified by domain and class). Default: all (about 960).
        train_domains: training angles. Default: ``(0, 15, 30, 45)``
        test_domains: held-out angles. Default: ``(60, 75)``
        data_seed: seeds the shards and splits. Default: ``0``
    """
    base = load_rotated_digits(
        seed=data_seed, size=size, n_train=n_train, train_domains=train_domains, test_domains=test_domains
    )
    xs, ys, ds = [], [], []
    for i, (x, y) in enumerate(base.test_domains.values()):
        xs.append(x)
        ys.append(y)
        ds.append(torch.full_like(y, i))
    x, y, d = torch.cat(xs), torch.cat(ys), torch.cat(ds)
    search, final = split_halves(x, y, d * 10 + y, seed=data_seed)
    info = {"study": "rotated", "data_seed": data_seed, "test_domains": list(test_domains)}
    return _study_bundle(base, search, final, info)


load_quality_digits.input_kind = "image"  # type: ignore[attr-defined]
load_quality_rotated.input_kind = "image"  # type: ignore[attr-defined]


def register_study_datasets() -> None:
    """Register the study's loaders in this process (idempotent)."""
    for name, loader in (("quality-digits", load_quality_digits), ("quality-rotated", load_quality_rotated)):
        if name not in dataset_names():
            register_dataset(name, loader)
