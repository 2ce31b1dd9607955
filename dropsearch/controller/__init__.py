"""Controllers that propose search-space points, and their Ray Tune adapter.

``ControllerSearcher`` (the Ray Tune ``Searcher``) is imported lazily, so ``import dropsearch.controller`` does not
import Ray.
"""

from __future__ import annotations

from typing import Any

from dropsearch.controller._base import BaseController, Proposal
from dropsearch.controller._factory import make_controller
from dropsearch.controller._random import RandomController
from dropsearch.controller._reinforce import ReinforceController

__all__ = [
    "BaseController",
    "ControllerSearcher",
    "Proposal",
    "RandomController",
    "ReinforceController",
    "make_controller",
]


def __getattr__(name: str) -> Any:
    if name == "ControllerSearcher":
        from dropsearch.controller.searcher import ControllerSearcher

        return ControllerSearcher
    raise AttributeError(f"module 'dropsearch.controller' has no attribute {name!r}")
