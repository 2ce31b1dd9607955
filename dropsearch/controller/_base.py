"""The controller interface shared by REINFORCE and random search (docs/SEARCH.md, "Controllers")."""

from __future__ import annotations

import abc
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from dropsearch.controller._estimate import shrunk_estimates
from dropsearch.search.space import SearchSpace

__all__ = ["Proposal", "BaseController"]


@dataclass(frozen=True)
class Proposal:
    """One sampled point of a search space.

    Args:
        tokens: one index per decision of the space.
        log_prob: log-probability of ``tokens`` under the policy when sampled (``0.0`` for outside points;
            uniform for random search).
        index: the controller's running sample number (0, 1, 2, ...); ``None`` for points given from outside
            (warm start).
        reward: the observed reward, set on the proposals :meth:`BaseController.best` returns; else ``None``.
    """

    tokens: tuple[int, ...]
    log_prob: float = 0.0
    index: int | None = None
    reward: float | None = None


class BaseController(abc.ABC):
    """Proposes token tuples of a :class:`~dropsearch.search.space.SearchSpace` and learns from their rewards.

    Lifecycle: :meth:`sample` ``n`` proposals -> evaluate them (the caller, e.g. a Ray Tune searcher) ->
    :meth:`update` once with the proposals and their rewards (higher is better) -> repeat. :meth:`state_dict` may be
    taken between any two calls; :meth:`load_state_dict` on a fresh controller of the same space and settings then
    continues exactly as the original would have. The controller never mutates the proposals it is given.

    Subclasses implement :meth:`sample`, :meth:`most_likely`, and optionally ``_learn`` (called by :meth:`update`
    after the observations are recorded) and ``_extra_state`` / ``_load_extra_state``. Example::

        class FirstChoice(BaseController):
            def sample(self, n):
                return [self._propose((0,) * len(self.space), 0.0) for _ in range(n)]

            def most_likely(self):
                return (0,) * len(self.space)
    """

    kind = "base"

    def __init__(self, space: SearchSpace) -> None:
        if not isinstance(space, SearchSpace):
            raise ValueError(f"space must be a SearchSpace, got {type(space).__name__}")
        self.space = space
        self.n_sampled = 0
        self.n_updates = 0
        self.history: list[tuple[tuple[int, ...], float, int | None]] = []

    def _propose(self, tokens: Sequence[int], log_prob: float) -> Proposal:
        proposal = Proposal(tuple(int(t) for t in tokens), float(log_prob), self.n_sampled)
        self.n_sampled += 1
        return proposal

    @abc.abstractmethod
    def sample(self, n: int) -> list[Proposal]:
        """Draw ``n`` proposals (advances the controller's random state)."""
        raise NotImplementedError

    @abc.abstractmethod
    def most_likely(self) -> tuple[int, ...]:
        """The tokens the controller currently believes best (a greedy decode of the policy, if it has one)."""
        raise NotImplementedError

    def _learn(self, proposals: Sequence[Proposal], rewards: Sequence[float]) -> dict[str, float]:
        """Learn from one batch; no-op by default. Returns statistics for logging."""
        return {}

    def update(self, proposals: Sequence[Proposal], rewards: Sequence[float]) -> dict[str, float]:
        """Record one evaluated batch and learn from it (one policy step).

        Args:
            proposals: the evaluated proposals (any from :meth:`sample`, or outside points).
            rewards: one reward per proposal; higher is better.

        Returns:
            Statistics of the step (e.g. ``loss``, ``baseline``, ``entropy``, ``mean_reward``).
        """
        proposals, rewards = list(proposals), [float(r) for r in rewards]
        if len(proposals) != len(rewards):
            raise ValueError(f"got {len(proposals)} proposals but {len(rewards)} rewards")
        if not proposals:
            raise ValueError("update needs at least one proposal")
        if any(r != r or r in (float("inf"), float("-inf")) for r in rewards):
            raise ValueError(f"rewards must be finite, got {rewards}")
        for p in proposals:
            self.space.check_tokens(p.tokens)
        self.history += [(tuple(p.tokens), r, p.index) for p, r in zip(proposals, rewards, strict=True)]
        stats = self._learn(proposals, rewards)
        self.n_updates += 1
        return {"mean_reward": sum(rewards) / len(rewards), **stats}

    def warm_start(self, observations: Iterable[tuple[Sequence[int], float]], *, batch_size: int = 8) -> int:
        """Learn from earlier ``(tokens, reward)`` pairs, in batches of ``batch_size`` (one update each).

        Returns:
            The number of updates made.
        """
        pairs = [(tuple(t), float(r)) for t, r in observations]
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        for start in range(0, len(pairs), batch_size):
            chunk = pairs[start : start + batch_size]
            self.update([Proposal(t) for t, _ in chunk], [r for _, r in chunk])
        return -(-len(pairs) // batch_size)

    def best(self, k: int = 1) -> list[Proposal]:
        """The ``k`` observed token tuples with the best noise-aware estimate of their reward.

        Repeats of one tuple are averaged and each mean is shrunk toward the mean of all tuples, the more the fewer
        samples it has (:func:`~dropsearch.controller._estimate.shrunk_estimates`, noise estimated from the repeated
        tuples), so one lucky sample does not outrank a tuple sampled twenty times. Without repeats this is the
        order of the observed rewards.

        Returns:
            Proposals with ``reward`` set to the tuple's observed mean, best first; ``index`` is the first sample of
            the tuple. Ties keep the earlier observation first.
        """
        ranked = sorted(shrunk_estimates(self.history), key=lambda e: -e.estimate)
        return [Proposal(e.tokens, 0.0, e.index, e.mean) for e in ranked[:k]]

    def _extra_state(self) -> dict[str, Any]:
        return {}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        return None

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly: counters, history and the subclass's state (plain objects)."""
        return {
            "kind": self.kind,
            "space": self.space.to_dict(),
            "n_sampled": self.n_sampled,
            "n_updates": self.n_updates,
            "history": [[list(t), r, i] for t, r, i in self.history],
            **self._extra_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output; the space and controller kind must match."""
        if state.get("kind") != self.kind:
            raise ValueError(f"state is of a {state.get('kind')!r} controller, not {self.kind!r}")
        other = SearchSpace.from_dict(state["space"])
        if other.names != self.space.names or other.sizes != self.space.sizes:
            raise ValueError("state was saved for a different search space")
        self.n_sampled = int(state["n_sampled"])
        self.n_updates = int(state["n_updates"])
        self.history = [(tuple(t), float(r), i) for t, r, i in state["history"]]
        self._load_extra_state(state)
