"""How far an ensemble's spread can be trusted, measured on out-of-fold predictions.

Input: a ``zoo benchmark`` folder run with ``--seeds K`` (K >= 2): in each official fold, K
models differ only in their seed, so every test entry has a spread from models that never saw
it, and every inner-validation entry too. Measured on the test folds:

- the Spearman rank correlation between the spread and the actual absolute error;
- the fraction of entries inside the ±1σ and ±2σ intervals (68.3% and 95.4% if the spread were
  the standard deviation of a normal error);
- a calibration curve: expected against observed coverage of central intervals.

If the raw spread's ±1σ coverage on the *validation* entries is off by more than
:data:`TOLERANCE`, a scale ``s`` is fitted there, on validation data only (:func:`fit_scale`),
and the test figures are given for both.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

TOLERANCE = 0.05
"""Largest acceptable gap between the ±1σ coverage on validation and 68.3%."""
NORMAL_1SIGMA, NORMAL_2SIGMA = 0.6827, 0.9545


def spread_table(benchmark: str | Path, split: str) -> pd.DataFrame:
    """Per fold, target and entry of ``split`` (val or test): true and mean log10 GPa, the
    standard deviation over the fold's seeds, and the number of models."""
    from zoo.compare import read_run_predictions, run_targets

    parts = []
    for fold_dir in sorted(Path(benchmark).glob("fold[0-9]")):
        runs = sorted(p for p in fold_dir.iterdir() if (p / "predictions.csv").exists())
        groups: dict[str, list[Path]] = {}
        for run in runs:
            groups.setdefault(run.name.rsplit("-seed", 1)[0], []).append(run)
        for members in groups.values():
            for target in run_targets(members[0]):
                read = [read_run_predictions(run, target, split) for run in members]
                stacked = np.stack([r.predicted for r in read])
                parts.append(
                    pd.DataFrame(
                        {
                            "fold": int(fold_dir.name[4:]),
                            "target": target,
                            "id": read[0].ids,
                            "true_log10": read[0].true,
                            "mean_log10": stacked.mean(axis=0),
                            "std_log10": stacked.std(axis=0, ddof=1) if len(read) > 1 else np.nan,
                            "models": len(read),
                        }
                    )
                )
    if not parts:
        raise ValueError(f"{benchmark}: no finished fold runs (fold*/<group>-seed*/)")
    table = pd.concat(parts, ignore_index=True)
    if (table["models"] < 2).any():
        raise ValueError(f"{benchmark}: calibration needs at least two seeds per fold (--seeds 2)")
    return table


def _z(frame: pd.DataFrame, scale: float) -> np.ndarray:
    error = np.abs(frame["mean_log10"] - frame["true_log10"]).to_numpy()
    spread = np.maximum(frame["std_log10"].to_numpy() * scale, 1e-12)
    return error / spread


def coverage(frame: pd.DataFrame, scale: float, sigmas: float) -> float:
    """Fraction of entries whose error is within ``sigmas`` times the scaled spread."""
    return float(np.mean(_z(frame, scale) <= sigmas))


def fit_scale(validation: pd.DataFrame) -> float:
    """``s`` such that 68.3% of the validation entries lie within ±``s σ``: the 68.3% quantile
    of ``|error| / σ``. A quantile, not ``sqrt(mean((error / σ)²))``: ensemble errors are
    heavy-tailed (a few entries far off with a small spread), and the root mean square, driven
    by them, made every interval far too wide (±1σ covered 89-92% of test entries)."""
    return float(np.quantile(_z(validation, 1.0), NORMAL_1SIGMA))


def calibrate_target(validation: pd.DataFrame, test: pd.DataFrame) -> dict:
    """The record of one target: the scale chosen on validation and the test figures."""
    from scipy.stats import spearmanr

    raw_val = coverage(validation, 1.0, 1.0)
    fitted = fit_scale(validation)
    scale = fitted if abs(raw_val - NORMAL_1SIGMA) > TOLERANCE else 1.0
    error = np.abs(test["mean_log10"] - test["true_log10"])
    return {
        "validation_entries": len(validation),
        "test_entries": len(test),
        "validation_coverage_1sigma_raw": raw_val,
        "fitted_scale": fitted,
        "scale": scale,
        "spearman_spread_error": float(spearmanr(test["std_log10"], error).statistic),
        "test_coverage_1sigma_raw": coverage(test, 1.0, 1.0),
        "test_coverage_2sigma_raw": coverage(test, 1.0, 2.0),
        "test_coverage_1sigma": coverage(test, scale, 1.0),
        "test_coverage_2sigma": coverage(test, scale, 2.0),
        "test_mae_log10": float(error.mean()),
        "mean_spread_log10": float(test["std_log10"].mean() * scale),
    }


def calibrate(benchmark: str | Path, picture: str | Path | None = None) -> dict:
    """Per target, :func:`calibrate_target` on a benchmark folder (and the calibration plot
    written to ``picture``)."""
    validation, test = spread_table(benchmark, "val"), spread_table(benchmark, "test")
    record = {
        target: calibrate_target(validation[validation.target == target], part)
        for target, part in test.groupby("target")
    }
    if picture is not None:
        calibration_plot(test, {t: r["scale"] for t, r in record.items()}, Path(picture))
    return {"source": str(benchmark), "models_per_fold": int(test["models"].min()), **record}


def calibration_plot(test: pd.DataFrame, scales: dict, path: Path) -> Path:
    """Observed against expected coverage of central normal intervals, per target, for the
    raw spread and (when a scale was chosen) the scaled one."""
    import matplotlib.pyplot as plt
    from scipy.stats import norm

    from zoo.plots import _save

    expected = np.linspace(0.02, 0.98, 49)
    widths = norm.ppf((1 + expected) / 2)
    fig, ax = plt.subplots(figsize=(5, 5))
    for target, frame in test.groupby("target"):
        z = _z(frame, 1.0)
        line = ax.plot(expected, [np.mean(z <= w) for w in widths], label=f"{target}, raw spread")
        if scales[target] != 1.0:
            scaled = z / scales[target]
            label = f"{target}, spread × {scales[target]:.2f}"
            observed = [np.mean(scaled <= w) for w in widths]
            ax.plot(expected, observed, ls="--", color=line[0].get_color(), label=label)
    ax.plot([0, 1], [0, 1], "k:", lw=1, label="perfect calibration")
    ax.set(xlim=(0, 1), ylim=(0, 1))
    ax.set_xlabel("expected coverage of the central interval (normal errors)")
    ax.set_ylabel("observed fraction of test entries inside")
    models = int(test["models"].min())
    entries = test.groupby("target").size().min()
    ax.set_title(
        f"spread of {models}-seed ensembles\n{entries} out-of-fold test entries per target"
    )
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    _save(fig, path)
    return path
