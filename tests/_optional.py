"""Optional third-party libraries of the tests (torchvision, timm, transformers): imported, or the test skipped."""

from __future__ import annotations

import importlib
import warnings
from types import ModuleType

import pytest


def import_or_skip(name: str) -> ModuleType:
    """The module, or a skip naming why it cannot be imported (e.g. a CUDA torchvision next to a CPU torch)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return importlib.import_module(name)
    except Exception as exc:  # noqa: BLE001 - a broken install raises RuntimeError/OSError, not ImportError
        pytest.skip(f"{name} cannot be imported here: {type(exc).__name__}: {exc}")
