"""Regression metrics in log10(GPa) and in GPa."""

from __future__ import annotations

import numpy as np

METRICS = ("mae", "rmse", "r2", "max_error")


def regression_metrics(true: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """MAE, RMSE, R^2 and max absolute error of 1-D arrays; NaN entries of ``true`` ignored."""
    mask = np.isfinite(true)
    true, pred = true[mask], pred[mask]
    if len(true) == 0:
        return {name: float("nan") for name in METRICS}
    error = pred - true
    total = np.sum((true - true.mean()) ** 2)
    return {
        "mae": float(np.mean(np.abs(error))),
        "rmse": float(np.sqrt(np.mean(error**2))),
        "r2": float(1.0 - np.sum(error**2) / total) if total > 0 else float("nan"),
        "max_error": float(np.max(np.abs(error))),
    }


def modulus_metrics(true_log10: np.ndarray, pred_log10: np.ndarray) -> dict[str, float]:
    """Metrics both in log10(GPa) (``*_log10``) and in GPa (``*_gpa``)."""
    in_log = regression_metrics(true_log10, pred_log10)
    in_gpa = regression_metrics(10.0**true_log10, 10.0**pred_log10)
    return {
        **{f"{k}_log10": v for k, v in in_log.items()},
        **{f"{k}_gpa": v for k, v in in_gpa.items()},
    }
