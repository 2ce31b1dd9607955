"""REINFORCE controller (Williams 1992; as used by ENAS and AutoDropout, arXiv 1802.03268, 2101.01761)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from dropsearch.controller._base import BaseController, Proposal
from dropsearch.controller._policy import LSTMPolicy
from dropsearch.search.space import SearchSpace

__all__ = ["ReinforceController"]


class ReinforceController(BaseController):
    """An autoregressive LSTM policy trained by REINFORCE with a moving-average baseline and an entropy bonus.

    Each :meth:`update` makes one Adam step on
    ``loss = -mean_b[(r_b - baseline) * log pi(tokens_b)] - entropy_weight * mean_b[sum_i H_i(b)]``, with the
    baseline taken *before* the batch; then ``baseline <- decay * baseline + (1 - decay) * mean_b(r_b)``. The first
    batch initializes the baseline with its own mean.

    Args:
        space: the search space.
        lr: Adam learning rate. Default: 0.0035
        baseline_decay: decay of the exponential moving-average baseline, in [0, 1). Default: 0.95
        entropy_weight: weight of the entropy bonus (keeps exploring). Default: 0.0001
        seed: seeds the initial weights and every sample. Default: 0
        embedding_size: token embedding width. Default: 32
        hidden_size: LSTM width. Default: 64
        grad_clip: gradient-norm clip of each step; ``None`` disables. Default: 5.0

    Examples::

        >>> from dropsearch.search.space import Decision, SearchSpace
        >>> space = SearchSpace((Decision("a", (0, 1, 2)), Decision("b", ("x", "y"))))
        >>> ctrl = ReinforceController(space, seed=0)
        >>> batch = ctrl.sample(4)
        >>> stats = ctrl.update(batch, [float(p.tokens[0] == 2) for p in batch])
    """

    kind = "reinforce"

    def __init__(
        self,
        space: SearchSpace,
        *,
        lr: float = 0.0035,
        baseline_decay: float = 0.95,
        entropy_weight: float = 0.0001,
        seed: int = 0,
        embedding_size: int = 32,
        hidden_size: int = 64,
        grad_clip: float | None = 5.0,
    ) -> None:
        super().__init__(space)
        if not lr > 0:
            raise ValueError(f"lr must be > 0, got {lr!r}")
        if not 0 <= baseline_decay < 1:
            raise ValueError(f"baseline_decay must be in [0, 1), got {baseline_decay!r}")
        if not entropy_weight >= 0:
            raise ValueError(f"entropy_weight must be >= 0, got {entropy_weight!r}")
        self.lr, self.baseline_decay, self.entropy_weight = float(lr), float(baseline_decay), float(entropy_weight)
        self.seed, self.grad_clip = int(seed), grad_clip
        self.generator = torch.Generator().manual_seed(self.seed)
        self.policy = LSTMPolicy(
            space.sizes, embedding_size=embedding_size, hidden_size=hidden_size, generator=self.generator
        )
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=self.lr)
        self.baseline: float | None = None

    def sample(self, n: int) -> list[Proposal]:
        """Draw ``n`` proposals from the policy (token by token)."""
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n!r}")
        tokens, log_prob = self.policy.sample(n, generator=self.generator)
        return [self._propose(t, lp) for t, lp in zip(tokens.tolist(), log_prob.tolist(), strict=True)]

    def most_likely(self) -> tuple[int, ...]:
        """Greedy decode: the most likely choice at each step given the earlier greedy choices."""
        tokens, _ = self.policy.sample(1, greedy=True)
        return tuple(tokens[0].tolist())

    def log_prob(self, tokens: Sequence[Sequence[int]]) -> torch.Tensor:
        """Log-probabilities (B,) of token tuples under the current policy (no gradient)."""
        with torch.no_grad():
            chosen, _ = self.policy(torch.tensor([list(t) for t in tokens], dtype=torch.long))
        return chosen.sum(-1)

    def _learn(self, proposals: Sequence[Proposal], rewards: Sequence[float]) -> dict[str, float]:
        r = torch.tensor(rewards, dtype=torch.float32)
        mean = float(r.mean())
        baseline = mean if self.baseline is None else self.baseline
        chosen, entropy = self.policy(torch.tensor([list(p.tokens) for p in proposals], dtype=torch.long))
        advantage = r - baseline
        entropy_term = entropy.sum(-1).mean()
        loss = -(advantage * chosen.sum(-1)).mean() - self.entropy_weight * entropy_term
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(self.policy.parameters(), self.grad_clip)
        self.optimizer.step()
        self.baseline = self.baseline_decay * baseline + (1 - self.baseline_decay) * mean
        return {"loss": loss.item(), "baseline": self.baseline, "entropy": entropy_term.item()}

    def _extra_state(self) -> dict[str, Any]:
        return {
            "config": {
                "lr": self.lr,
                "baseline_decay": self.baseline_decay,
                "entropy_weight": self.entropy_weight,
                "seed": self.seed,
                "grad_clip": self.grad_clip,
            },
            "policy": {k: v.clone() for k, v in self.policy.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "baseline": self.baseline,
            "generator": self.generator.get_state(),
        }

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        self.policy.load_state_dict(state["policy"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.baseline = state["baseline"]
        self.generator.set_state(state["generator"])
