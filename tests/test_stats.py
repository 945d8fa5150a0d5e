"""The statistics behind a comparison, against tabulated values (scipy.stats gives the same; it is not a
dependency: it would slow every run's start-up)."""

import math

import pytest

from initlab.report.stats import betainc, holm, mean_ci, t_cdf, t_ppf, welch_p


@pytest.mark.parametrize(
    ("p", "df", "t"),
    [(0.975, 1, 12.706204736), (0.975, 2, 4.302652730), (0.975, 4, 2.776445105), (0.975, 9, 2.262157163),
     (0.975, 30, 2.042272456), (0.95, 5, 2.015048373), (0.5, 3, 0.0), (0.025, 4, -2.776445105)],
)  # fmt: skip
def test_t_quantiles_match_the_tables(p: float, df: int, t: float) -> None:
    assert t_ppf(p, df) == pytest.approx(t, abs=1e-7)
    assert t_cdf(t, df) == pytest.approx(p, abs=1e-9)


def test_the_incomplete_beta_function() -> None:
    assert betainc(1, 1, 0.3) == pytest.approx(0.3)  # the uniform distribution's CDF
    assert betainc(2, 3, 0.4) == pytest.approx(0.5248)  # 1 - sum_{j<2} C(4,j) 0.4^j 0.6^(4-j)
    assert betainc(0.5, 0.5, 0.5) == pytest.approx(0.5)  # symmetric
    assert betainc(3, 2, 0.0) == 0.0 and betainc(3, 2, 1.0) == 1.0


def test_a_mean_and_its_interval() -> None:
    mean, low, high = mean_ci([0.1, 0.2, 0.3])
    assert mean == pytest.approx(0.2) and high - mean == pytest.approx(4.302652730 * 0.1 / math.sqrt(3))
    assert mean - low == pytest.approx(high - mean)  # symmetric
    assert mean_ci([0.5]) == (0.5, 0.5, 0.5)  # one seed: no interval to state


def test_welch_against_hand_computed_values() -> None:
    # means 1.0 and 2.5, variances 2/3 and 5/3: t = -1.5 / sqrt((2/3 + 5/3) / 4) = -1.964, Welch-Satterthwaite
    # df = 5.069, two-sided p = 0.10596 (scipy.stats.ttest_ind(..., equal_var=False) gives the same)
    p = welch_p([1.0, 2.0, 0.0, 1.0], [2.0, 4.0, 1.0, 3.0])
    assert p == pytest.approx(0.105965, abs=1e-6)
    assert welch_p([1.0, 1.0], [1.0, 1.0]) == 1.0 and welch_p([1.0, 1.0], [2.0, 2.0]) == 0.0  # no spread at all
    assert welch_p([1.0], [1.0, 2.0]) is None  # one seed: no test


def test_holm_steps_down_and_stops() -> None:
    # sorted 0.005 (<= .05/4), 0.01 (<= .05/3), 0.03 (> .05/2): the first two fall, the rest stand
    assert holm([0.01, 0.04, 0.03, 0.005]) == [True, False, False, True]
    assert holm([0.02, 0.02]) == [True, True] and holm([0.06]) == [False]
    assert holm([0.01, 0.02, 0.03]) == [True, True, True]  # Holm, not Bonferroni (0.02 > 0.05 / 3)


@pytest.mark.parametrize("bad", [float("inf"), float("-inf"), float("nan")])
def test_a_statistic_of_a_non_finite_value_is_refused(bad: float) -> None:
    with pytest.raises(ValueError, match="finite"):  # not AttributeError from statistics.stdev, nor a nan to print
        mean_ci([0.9, bad])
    with pytest.raises(ValueError, match="finite"):
        welch_p([0.9, 0.91], [0.8, bad])
    assert mean_ci([0.9, 0.92])[0] == pytest.approx(0.91)  # finite values: as before
