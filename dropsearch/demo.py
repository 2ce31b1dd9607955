"""The demo search that ``dropsearch serve --demo`` (and ``./scripts/demo``) submits.

A small convnet on scikit-learn's 8x8 digits, searched over five dropout variants by the REINFORCE controller with
ASHA early stopping, then a small validation stage (the 2 best patterns and no dropout, 2 paired seeds each), sized
to finish in a few minutes on two CPU cores. Two environment variables shrink it further
(the end-to-end tests and CI use them): ``DROPSEARCH_DEMO_TRIALS`` and ``DROPSEARCH_DEMO_EPOCHS``.

Example::

    >>> spec = demo_spec({"DROPSEARCH_DEMO_TRIALS": "2", "DROPSEARCH_DEMO_EPOCHS": "1"})
    >>> spec["budget"]["trials"], spec["budget"]["epochs_per_trial"], spec["controller"]["batch_size"]
    (2, 1, 2)
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from typing import Any

__all__ = ["DEMO_SPEC", "TRIALS_ENV", "EPOCHS_ENV", "demo_spec"]

TRIALS_ENV = "DROPSEARCH_DEMO_TRIALS"
EPOCHS_ENV = "DROPSEARCH_DEMO_EPOCHS"

#: The demo job spec (a ``SearchSpec`` document), without the environment overrides.
DEMO_SPEC: dict[str, Any] = {
    "name": "demo-digits-convnet",
    "model": {"name": "convnet", "params": {"widths": [32, 64]}},
    "dataset": {"name": "digits", "params": {}},
    "space": {
        "variants": ["bernoulli", "dropblock", "autodropout", "ydrop", "gsnr"],
        "rates": [0.0, 0.1, 0.2, 0.3],
    },
    "controller": {"name": "reinforce", "batch_size": 4},
    "budget": {"trials": 16, "epochs_per_trial": 10, "max_concurrent": 2, "early_stopping": "asha"},
    "resources": {"cpus_per_trial": 1, "gpus_per_trial": 0, "workers_per_trial": 1},
    "objective": {"metric": "val_accuracy", "mode": "max"},
    # the validation stage: the 2 best patterns and no dropout re-trained with 2 paired seeds each
    "validation": {"top_k": 2, "seeds": 2},
    "seed": 0,
}


def _positive_int(environ: Mapping[str, str], name: str) -> int | None:
    raw = environ.get(name, "").strip()
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"{name} must be a positive integer, got {raw!r}")
    return value


def demo_spec(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The demo spec with ``DROPSEARCH_DEMO_TRIALS`` / ``DROPSEARCH_DEMO_EPOCHS`` applied.

    Fewer trials than the controller batch or the concurrency shrink those too, so the spec stays valid.

    Args:
        environ: where to read the overrides. Default: ``os.environ``

    Returns:
        A new spec dict (``DEMO_SPEC`` is not modified).

    Raises:
        ValueError: naming the variable when an override is not a positive integer.
    """
    environ = os.environ if environ is None else environ
    spec = copy.deepcopy(DEMO_SPEC)
    trials, epochs = _positive_int(environ, TRIALS_ENV), _positive_int(environ, EPOCHS_ENV)
    if trials is not None:
        spec["budget"]["trials"] = trials
        spec["budget"]["max_concurrent"] = min(spec["budget"]["max_concurrent"], trials)
        spec["controller"]["batch_size"] = min(spec["controller"]["batch_size"], trials)
    if epochs is not None:
        spec["budget"]["epochs_per_trial"] = epochs
    return spec
