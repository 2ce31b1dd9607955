"""Noise-aware ranking of observed token tuples: empirical-Bayes shrinkage of each tuple's mean reward.

Ranking by the observed mean lets one lucky sample outrank a tuple sampled twenty times. Each tuple's mean is
shrunk toward the mean of all tuples, the more the fewer samples it has (a normal-normal model, its two variances
estimated from the history itself):

- noise variance ``s2``: pooled within-tuple variance of the tuples observed more than once;
- spread of the true qualities ``t2``: the variance of the tuple means less the part the noise explains
  (``s2 * mean(1 / n_i)``), at least ``T2_FLOOR * s2``;
- estimate of tuple ``i``: ``m + w_i * (mean_i - m)`` with ``w_i = t2 / (t2 + s2 / n_i)`` and ``m`` the mean of the
  tuple means.

Without a repeated tuple the noise cannot be estimated and the estimate is the mean itself (as every tuple then has
one sample, shrinking would not change the order anyway).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["T2_FLOOR", "TupleEstimate", "shrunk_estimates"]

#: Smallest spread of true qualities, as a fraction of the noise variance (keeps the weights above zero, so the
#: order stays meaningful when the spread is not estimable).
T2_FLOOR = 0.01


@dataclass(frozen=True)
class TupleEstimate:
    """One observed token tuple.

    Args:
        tokens: the tuple.
        mean: its observed mean reward.
        n: how many times it was observed.
        index: the sample index of its first observation (``None`` for outside points).
        estimate: the shrunk mean used for ranking.
    """

    tokens: tuple[int, ...]
    mean: float
    n: int
    index: int | None
    estimate: float


def shrunk_estimates(history: Iterable[tuple[tuple[int, ...], float, int | None]]) -> list[TupleEstimate]:
    """Per-tuple estimates from ``(tokens, reward, index)`` observations, in order of first observation."""
    groups: dict[tuple[int, ...], list] = {}
    for tokens, reward, index in history:
        groups.setdefault(tuple(tokens), [[], index])[0].append(float(reward))
    if not groups:
        return []
    means = {t: math.fsum(rs) / len(rs) for t, (rs, _) in groups.items()}
    df = sum(len(rs) - 1 for rs, _ in groups.values())
    if df == 0 or len(groups) < 2:
        return [TupleEstimate(t, means[t], len(rs), i, means[t]) for t, (rs, i) in groups.items()]
    s2 = math.fsum((r - means[t]) ** 2 for t, (rs, _) in groups.items() for r in rs) / df
    center = math.fsum(means.values()) / len(means)
    spread = math.fsum((m - center) ** 2 for m in means.values()) / (len(means) - 1)
    mean_inv_n = math.fsum(1.0 / len(rs) for rs, _ in groups.values()) / len(groups)
    t2 = max(spread - s2 * mean_inv_n, T2_FLOOR * s2)
    out = []
    for t, (rs, i) in groups.items():
        if s2 == 0.0:
            estimate = means[t]
        else:
            w = t2 / (t2 + s2 / len(rs))
            estimate = center + w * (means[t] - center)
        out.append(TupleEstimate(t, means[t], len(rs), i, estimate))
    return out
