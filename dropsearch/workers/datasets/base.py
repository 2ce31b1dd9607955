"""What a dataset loader returns (:class:`DatasetBundle`), seeded stratified splits, and path confinement.

Every dataset is small enough to live in memory as tensors, so a training worker can put the bundle once in the Ray
object store (or on the GPU). Paths from requests are confined to configured roots: :func:`confine_path` resolves
symlinks and ``..`` first, then refuses anything outside them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "TASKS",
    "DatasetBundle",
    "DatasetNotFoundError",
    "confine_path",
    "require_file",
    "require_dir",
    "stratified_split",
    "split_train_val",
    "check_fraction",
]

TASKS = ("classification", "language_model")


@dataclass
class DatasetBundle:
    """A loaded dataset: training and validation tensors, optional test / held-out-domain sets, and facts.

    Args:
        x_train: training inputs, float images (N, C, H, W) or token ids (N, T).
        y_train: training targets, class ids (N,) or next-token ids (N, T), int64.
        x_val: validation inputs (from the training domains).
        y_val: validation targets.
        in_shape: shape of one input, e.g. ``(1, 8, 8)`` or ``(block_size,)``.
        num_classes: classes, or the vocabulary size of a language model.
        task: ``"classification"`` or ``"language_model"``.
        train_domains: names of the training domains (empty when the dataset has no domains).
        d_train: domain index (into ``train_domains``) of each training example, or ``None``.
        d_val: domain index of each validation example, or ``None``.
        test_domains: held-out domains, ``{name: (x, y)}``, never seen in training or validation.
        x_test: an official test split of the training distribution (e.g. CIFAR-10 ``test_batch``), or ``None``.
        y_test: its targets.
        classes: class names, when known.
        vocab: the characters of a character-level corpus (id ``i`` is ``vocab[i]``).
        info: anything else worth recording (source path, seed, sizes, params).
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    in_shape: tuple[int, ...]
    num_classes: int
    task: str = "classification"
    train_domains: tuple[str, ...] = ()
    d_train: torch.Tensor | None = None
    d_val: torch.Tensor | None = None
    test_domains: dict[str, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)
    x_test: torch.Tensor | None = None
    y_test: torch.Tensor | None = None
    classes: tuple[str, ...] = ()
    vocab: str = ""
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {self.task!r}")
        self.in_shape = tuple(int(d) for d in self.in_shape)
        pairs = [("train", self.x_train, self.y_train), ("val", self.x_val, self.y_val)]
        pairs += [(f"test domain {k!r}", x, y) for k, (x, y) in self.test_domains.items()]
        if self.x_test is not None:
            pairs.append(("test", self.x_test, self.y_test))
        for split, x, y in pairs:
            if y is None or len(x) != len(y):
                raise ValueError(f"{split} inputs and targets differ in length")
            if tuple(x.shape[1:]) != self.in_shape:
                raise ValueError(f"{split} inputs have shape {tuple(x.shape[1:])}, expected {self.in_shape}")
        for name, d, y in (("d_train", self.d_train, self.y_train), ("d_val", self.d_val, self.y_val)):
            if d is not None and len(d) != len(y):
                raise ValueError(f"{name} has {len(d)} entries for {len(y)} examples")

    @property
    def input_kind(self) -> str:
        """``"sequence"`` for token ids, ``"signal"`` for float ``(C, L)`` inputs, ``"image"`` for other floats."""
        if self.task == "language_model" or not self.x_train.is_floating_point():
            return "sequence"
        return "signal" if len(self.in_shape) == 2 else "image"

    def heldout(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """All held-out domains concatenated (in ``test_domains`` order), or ``None`` when there are none."""
        if not self.test_domains:
            return None
        xs, ys = zip(*self.test_domains.values(), strict=True)
        return torch.cat(xs), torch.cat(ys)

    def to(self, device: torch.device | str) -> DatasetBundle:
        """A copy with every tensor on ``device``."""
        moved: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, torch.Tensor):
                moved[f.name] = value.to(device)
        moved["test_domains"] = {k: (x.to(device), y.to(device)) for k, (x, y) in self.test_domains.items()}
        return replace(self, **moved)


