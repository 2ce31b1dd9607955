"""Student t quantiles and paired differences, checked against SciPy and a hand computation."""

import math

import pytest

from dropsearch.search.stats import paired_difference, student_t_cdf, t_quantile

scipy_stats = pytest.importorskip("scipy.stats")


@pytest.mark.parametrize("df", [1, 2, 3, 4, 5, 7, 10, 19, 30, 120, 1000])
@pytest.mark.parametrize("p", [0.5, 0.6, 0.9, 0.95, 0.975, 0.995, 0.025])
def test_t_quantile_matches_scipy(df, p):
    assert t_quantile(p, df) == pytest.approx(scipy_stats.t.ppf(p, df), rel=1e-9, abs=1e-9)


@pytest.mark.parametrize("df", [1, 2, 3.5, 10, 200])
@pytest.mark.parametrize("t", [-25.0, -2.0, -0.3, 0.0, 0.7, 4.3, 60.0])
def test_t_cdf_matches_scipy(df, t):
    assert student_t_cdf(t, df) == pytest.approx(scipy_stats.t.cdf(t, df), abs=1e-12)


def test_the_textbook_quantiles():
    assert round(t_quantile(0.975, 1), 3) == 12.706
    assert round(t_quantile(0.975, 2), 3) == 4.303
    assert round(t_quantile(0.975, 4), 3) == 2.776


@pytest.mark.parametrize(("p", "df"), [(0.0, 3), (1.0, 3), (0.5, 0), (1.2, 2)])
def test_bad_arguments_are_refused(p, df):
    with pytest.raises(ValueError):
        t_quantile(p, df)


def test_paired_difference_by_hand():
    a, b = [0.61, 0.55, 0.58], [0.60, 0.50, 0.56]
    diffs = [0.01, 0.05, 0.02]
    mean = sum(diffs) / 3
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / 2)
    se = sd / math.sqrt(3)
    g = paired_difference(a, b)
    assert (g.n, g.level) == (3, 0.95)
    assert g.mean == pytest.approx(mean) and g.sd == pytest.approx(sd) and g.se == pytest.approx(se)
    assert g.low == pytest.approx(mean - 4.302652729911275 * se)
    assert g.high == pytest.approx(mean + 4.302652729911275 * se)
    assert not g.above_zero() and not g.below_zero()  # 3 seeds: +0.027 +- 0.051 includes 0


def test_paired_difference_against_scipy_interval():
    a = [0.9, 0.7, 0.8, 0.75, 0.95]
    b = [0.6, 0.5, 0.55, 0.6, 0.7]
    g = paired_difference(a, b, level=0.9)
    diffs = [x - y for x, y in zip(a, b, strict=True)]
    low, high = scipy_stats.t.interval(0.9, 4, loc=sum(diffs) / 5, scale=scipy_stats.sem(diffs))
    assert (g.low, g.high) == (pytest.approx(low), pytest.approx(high))
    assert g.above_zero() and not g.below_zero()


def test_pairing_removes_the_shared_seed_effect():
    shared = [0.1, -0.2, 0.3]  # each seed moves every arm alike
    a = [0.50 + s for s in shared]
    b = [0.48 + s for s in shared]
    g = paired_difference(a, b)
    assert g.mean == pytest.approx(0.02) and g.sd == pytest.approx(0.0, abs=1e-12)
    assert g.above_zero()


def test_short_inputs_have_no_interval():
    one = paired_difference([1.0], [0.5])
    assert one.n == 1 and one.mean == 0.5 and math.isnan(one.low) and not one.known and not one.above_zero()
    assert paired_difference([], []).n == 0
    with pytest.raises(ValueError, match="same length"):
        paired_difference([1.0, 2.0], [1.0])
