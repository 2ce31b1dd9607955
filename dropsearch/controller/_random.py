"""Random search: the baseline every controller must beat."""

from __future__ import annotations

import math
import random
from typing import Any

from dropsearch.controller._base import BaseController, Proposal
from dropsearch.search.space import SearchSpace

__all__ = ["RandomController"]


class RandomController(BaseController):
    """Samples every decision uniformly and independently; :meth:`update` only records rewards.

    Args:
        space: the search space.
        seed: seeds the sampler. Default: 0

    Examples::

        >>> from dropsearch.search.space import Decision, SearchSpace
        >>> ctrl = RandomController(SearchSpace((Decision("a", (0, 1, 2)),)), seed=0)
        >>> [p.tokens for p in ctrl.sample(2)]
        [(1,), (1,)]
    """

    kind = "random"

    def __init__(self, space: SearchSpace, *, seed: int = 0) -> None:
        super().__init__(space)
        self.seed = int(seed)
        self.rng = random.Random(self.seed)
        self._log_prob = -sum(math.log(s) for s in space.sizes)

    def sample(self, n: int) -> list[Proposal]:
        """Draw ``n`` uniform proposals."""
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n!r}")
        return [self._propose([self.rng.randrange(s) for s in self.space.sizes], self._log_prob) for _ in range(n)]

    def most_likely(self) -> tuple[int, ...]:
        """Random search has no policy: the best observed tokens (token 0 everywhere before any observation)."""
        best = self.best(1)
        return best[0].tokens if best else (0,) * len(self.space)

    def _extra_state(self) -> dict[str, Any]:
        return {"seed": self.seed, "rng": self.rng.getstate()}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        self.rng.setstate(state["rng"])
