"""Images from a local directory tree, ``root/<class>/*.png|jpg`` (or ``root/<domain>/<class>/*`` with domains).

The directory must lie inside the configured dataset roots; every image file is checked as well (a symlink
pointing out of the roots is refused). Images are decoded with Pillow and resized to ``size x size``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from dropsearch.regularizers._checks import check_positive_int
from dropsearch.workers.datasets.base import DatasetBundle, confine_path, require_dir, split_train_val
from dropsearch.workers.datasets.label_noise import check_label_noise, flip_labels

__all__ = ["IMAGE_SUFFIXES", "read_image", "load_image_folder"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


def read_image(path: Path, *, size: int, grayscale: bool) -> torch.Tensor:
    """One image file as a float tensor in [0, 1], resized bilinearly.

    Shape:
        - Output: (C, size, size) with C = 1 (grayscale) or 3
    """
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("L" if grayscale else "RGB").resize((size, size), Image.Resampling.BILINEAR)
        arr = np.asarray(im, dtype=np.float32) / 255.0  # (H, W) or (H, W, 3)
    t = torch.from_numpy(arr.copy())
    return t.unsqueeze(0) if grayscale else t.permute(2, 0, 1)  # (C, H, W)


def _class_files(root: Path, roots: Sequence[Path], *, name: str) -> dict[str, list[Path]]:
    out: dict[str, list[Path]] = {}
    for class_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        files = sorted(p for p in class_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        for f in files:
            real = f.resolve()
            if not any(real.is_relative_to(r) for r in roots):
                raise ValueError(f"{name}: image {str(f)!r} resolves to {str(real)!r}, outside the allowed roots")
        if files:
            out[class_dir.name] = files
    if not out:
        raise ValueError(f"{name}: no images ({', '.join(IMAGE_SUFFIXES)}) in class folders under {str(root)!r}")
    return out


def _load_tree(
    root: Path, roots: Sequence[Path], classes: list[str] | None, *, size: int, grayscale: bool, name: str
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    files = _class_files(root, roots, name=name)
    classes = classes if classes is not None else sorted(files)
    unknown = sorted(set(files) - set(classes))
    if unknown:
        raise ValueError(f"{name}: class folder(s) {unknown} under {str(root)!r} are not among {classes}")
    xs = [read_image(f, size=size, grayscale=grayscale) for c in classes for f in files.get(c, [])]
    ys = [i for i, c in enumerate(classes) for _ in files.get(c, [])]
    return torch.stack(xs), torch.tensor(ys, dtype=torch.int64), classes


def _domain_names(value: object, *, name: str) -> list[str]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise ValueError(f"{name} must be a list of sub-folder names, got {value!r}")
    names = [str(v) for v in value]
    for v in names:
        if not v or "/" in v or "\\" in v or v in (".", ".."):
            raise ValueError(f"{name}: {v!r} is not a plain sub-folder name")
    return names


def load_image_folder(
    *,
    seed: int,
    allowed_roots: Sequence[str | os.PathLike[str]] = (),
    path: str | None = None,
    size: int = 32,
    grayscale: bool = False,
    val_fraction: float = 0.2,
    train_domains: Sequence[str] | None = None,
    test_domains: Sequence[str] = (),
    label_noise: float = 0.0,
) -> DatasetBundle:
    """Images from a local folder tree ``path/<class>/*.png|jpg`` (never downloaded), resized to ``size``.

    Args:
        seed: seeds the stratified validation split.
        allowed_roots: the configured dataset roots; ``path`` must lie inside one.
        path: the folder (absolute, or relative to a root). Required.
        size: side of the resized images. Default: ``32``
        grayscale: one channel instead of RGB. Default: ``False``
        val_fraction: share of each (domain, class) held out for validation. Default: ``0.2``
        train_domains: with domains, the layout is ``path/<domain>/<class>/*``; these sub-folders are trained on.
            Default: ``None`` (no domains)
        test_domains: held-out domain sub-folders (with ``train_domains``). Default: none
        label_noise: fraction of training labels flipped to another class, in ``[0, 1)``. Default: ``0.0``
    """
    name = "image-folder param path"
    if path is None:
        raise ValueError(f"{name} is required")
    roots = [Path(r).resolve() for r in allowed_roots]
    root = require_dir(confine_path(path, allowed_roots, name=name), name=name)
    size = check_positive_int(size, name="image-folder param size")
    check_label_noise(label_noise, name="image-folder param label_noise")  # before reading any image
    g = torch.Generator().manual_seed(int(seed))
    if train_domains is None:
        if test_domains:
            raise ValueError("image-folder param test_domains needs train_domains")
        x, y, classes = _load_tree(root, roots, None, size=size, grayscale=grayscale, name=name)
        d, train, test, held_out = None, [], [], {}
    else:
        train = _domain_names(train_domains, name="image-folder param train_domains")
        test = _domain_names(test_domains, name="image-folder param test_domains")
        if not train or set(train) & set(test):
            raise ValueError(f"image-folder param test_domains {test} must be disjoint from train_domains {train}")
        dirs = {dom: require_dir(root / dom, name=f"image-folder domain {dom!r}") for dom in train + test}
        found = {c for dom in train + test for c in _class_files(dirs[dom], roots, name=name)}
        classes = sorted(found)
        loaded = [_load_tree(dirs[dom], roots, classes, size=size, grayscale=grayscale, name=name) for dom in train]
        x = torch.cat([t[0] for t in loaded])
        y = torch.cat([t[1] for t in loaded])
        d = torch.cat([torch.full((len(t[1]),), i, dtype=torch.int64) for i, t in enumerate(loaded)])
        held_out = {}
        for dom in test:
            xt, yt, _ = _load_tree(dirs[dom], roots, classes, size=size, grayscale=grayscale, name=name)
            held_out[dom] = (xt, yt)
    strata = y if d is None else d * len(classes) + y
    train_idx, val_idx = split_train_val(strata, generator=g, val_fraction=val_fraction, prefix="image-folder param")
    y_train, flipped = flip_labels(
        y[train_idx], label_noise, len(classes), seed=seed, name="image-folder param label_noise"
    )
    return DatasetBundle(
        x_train=x[train_idx],
        y_train=y_train,
        x_val=x[val_idx],
        y_val=y[val_idx],
        in_shape=tuple(x.shape[1:]),
        num_classes=len(classes),
        train_domains=tuple(train),
        d_train=None if d is None else d[train_idx],
        d_val=None if d is None else d[val_idx],
        test_domains=held_out,
        classes=tuple(classes),
        info={
            "source": str(root),
            "seed": int(seed),
            "size": size,
            "label_noise": float(label_noise),
            "flipped": len(flipped),
        },
    )


load_image_folder.input_kind = "image"  # type: ignore[attr-defined]
load_image_folder.uses_path = True  # type: ignore[attr-defined]
