"""The dataset registry and the built-in datasets (all in memory; none is ever downloaded)."""

from dropsearch.workers.datasets.base import DatasetBundle, DatasetNotFoundError, confine_path, stratified_split
from dropsearch.workers.datasets.char_corpus import decode, encode
from dropsearch.workers.datasets.registry import (
    ENTRY_POINT_GROUP,
    DatasetInfo,
    dataset_info,
    dataset_names,
    load_dataset,
    register_dataset,
)
from dropsearch.workers.datasets.rotated import ANGLES, rotate_images

__all__ = [
    "ANGLES",
    "ENTRY_POINT_GROUP",
    "DatasetBundle",
    "DatasetInfo",
    "DatasetNotFoundError",
    "confine_path",
    "dataset_info",
    "dataset_names",
    "decode",
    "encode",
    "load_dataset",
    "register_dataset",
    "rotate_images",
    "stratified_split",
]
