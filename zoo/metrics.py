"""Regression metrics in log10(GPa) and in GPa."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

METRICS = ("mae", "rmse", "r2", "max_error")


def regression_metrics(true: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """MAE, RMSE, R^2 and max absolute error of 1-D arrays; NaN entries of ``true`` ignored."""
    from sklearn.metrics import (
        max_error,
        mean_absolute_error,
        r2_score,
        root_mean_squared_error,
    )

    mask = np.isfinite(true)
    true, pred = true[mask], pred[mask]
    if len(true) == 0:
        return {name: float("nan") for name in METRICS}
    constant = np.all(true == true[0])  # R² is undefined (scikit-learn would say 0 or 1)
    return {
        "mae": float(mean_absolute_error(true, pred)),
        "rmse": float(root_mean_squared_error(true, pred)),
        "r2": float("nan") if constant else float(r2_score(true, pred)),
        "max_error": float(max_error(true, pred)),
    }


def modulus_metrics(true_log10: np.ndarray, pred_log10: np.ndarray) -> dict[str, float]:
    """Metrics both in log10(GPa) (``mae_log10``...) and in GPa (``mae_gpa``...)."""
    in_log = regression_metrics(true_log10, pred_log10)
    in_gpa = regression_metrics(10.0**true_log10, 10.0**pred_log10)
    return {
        **{f"{k}_log10": v for k, v in in_log.items()},
        **{f"{k}_gpa": v for k, v in in_gpa.items()},
    }


@dataclass(frozen=True)
class MaeChange:
    """Relative change of the mean absolute error of one model against another on the same
    crystals, with a bootstrap percentile interval (``level``, e.g. 0.95)."""

    change: float
    low: float
    high: float
    level: float

    def interval(self) -> str:
        """``95% interval +0.6% to +3.5%``."""
        return f"{100 * self.level:.0f}% interval {100 * self.low:+.1f}% to {100 * self.high:+.1f}%"

    def describe(self) -> str:
        """``+2.1% (95% interval +0.6% to +3.5%)``."""
        return f"{100 * self.change:+.1f}% ({self.interval()})"


def relative_mae_change(
    true: np.ndarray,
    base: np.ndarray,
    other: np.ndarray,
    *,
    resamples: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> MaeChange:
    """How much larger ``other``'s MAE is than ``base``'s, ``MAE_other / MAE_base - 1``, with
    the uncertainty that comes both from the finite test set and from the training seeds.

    Args:
        true: ``(N,)`` true values of N test crystals (any unit; log10 GPa in the benchmarks).
        base, other: ``(S_base, N)`` and ``(S_other, N)`` predictions of the same N crystals,
            one row per training seed. The MAE of a model is the mean over its seeds.
        resamples: bootstrap resamples. Each draws N crystals with replacement (the same draw
            for both models: the comparison is paired) and, independently for each model, its
            seeds with replacement, so a difference that depends on a few crystals or a lucky
            seed gets a wide interval.
        level: coverage of the percentile interval.
        seed: of the resampling, so the interval is reproducible.
    """
    true = np.asarray(true, dtype=float)
    base, other = np.atleast_2d(base).astype(float), np.atleast_2d(other).astype(float)
    if true.ndim != 1 or base.shape[1] != len(true) or other.shape[1] != len(true):
        raise ValueError(
            f"predictions {base.shape} and {other.shape} do not match {len(true)} true values"
        )
    if not (np.isfinite(true).all() and np.isfinite(base).all() and np.isfinite(other).all()):
        raise ValueError("true values and predictions must be finite")
    base_errors, other_errors = np.abs(base - true), np.abs(other - true)
    change = float(other_errors.mean() / base_errors.mean() - 1.0)
    generator = np.random.default_rng(seed)
    changes = np.empty(resamples)
    for index in range(resamples):
        crystals = generator.integers(0, len(true), len(true))
        base_seeds = generator.integers(0, len(base), len(base))
        other_seeds = generator.integers(0, len(other), len(other))
        base_mae = base_errors[np.ix_(base_seeds, crystals)].mean()
        other_mae = other_errors[np.ix_(other_seeds, crystals)].mean()
        changes[index] = other_mae / base_mae - 1.0
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(changes, [tail, 100 - tail])
    return MaeChange(change=change, low=float(low), high=float(high), level=level)
