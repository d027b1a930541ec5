"""Gini coefficient and log-log slope fit (model/stats.py)."""

import numpy as np
import pytest

from khop.model.stats import gini, loglog_fit, mean_std


def test_gini_of_equal_values_is_zero():
    assert gini(np.full(17, 0.3)) == pytest.approx(0.0, abs=1e-15)


@pytest.mark.parametrize("n", [2, 5, 99])
def test_gini_of_one_nonzero_value_is_n_minus_1_over_n(n):
    x = np.zeros(n)
    x[n // 2] = 4.0
    assert gini(x) == pytest.approx((n - 1) / n, rel=1e-12)


def test_gini_of_a_large_uniform_sample_is_one_third():
    rng = np.random.default_rng(11)
    assert gini(rng.random(200_000)) == pytest.approx(1 / 3, abs=0.003)


def test_gini_ignores_order_and_scale_and_works_per_row():
    rng = np.random.default_rng(3)
    rows = rng.exponential(size=(4, 50))
    per_row = gini(rows, axis=1)
    assert per_row.shape == (4,)
    for r, g in zip(rows, per_row, strict=True):
        assert gini(rng.permutation(r) * 7.5) == pytest.approx(g, rel=1e-12)
    # Exponential samples: Gini 1/2 in the limit.
    assert per_row.mean() == pytest.approx(0.5, abs=0.1)


def test_gini_by_the_mean_absolute_difference():
    """G = sum_ij |x_i - x_j| / (2 n^2 mean), the textbook definition."""
    x = np.random.default_rng(8).random(40)
    g = np.abs(x[:, None] - x[None, :]).sum() / (2 * x.size ** 2 * x.mean())
    assert gini(x) == pytest.approx(g, rel=1e-12)


def test_gini_of_all_zero_is_zero_and_negative_values_are_refused():
    assert gini(np.zeros(5)) == 0.0
    with pytest.raises(ValueError, match="non-negative"):
        gini([1.0, -0.5])


def test_slope_fit_is_exact_on_a_power_law():
    x = np.logspace(-8, 1, 15)
    fit = loglog_fit(x, 2.5 * x ** 0.8)
    assert fit.slope == pytest.approx(0.8, abs=1e-12)
    assert fit.intercept == pytest.approx(np.log(2.5), abs=1e-10)
    assert fit.r2 == pytest.approx(1.0) and fit.slope_se < 1e-10 and fit.points == 15
    np.testing.assert_allclose(fit.predict(x), 2.5 * x ** 0.8, rtol=1e-9)


def _noisy_fit(seed, slope=0.8, sigma=0.3):
    rng = np.random.default_rng(seed)
    x = np.logspace(-8, 1, 15)
    y = 0.1 * x ** slope * np.exp(rng.normal(scale=sigma, size=x.size))
    return loglog_fit(x, y)


def test_slope_fit_recovers_a_noisy_slope_within_its_standard_error():
    fit = _noisy_fit(5)
    assert 0 < fit.slope_se < 0.05
    assert abs(fit.slope - 0.8) < 3 * fit.slope_se, fit


def test_slope_standard_error_is_calibrated():
    """About 95 % of fits land within 2.16 standard errors (t, 13 degrees of freedom)."""
    fits = [_noisy_fit(seed) for seed in range(300)]
    inside = np.mean([abs(f.slope - 0.8) < 2.16 * f.slope_se for f in fits])
    assert 0.91 <= inside <= 0.99
    # The spread of the slopes matches the typical standard error.
    assert np.std([f.slope for f in fits]) == pytest.approx(
        np.mean([f.slope_se for f in fits]), rel=0.2)


def test_slope_fit_refuses_non_positive_values():
    with pytest.raises(ValueError, match="positive"):
        loglog_fit([1, 2, 3], [1, 0, 2])


def test_mean_std_uses_the_sample_std_and_zero_for_one_trial():
    m, s = mean_std([[1.0, 2.0], [3.0, 6.0]])
    np.testing.assert_allclose(m, [2.0, 4.0])
    np.testing.assert_allclose(s, [np.sqrt(2), np.sqrt(8)])
    m, s = mean_std([[1.0, 2.0]])
    np.testing.assert_array_equal(s, [0.0, 0.0])
