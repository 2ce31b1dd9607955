"""Build a controller from the job spec's ``controller`` section."""

from __future__ import annotations

from dropsearch.controller._base import BaseController
from dropsearch.controller._random import RandomController
from dropsearch.controller._reinforce import ReinforceController
from dropsearch.search.space import SearchSpace
from dropsearch.search.spec import ControllerSpec

__all__ = ["make_controller"]


def make_controller(spec: ControllerSpec, space: SearchSpace, *, seed: int = 0) -> BaseController:
    """The controller a job spec asks for (``spec.batch_size`` is used by the Tune searcher, not here)."""
    if spec.name == "random":
        return RandomController(space, seed=seed)
    return ReinforceController(
        space, lr=spec.lr, baseline_decay=spec.baseline_decay, entropy_weight=spec.entropy_weight, seed=seed
    )
