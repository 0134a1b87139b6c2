"""Regression metrics and the paired bootstrap comparison of two models (zoo.metrics)."""

import numpy as np
import pytest

from zoo.metrics import modulus_metrics, regression_metrics, relative_mae_change


def test_regression_metrics_by_hand():
    # errors 0.5, 0, -1, 0 (the NaN entry is ignored): MAE 1.5/4, RMSE sqrt(1.25/4),
    # R^2 = 1 - 1.25 / 5 (total sum of squares of 1, 2, 3, 4 about 2.5 is 5), max 1
    true = np.array([1.0, 2.0, 3.0, np.nan, 4.0])
    pred = np.array([1.5, 2.0, 2.0, 7.0, 4.0])
    metrics = regression_metrics(true, pred)
    assert metrics["mae"] == pytest.approx(0.375)
    assert metrics["rmse"] == pytest.approx(np.sqrt(1.25 / 4))
    assert metrics["r2"] == pytest.approx(0.75)
    assert metrics["max_error"] == pytest.approx(1.0)


def test_modulus_metrics_in_gpa():
    # log10 values 1 and 2 are 10 and 100 GPa; predictions 10 and 10**2.1 GPa
    metrics = modulus_metrics(np.array([1.0, 2.0]), np.array([1.0, 2.1]))
    assert metrics["mae_log10"] == pytest.approx(0.05)
    assert metrics["mae_gpa"] == pytest.approx((10**2.1 - 100) / 2)


def test_identical_models_change_nothing():
    rng = np.random.default_rng(0)
    true = rng.normal(size=40)
    base = true + rng.normal(scale=0.1, size=(1, 40))
    result = relative_mae_change(true, base, base.copy(), resamples=200)
    assert (result.change, result.low, result.high) == (0.0, 0.0, 0.0)
    # three seeds of one model compared with themselves: the seeds are resampled for each side
    # independently, so the interval has a width, and it is centred on no change
    seeds = true + rng.normal(scale=0.1, size=(3, 40))
    result = relative_mae_change(true, seeds, seeds.copy(), resamples=500)
    assert result.change == 0.0 and result.low < 0.0 < result.high


def test_uniformly_larger_errors_give_an_exact_change():
    # one seed each, every error 1.1 times larger: every resample of the crystals gives +10%
    rng = np.random.default_rng(1)
    true = rng.normal(size=60)
    base = true + rng.normal(scale=0.1, size=(1, 60))
    other = true + 1.1 * (base - true)
    result = relative_mae_change(true, base, other, resamples=300)
    assert result.change == pytest.approx(0.1)
    assert result.low == pytest.approx(0.1) and result.high == pytest.approx(0.1)
    assert result.describe() == "+10.0% (95% interval +10.0% to +10.0%)"


def test_a_difference_carried_by_one_crystal_is_not_trusted():
    # the models differ on crystal 0 only; about 37% of the resamples leave it out and see no
    # difference, so the interval reaches down to exactly 0
    true = np.zeros(50)
    base = np.full((1, 50), 0.1)
    other = base.copy()
    other[0, 0] = 2.0
    result = relative_mae_change(true, base, other, resamples=1000)
    assert result.change == pytest.approx(1.9 / 5.0)
    assert result.low == 0.0
    assert result.high > result.change


def test_seed_to_seed_spread_widens_the_interval():
    # same crystals, same mean error; in the second comparison one of the other model's seeds
    # is much worse and the others better by as much, so the mean is unchanged but the interval
    # must widen, since a resample of the seeds may draw the bad one several times
    rng = np.random.default_rng(2)
    true = rng.normal(size=100)
    errors = np.abs(rng.normal(scale=0.1, size=100))
    base = np.stack([true + errors] * 4)
    steady = base.copy()
    spread = np.stack([true + errors * f for f in (1.6, 0.8, 0.8, 0.8)])
    narrow = relative_mae_change(true, base, steady, resamples=500)
    wide = relative_mae_change(true, base, spread, resamples=500)
    assert wide.change == pytest.approx(narrow.change, abs=1e-12)
    assert wide.high - wide.low > narrow.high - narrow.low + 0.1


def test_reproducible_and_checked():
    rng = np.random.default_rng(3)
    true = rng.normal(size=30)
    base = true + rng.normal(scale=0.1, size=(2, 30))
    other = true + rng.normal(scale=0.1, size=(2, 30))
    assert relative_mae_change(true, base, other) == relative_mae_change(true, base, other)
    with pytest.raises(ValueError, match=r"\(2, 29\)"):
        relative_mae_change(true, base, other[:, :29])
    broken = other.copy()
    broken[1, 4] = np.nan
    with pytest.raises(ValueError, match="finite"):
        relative_mae_change(true, base, broken)