class DatasetNotFoundError(FileNotFoundError, ValueError):
    """A dataset directory or file does not exist; the message names the path.

    It is both a ``FileNotFoundError`` and a ``ValueError`` (a bad request), so either handler catches it.
    """


def confine_path(path: str | os.PathLike[str], allowed_roots: Sequence[str | os.PathLike[str]], *, name: str) -> Path:
    """Resolve ``path`` and check that it lies inside one of ``allowed_roots``.

    A relative path is taken relative to the roots (the first root where it exists, else the first root), never
    to the working directory. Symlinks and ``..`` are resolved before the check, in the path and in the roots.

    Args:
        path: the path from the request.
        allowed_roots: the configured dataset roots; none configured means every path is refused.
        name: what the path is called in messages (``"cifar10 param path"``).

    Returns:
        The resolved absolute path (it may not exist; see :func:`require_file` / :func:`require_dir`).

    Raises:
        ValueError: naming the path when it is empty, not a path, or outside every root.
    """
    if not isinstance(path, (str, os.PathLike)) or not str(path):
        raise ValueError(f"{name} must be a non-empty path, got {path!r}")
    roots = [Path(r).resolve() for r in allowed_roots]
    if not roots:
        raise ValueError(f"{name} {str(path)!r} is outside the allowed dataset roots (none are configured)")
    raw = Path(path)
    if raw.is_absolute():
        resolved = raw.resolve()
    else:
        candidates = [(root / raw).resolve() for root in roots]
        resolved = next((c for c in candidates if c.exists()), candidates[0])
    if not any(resolved == root or resolved.is_relative_to(root) for root in roots):
        allowed = ", ".join(str(r) for r in roots)
        raise ValueError(
            f"{name} {str(path)!r} (resolved to {str(resolved)!r}) is outside the allowed roots: {allowed}"
        )
    return resolved


def require_dir(path: Path, *, name: str) -> Path:
    """Return ``path`` if it is a directory, else raise :class:`DatasetNotFoundError` naming it."""
    if not path.is_dir():
        raise DatasetNotFoundError(f"{name}: directory {str(path)!r} does not exist")
    return path


def require_file(path: Path, *, name: str) -> Path:
    """Return ``path`` if it is a file, else raise :class:`DatasetNotFoundError` naming it."""
    if not path.is_file():
        raise DatasetNotFoundError(f"{name}: file {str(path)!r} does not exist")
    return path


def check_fraction(value: object, *, name: str, allow_one: bool = False) -> float:
    """``value`` as a float in ``(0, 1)`` (or ``(0, 1]``), else ValueError naming ``name``."""
    try:
        f = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not (0.0 < f < 1.0 or (allow_one and f == 1.0)):
        raise ValueError(f"{name} must be in (0, 1{']' if allow_one else ')'}, got {value!r}")
    return f


