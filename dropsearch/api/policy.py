"""Server rules a valid job spec must also meet: trial and epoch caps, and dataset paths confined to roots.

The spec itself (:class:`~dropsearch.search.spec.SearchSpec`) refuses unknown fields, names and variants; these
checks depend on the server's :class:`~dropsearch.config.Settings`. Nothing named in a spec is imported or run.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from dropsearch.api.errors import SpecRejected
from dropsearch.config import Settings
from dropsearch.search.spec import SearchSpec, validation_trials

__all__ = [
    "MAX_PARAMS_BYTES",
    "MAX_PARAMS_KEYS",
    "PATH_PARAM_KEYS",
    "check_params",
    "check_spec",
    "confine_dataset_path",
    "is_path_key",
]

#: Most keys of ``model.params`` or ``dataset.params`` (the built-in entries take at most a dozen).
MAX_PARAMS_KEYS = 32
#: Largest ``model.params`` or ``dataset.params`` as compact JSON, in bytes.
MAX_PARAMS_BYTES = 8192

#: ``dataset.params`` keys that name files or directories (besides any key ending in ``_path``/``_dir``/``_root``).
PATH_PARAM_KEYS = ("path", "root", "dir", "file", "data_dir")


def is_path_key(key: str) -> bool:
    """Whether a ``dataset.params`` key names a file or directory."""
    lowered = key.lower()
    return lowered in PATH_PARAM_KEYS or lowered.endswith(("_path", "_dir", "_root", "_file"))


def confine_dataset_path(value: Any, roots: Sequence[Path], *, field: str) -> Path:
    """Resolve a dataset path (symlinks and ``..`` included) and check that it lies inside one of ``roots``.

    A relative path is taken relative to each root (never to the server's working directory).

    Raises:
        SpecRejected: naming ``field`` when the value is not a non-empty string, no root is configured, or the
            resolved path is outside every root.
    """
    if not isinstance(value, str) or not value or "\x00" in value:
        raise SpecRejected(field, f"must be a non-empty path string, got {value!r}")
    resolved_roots = [Path(root).expanduser().resolve() for root in roots]
    if not resolved_roots:
        raise SpecRejected(field, f"path {value!r} refused: this server allows no dataset paths (no dataset_roots)")
    raw = Path(value)
    candidates = [raw.resolve()] if raw.is_absolute() else [(root / raw).resolve() for root in resolved_roots]
    for candidate in candidates:
        for root in resolved_roots:
            if candidate == root or candidate.is_relative_to(root):
                return candidate
    allowed = os.pathsep.join(str(root) for root in resolved_roots)
    raise SpecRejected(field, f"path {value!r} is outside the allowed dataset roots ({allowed})")


def _check_paths(params: Mapping[str, Any], roots: Sequence[Path], prefix: str) -> None:
    for key, value in params.items():
        field = f"{prefix}.{key}"
        if isinstance(value, Mapping):
            _check_paths(value, roots, field)
        elif is_path_key(str(key)):
            confine_dataset_path(value, roots, field=field)


def _accepted_params(kind: str, name: str) -> tuple[dict[str, Any] | None, tuple[str, ...]]:
    # The registries import torch: loaded here, on the first submission, never when the API is imported.
    if kind == "model":
        from dropsearch.workers.models.registry import _REGISTRY, model_info

        return model_info(name).params, tuple(_REGISTRY.reserved)
    from dropsearch.workers.datasets.registry import _REGISTRY as _DATASETS
    from dropsearch.workers.datasets.registry import dataset_info

    return dataset_info(name).params, tuple(_DATASETS.reserved)


def check_params(kind: str, name: str, params: Mapping[str, Any]) -> None:
    """Refuse ``<kind>.params`` that are too big or that the registered model/dataset ``name`` does not accept.

    Raises:
        SpecRejected: naming the field: over :data:`MAX_PARAMS_KEYS` keys or :data:`MAX_PARAMS_BYTES` bytes, or
            ``<kind>.params.<key>: unknown parameter of <kind> '<name>'; known: ...``.
    """
    field = f"{kind}.params"
    if len(params) > MAX_PARAMS_KEYS:
        raise SpecRejected(field, f"at most {MAX_PARAMS_KEYS} parameters, got {len(params)}")
    size = len(json.dumps(params, separators=(",", ":"), default=str).encode())
    if size > MAX_PARAMS_BYTES:
        raise SpecRejected(field, f"at most {MAX_PARAMS_BYTES} bytes as JSON, got {size}")
    accepted, reserved = _accepted_params(kind, name)
    for key in params:
        if key in reserved:
            raise SpecRejected(f"{field}.{key}", f"set by dropsearch itself, not by a job spec ({kind} {name!r})")
        if accepted is not None and key not in accepted:
            known = ", ".join(accepted) or "(none)"
            raise SpecRejected(f"{field}.{key}", f"unknown parameter of {kind} {name!r}; known: {known}")


def check_spec(spec: SearchSpec, settings: Settings) -> None:
    """Apply the server's caps and path rules to a validated spec.

    Raises:
        SpecRejected: naming the field: ``budget.trials`` over ``max_trials``, ``budget.seeds_per_trial`` when
            the search's children (trials x seeds) exceed it, ``validation`` when the search's children plus the
            validation stage's most trials (:func:`~dropsearch.search.spec.validation_trials`) exceed it,
            ``budget.epochs_per_trial`` over ``max_epochs_per_trial``, or a ``dataset.params`` path outside
            ``dataset_roots``.
    """
    if spec.budget.trials > settings.max_trials:
        limit, got = settings.max_trials, spec.budget.trials
        raise SpecRejected("budget.trials", f"must be at most {limit} (the server's max_trials), got {got}")
    children = spec.budget.trials * spec.budget.seeds_per_trial
    if children > settings.max_trials:
        raise SpecRejected(
            "budget.seeds_per_trial",
            f"{spec.budget.trials} trials x {spec.budget.seeds_per_trial} seeds = {children} children exceed the "
            f"server's max_trials ({settings.max_trials})",
        )
    extra = validation_trials(spec)
    if children + extra > settings.max_trials:
        raise SpecRejected(
            "validation",
            f"the search's {children} trials plus up to {extra} validation trials "
            f"((top_k + baselines) x seeds) exceed the server's max_trials ({settings.max_trials}); "
            "lower validation.top_k or validation.seeds, or set validation.enabled to false",
        )
    if spec.budget.epochs_per_trial > settings.max_epochs_per_trial:
        raise SpecRejected(
            "budget.epochs_per_trial",
            f"must be at most {settings.max_epochs_per_trial} (the server's max_epochs_per_trial), "
            f"got {spec.budget.epochs_per_trial}",
        )
    check_params("model", spec.model.name, spec.model.params)  # (unknown or oversized params: 422 naming the key)
    check_params("dataset", spec.dataset.name, spec.dataset.params)
    _check_paths(spec.dataset.params, settings.dataset_roots, "dataset.params")
