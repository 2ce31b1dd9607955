"""Names of the models and datasets a job spec may ask for.

The built-in names are listed here; plugins add more through the entry-point groups ``dropsearch.models`` and
``dropsearch.datasets``. The entry points are only *listed* (``importlib.metadata``), never loaded, so validating a
job spec imports no plugin code, no torch and no Ray.
"""

from __future__ import annotations

import re
from importlib.metadata import entry_points

__all__ = [
    "MODELS",
    "DATASETS",
    "NAME_PATTERN",
    "MODEL_GROUP",
    "DATASET_GROUP",
    "model_names",
    "dataset_names",
    "check_name",
]

#: Built-in model names (implemented by ``dropsearch.workers``).
MODELS: tuple[str, ...] = ("convnet", "resnet", "mlp", "transformer", "cnn1d")
#: Built-in dataset names (implemented by ``dropsearch.workers``).
DATASETS: tuple[str, ...] = (
    "digits",
    "rotated-digits",
    "synthetic",
    "image-folder",
    "cifar10",
    "char-corpus",
    "mnist1d",
)
#: What a model, dataset or plugin name must look like.
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
MODEL_GROUP = "dropsearch.models"
DATASET_GROUP = "dropsearch.datasets"


def _plugin_names(group: str) -> tuple[str, ...]:
    """Names of the installed entry points of ``group`` that look like valid names (not loaded)."""
    return tuple(sorted({ep.name for ep in entry_points(group=group) if NAME_PATTERN.match(ep.name)}))


def model_names() -> tuple[str, ...]:
    """Built-in model names followed by the installed ``dropsearch.models`` entry points."""
    return MODELS + tuple(n for n in _plugin_names(MODEL_GROUP) if n not in MODELS)


def dataset_names() -> tuple[str, ...]:
    """Built-in dataset names followed by the installed ``dropsearch.datasets`` entry points."""
    return DATASETS + tuple(n for n in _plugin_names(DATASET_GROUP) if n not in DATASETS)


def check_name(value: str, *, kind: str, field: str) -> str:
    """Validate a model or dataset name against :data:`NAME_PATTERN` and the catalog.

    Args:
        value: the name to check.
        kind: ``"model"`` or ``"dataset"``.
        field: how the field is called in the message (e.g. ``"model.name"``).

    Returns:
        ``value``.

    Raises:
        ValueError: naming ``field`` and the value when it is malformed or unknown.
    """
    if not isinstance(value, str) or not NAME_PATTERN.match(value):
        raise ValueError(f"{field} must match {NAME_PATTERN.pattern}, got {value!r}")
    known = model_names() if kind == "model" else dataset_names()
    if value not in known:
        raise ValueError(f"{field}: unknown {kind} {value!r}; expected one of {', '.join(known)}")
    return value