def _take_per_class(y: torch.Tensor, k: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Pick ``k[c]`` random examples of each class ``c``; returns (picked, rest), each in random order."""
    n = len(y)
    perm = torch.randperm(n, generator=generator)  # (N,) random order
    idx = perm[torch.argsort(y[perm], stable=True)]  # grouped by class, random within a class
    ys = y[idx]
    counts = torch.bincount(ys, minlength=len(k))
    starts = torch.cumsum(counts, 0) - counts  # first position of each class
    rank = torch.arange(n) - starts[ys]  # position within its class
    picked = rank < k[ys]
    a, b = idx[picked], idx[~picked]
    return a[torch.randperm(len(a), generator=generator)], b[torch.randperm(len(b), generator=generator)]


def stratified_split(
    y: torch.Tensor, *, fraction: float | None = None, n: int | None = None, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Split indices ``0..len(y)-1`` by class: ``picked`` holds a share of each class, ``rest`` the others.

    Args:
        y: the strata (class ids, or a combined class-and-domain key), int64 (N,).
        fraction: pick ``round(fraction * n_c)`` of each stratum ``c``.
        n: pick exactly ``n`` in all, shared in proportion to the strata sizes (largest remainders).
        generator: the random source; the same generator state gives the same split.

    Returns:
        ``(picked, rest)``: index tensors in random order.
    """
    y = y.long().cpu()
    counts = torch.bincount(y).double()
    if (fraction is None) == (n is None):
        raise ValueError("give exactly one of fraction and n")
    if fraction is not None:
        k = torch.round(counts * fraction).long()
    else:
        if not 0 <= int(n) <= len(y):  # type: ignore[arg-type]
            raise ValueError(f"cannot pick {n!r} of {len(y)} examples")
        quota = counts * int(n) / max(len(y), 1)  # type: ignore[arg-type]
        k = torch.floor(quota).long()
        extra = int(n) - int(k.sum())  # type: ignore[arg-type]
        order = torch.argsort(quota - k, descending=True, stable=True)
        k[order[:extra]] += 1
    return _take_per_class(y, k, generator)


def split_train_val(
    strata: torch.Tensor,
    *,
    generator: torch.Generator,
    val_fraction: float,
    n_train: int | None = None,
    train_fraction: float | None = None,
    prefix: str,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Stratified (train, val) index split, then an optional stratified subsample of the training part.

    Args:
        strata: class ids (or class-and-domain keys) (N,).
        generator: the random source.
        val_fraction: share of each stratum held out for validation, in (0, 1).
        n_train: keep exactly this many training examples. Default: all.
        train_fraction: keep this share of the training examples, in (0, 1]. Default: all.
        prefix: how the params are called in messages (``"digits param"``).

    Returns:
        ``(train_idx, val_idx)``.
    """
    val_fraction = check_fraction(val_fraction, name=f"{prefix} val_fraction")
    val_idx, train_idx = stratified_split(strata, fraction=val_fraction, generator=generator)
    if n_train is not None and train_fraction is not None:
        raise ValueError(f"give at most one of {prefix} n_train and {prefix} train_fraction")
    if train_fraction is not None:
        frac = check_fraction(train_fraction, name=f"{prefix} train_fraction", allow_one=True)
        n_train = max(1, round(frac * len(train_idx)))
    if n_train is not None:
        if isinstance(n_train, bool) or int(n_train) != n_train or not 1 <= n_train <= len(train_idx):
            raise ValueError(f"{prefix} n_train must be an integer in [1, {len(train_idx)}], got {n_train!r}")
        keep, _ = stratified_split(strata[train_idx], n=int(n_train), generator=generator)
        train_idx = train_idx[keep]
    if len(val_idx) == 0 or len(train_idx) == 0:
        raise ValueError(f"{prefix} val_fraction={val_fraction} leaves an empty training or validation set")
    return train_idx, val_idx


def split_with_label_noise(  # positional: the loaders pass their own params straight through, in this order
    strata: torch.Tensor,
    labels: torch.Tensor,
    generator: torch.Generator,
    seed: int,
    val_fraction: float,
    n_train: int | None,
    train_fraction: float | None,
    label_noise: float,
    num_classes: int,
    prefix: str,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`split_train_val`, then the training labels with ``label_noise`` of them flipped (``flip_labels``).

    Args:
        strata: what the split is stratified on (N,): the labels, or class-and-domain keys.
        labels: class ids (N,).
        generator, val_fraction, n_train, train_fraction, prefix: as for :func:`split_train_val`.
        seed: the dataset seed (the flips' own random stream derives from it).
        label_noise: fraction of training labels flipped, in ``[0, 1)``.
        num_classes: the number of classes.

    Returns:
        ``(train_idx, val_idx, y_train, flipped)``: the index splits, the (noisy) training labels and the sorted
        positions in ``y_train`` that were flipped.
    """
    from dropsearch.workers.datasets.label_noise import flip_labels

    train_idx, val_idx = split_train_val(
        strata,
        generator=generator,
        val_fraction=val_fraction,
        n_train=n_train,
        train_fraction=train_fraction,
        prefix=prefix,
    )
    y_train, flipped = flip_labels(labels[train_idx], label_noise, num_classes, seed=seed, name=f"{prefix} label_noise")
    return train_idx, val_idx, y_train, flipped
