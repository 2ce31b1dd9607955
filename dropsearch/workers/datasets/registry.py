"""The dataset registry: built-in datasets plus plugins from the entry-point group ``dropsearch.datasets``.

A dataset *loader* is a callable ``loader(*, seed, allowed_roots, **params) -> DatasetBundle`` whose params are
keyword arguments with defaults. Optional attributes on the loader: ``input_kind`` (``"image"``, ``"signal"`` or
``"sequence"``), ``task``, ``uses_path`` (reads files, so needs ``allowed_roots``) and ``description`` (else the
docstring's first line). A plugin package declares::

    [project.entry-points."dropsearch.datasets"]
    my-data = "my_package.data:load_my_data"

Names from requests are only dictionary keys; no dataset is ever downloaded; every path a loader reads must lie
inside ``allowed_roots``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from dropsearch.workers._plugins import PluginRegistry
from dropsearch.workers.datasets.base import DatasetBundle
from dropsearch.workers.datasets.char_corpus import load_char_corpus
from dropsearch.workers.datasets.cifar10 import load_cifar10
from dropsearch.workers.datasets.digits import load_digits_bundle
from dropsearch.workers.datasets.image_folder import load_image_folder
from dropsearch.workers.datasets.mnist1d import load_mnist1d
from dropsearch.workers.datasets.rotated import load_rotated_digits
from dropsearch.workers.datasets.synthetic import load_synthetic

__all__ = ["ENTRY_POINT_GROUP", "DatasetInfo", "register_dataset", "load_dataset", "dataset_names", "dataset_info"]

ENTRY_POINT_GROUP = "dropsearch.datasets"

_REGISTRY = PluginRegistry(
    "dataset",
    ENTRY_POINT_GROUP,
    reserved=("seed", "allowed_roots"),
    attr_defaults={"input_kind": "image", "task": "classification", "uses_path": False},
)


@dataclass(frozen=True)
class DatasetInfo:
    """What the catalog shows about a dataset.

    Args:
        name: the registry name.
        description: one line.
        params: accepted params and their defaults (``None``: the loader takes any keyword).
        input_kind: ``"image"``, ``"signal"`` (1-D signals ``(C, L)``) or ``"sequence"``.
        task: ``"classification"`` or ``"language_model"``.
        uses_path: whether it reads a local path (confined to the dataset roots).
    """

    name: str
    description: str
    params: dict[str, Any] | None
    input_kind: str
    task: str
    uses_path: bool


def register_dataset(
    name: str,
    loader: Callable[..., DatasetBundle],
    *,
    description: str | None = None,
    replace: bool = False,
) -> None:
    """Register ``loader`` under ``name``.

    Args:
        name: a name matching ``^[a-z0-9][a-z0-9_.-]*$``.
        loader: ``loader(*, seed, allowed_roots, **params) -> DatasetBundle``; every param needs a default.
        description: one line; default: the loader's docstring's first line.
        replace: allow replacing an existing name. Default: ``False``

    Raises:
        ValueError: for a bad or taken name, or a loader without the reserved keywords.
    """
    attrs = {} if description is None else {"description": description}
    _REGISTRY.register(name, loader, replace=replace, **attrs)


def dataset_names() -> list[str]:
    """Every dataset name, built-in and plugin, sorted (plugins are not imported)."""
    return _REGISTRY.names()


def dataset_info(name: str) -> DatasetInfo:
    """Description, params with defaults, input kind, task and whether it reads a path."""
    entry = _REGISTRY.get(name)
    return DatasetInfo(
        name=entry.name,
        description=entry.description,
        params=None if entry.params is None else dict(entry.params),
        input_kind=str(entry.attrs["input_kind"]),
        task=str(entry.attrs["task"]),
        uses_path=bool(entry.attrs["uses_path"]),
    )


def load_dataset(
    name: str,
    *,
    params: dict[str, Any] | None = None,
    seed: int,
    allowed_roots: Sequence[str | os.PathLike[str]] = (),
) -> DatasetBundle:
    """Load dataset ``name`` into memory.

    Args:
        name: a registered dataset name.
        params: the dataset's params; unknown ones are refused. Default: all defaults.
        seed: seeds every random choice (splits, shards, synthetic noise): same seed, same bundle.
        allowed_roots: directories that a ``path`` param may point into (symlinks and ``..`` are resolved first).
            Default: none, so datasets that read files refuse every path.

    Raises:
        ValueError: naming an unknown dataset (listing the known ones), an unknown param, a bad value, or a path
            outside ``allowed_roots``. :class:`~dropsearch.workers.datasets.base.DatasetNotFoundError` (both a
            ``FileNotFoundError`` and a ``ValueError``) naming a missing directory or file.
    """
    if isinstance(seed, bool) or int(seed) != seed:
        raise ValueError(f"seed must be an integer, got {seed!r}")
    entry = _REGISTRY.get(name)
    merged = _REGISTRY.check_params(entry, params)
    bundle = entry.factory(seed=int(seed), allowed_roots=tuple(allowed_roots), **merged)
    if not isinstance(bundle, DatasetBundle):
        raise ValueError(f"dataset {name!r}: loader returned {type(bundle).__name__}, not a DatasetBundle")
    return bundle


for _name, _loader in (
    ("digits", load_digits_bundle),
    ("rotated-digits", load_rotated_digits),
    ("synthetic", load_synthetic),
    ("image-folder", load_image_folder),
    ("cifar10", load_cifar10),
    ("char-corpus", load_char_corpus),
    ("mnist1d", load_mnist1d),
):
    register_dataset(_name, _loader)
