"""Every metric and output-column name, in one place (as :mod:`zoo.keys` is for graph fields).

Writers (training, prediction, MLflow logging) and readers (``zoo compare``, tuning, the CLI
tables) build names with these functions, never by hand, and never parse a name back to learn
a fact: the facts (a run's targets, its splits) are stored where they belong (the run's
``config.yaml``, the bundle).

Units: ``log10`` is log10 of the modulus in GPa; ``gpa`` is GPa.
"""

from __future__ import annotations

SPLITS = ("train", "val", "test")
"""Data splits, in the order they are reported."""

UNITS = ("log10", "gpa")
METRICS = ("mae", "rmse", "r2", "max_error")
"""Regression metrics of :func:`zoo.metrics.regression_metrics`."""

EPOCH_PREFIX = "epoch/"
"""MLflow prefix of per-epoch curves (``epoch/val_shear_mae_log10``), kept apart from the final
metrics of the kept epoch's model (``val_shear_mae_log10``)."""

ID = "id"
SPLIT = "split"
ERROR = "error"
"""Output column: why a structure could not be predicted (empty when it was)."""

BEST_EPOCH = "best_epoch"
EPOCHS_RUN = "epochs_run"
TRAIN_SECONDS = "train_seconds"
"""Final metrics of a run that are not errors: the kept epoch (1-based), the number of epochs
trained and the whole run's training time in seconds."""


OBJECTIVE = "objective_val_mae_log10"
"""A tuning trial's run: the objective Optuna minimised (its best epoch's validation score)."""
BEST_OBJECTIVE = "best_val_mae_log10"
"""A study's parent run: the best trial's objective."""
STUDY_COUNTS = ("n_trials", "n_complete", "n_pruned", "n_failed", "pruned_fraction")
"""A study's parent run: its trials by state, and the share of finished trials pruned."""


def metric(target: str, name: str, unit: str) -> str:
    """``shear_mae_log10``: one metric of one target (float, in ``unit``)."""
    return f"{target}_{name}_{unit}"


def split_metric(split: str, target: str, name: str, unit: str) -> str:
    """``test_shear_mae_gpa``: a final metric of the kept model on one split."""
    return f"{split}_{metric(target, name, unit)}"


def epoch_mae(split: str, target: str) -> str:
    """``val_shear_mae_log10``: one epoch's MAE of one target on ``split`` (history column)."""
    return split_metric(split, target, "mae", "log10")


def score(split: str) -> str:
    """``val_mae_log10``: the one score of an epoch (``train_...`` in a train+val refit), from
    the per-target MAEs by ``TrainConfig.target_score``; what picks the kept epoch and what a
    tuning study minimises."""
    return f"{split}_mae_log10"


def true_gpa(target: str) -> str:
    """``shear_true_gpa``: predictions.csv, the reference modulus in GPa."""
    return f"{target}_true_gpa"


def pred_gpa(target: str) -> str:
    """``shear_pred_gpa``: predictions.csv, the predicted modulus in GPa."""
    return f"{target}_pred_gpa"


def gpa(target: str) -> str:
    """``shear_gpa``: prediction output, the predicted modulus in GPa."""
    return f"{target}_gpa"


def log10(target: str) -> str:
    """``shear_log10``: prediction output, log10 of the predicted modulus in GPa."""
    return f"{target}_log10"


def prediction_columns(targets) -> list[str]:
    """The columns of a prediction table: id, then GPa and log10 per target, then error."""
    return [ID, *(c for t in targets for c in (gpa(t), log10(t))), ERROR]
