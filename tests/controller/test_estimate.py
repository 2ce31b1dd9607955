"""Noise-aware ranking of BaseController.best(): shrinkage of tuple means, checked by a numpy reference."""

import random

import numpy as np
import pytest

from dropsearch.controller import Proposal, RandomController
from dropsearch.controller._estimate import T2_FLOOR, shrunk_estimates
from dropsearch.search.space import Decision, SearchSpace

SPACE = SearchSpace((Decision("a", tuple(range(6))), Decision("b", tuple(range(6)))))


def reference(history):
    """The same model written with numpy arrays."""
    keys = list(dict.fromkeys(t for t, _, _ in history))
    groups = [np.array([r for t, r, _ in history if t == k]) for k in keys]
    n = np.array([len(g) for g in groups])
    means = np.array([g.mean() for g in groups])
    s2 = sum(((g - g.mean()) ** 2).sum() for g in groups) / (n - 1).sum()
    t2 = max(means.var(ddof=1) - s2 * (1 / n).mean(), T2_FLOOR * s2)
    w = t2 / (t2 + s2 / n)
    return dict(zip(keys, means.mean() + w * (means - means.mean()), strict=True))


def test_estimates_match_the_numpy_reference():
    rng = random.Random(0)
    history = [((rng.randrange(3), 0), rng.gauss(0, 1), i) for i in range(40)]
    history += [((5, 5), 3.0, 40)]
    ref = reference(history)
    got = {e.tokens: e for e in shrunk_estimates(history)}
    assert set(got) == set(ref)
    for t, e in got.items():
        assert e.estimate == pytest.approx(ref[t], rel=1e-12)
    assert got[(5, 5)].n == 1 and got[(5, 5)].mean == 3.0 and got[(5, 5)].index == 40
    assert abs(got[(5, 5)].estimate - 3.0) > 0.5  # a single sample is shrunk a lot


def test_one_lucky_sample_does_not_outrank_a_tuple_sampled_twenty_times():
    rng = random.Random(1)
    ctrl = RandomController(SPACE, seed=0)
    good = [Proposal((1, 1)) for _ in range(20)]
    ctrl.update(good, [0.60 + rng.gauss(0, 0.05) for _ in good])
    # 15 more tuples of the same true quality 0.55 seen once each, and (3, 3) with one lucky draw
    others = [Proposal((a, b)) for a in range(6) for b in (2, 4, 5) if (a, b) != (3, 3)][:15] + [Proposal((3, 3))]
    ctrl.update(others, [0.55 + rng.gauss(0, 0.05) for _ in range(15)] + [0.68])
    means = {e.tokens: e.mean for e in shrunk_estimates(ctrl.history)}
    assert max(means, key=means.get) == (3, 3)  # it does have the highest observed mean
    best = ctrl.best(2)
    assert [p.tokens for p in best] == [(1, 1), (3, 3)]
    assert best[0].reward == pytest.approx(np.mean([r for t, r, _ in ctrl.history if t == (1, 1)]))
    assert best[0].index is None and best[1].reward == 0.68


def test_without_repeats_the_order_is_the_observed_one():
    ctrl = RandomController(SPACE, seed=0)
    batch = [Proposal((a, a), 0.0, i) for i, a in enumerate(range(6))]
    ctrl.update(batch, [0.3, 0.9, 0.1, 0.9, 0.5, 0.7])
    assert [p.reward for p in ctrl.best(6)] == [0.9, 0.9, 0.7, 0.5, 0.3, 0.1]
    assert [p.index for p in ctrl.best(2)] == [1, 3]  # ties: the earlier observation first


def test_identical_repeats_mean_no_noise_and_no_shrinkage():
    history = [((0, 0), 0.5, 0), ((0, 0), 0.5, 1), ((1, 0), 0.7, 2)]
    assert [(e.tokens, e.estimate) for e in shrunk_estimates(history)] == [((0, 0), 0.5), ((1, 0), 0.7)]
    assert shrunk_estimates([]) == []
