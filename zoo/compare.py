"""Compare two groups of training runs (e.g. two variants, several seeds each) on the crystals
they were all tested on, from the ``predictions.csv`` of each run folder."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from zoo import names
from zoo.metrics import MaeChange, relative_mae_change

PREDICTIONS_FILE = "predictions.csv"
"""Written by :func:`zoo.training.train` into every run folder, read here."""


@dataclass(frozen=True)
class RunPredictions:
    """One run's predictions of one target on one split, sorted by id; log10 GPa, ``(N,)``."""

    run: Path
    ids: tuple[str, ...]
    true: np.ndarray
    predicted: np.ndarray


@dataclass(frozen=True)
class Comparison:
    """``other`` against ``base`` on one target: MAE (log10 GPa, mean over each group's runs)
    and the relative change with its bootstrap interval."""

    target: str
    crystals: int
    base_mae: float
    other_mae: float
    change: MaeChange


def run_targets(run: str | Path) -> list[str]:
    """The targets a run folder was trained on (its saved config)."""
    import yaml

    from zoo.run_folder import CONFIG_FILE

    _predictions_path(run)  # a folder without predictions is not a finished run
    config = Path(run) / CONFIG_FILE
    if not config.exists():
        raise ValueError(f"{run}: not a run folder (no {CONFIG_FILE})")
    return list(yaml.safe_load(config.read_text()).get("targets", ["shear"]))


def read_run_predictions(run: str | Path, target: str, split: str = "test") -> RunPredictions:
    """Read a run folder's predictions of ``target`` on ``split`` (train, val or test)."""
    path = _predictions_path(run)
    frame = pd.read_csv(path)
    if names.pred_gpa(target) not in frame.columns:
        raise ValueError(f"{path}: no predictions of {target} (the run has {run_targets(run)})")
    frame = frame[(frame[names.SPLIT] == split) & frame[names.true_gpa(target)].notna()]
    if frame.empty:
        raise ValueError(f"{path}: no {split} crystals with a {target} modulus")
    frame = frame.sort_values(names.ID)
    return RunPredictions(
        run=Path(run),
        ids=tuple(frame[names.ID].astype(str)),
        true=np.log10(frame[names.true_gpa(target)].to_numpy(dtype=float)),
        predicted=np.log10(frame[names.pred_gpa(target)].to_numpy(dtype=float)),
    )


def compare_runs(
    base: list[str | Path],
    other: list[str | Path],
    targets: list[str] | None = None,
    split: str = "test",
    resamples: int = 2000,
) -> list[Comparison]:
    """Compare the runs of ``other`` with those of ``base`` (each a list of run folders, one
    per seed) on every target that all of them predict, or on ``targets``. All runs must have
    been tested on the same crystals (the same split file or split seed)."""
    if not base or not other:
        raise ValueError("both groups need at least one run folder")
    if targets is None:
        shared = [set(run_targets(run)) for run in [*base, *other]]
        targets = sorted(set.intersection(*shared))
        if not targets:
            raise ValueError("the runs have no target in common")
    comparisons = []
    for target in targets:
        groups = [
            [read_run_predictions(run, target, split) for run in runs] for runs in (base, other)
        ]
        reference = groups[0][0]
        for run in (run for runs in groups for run in runs):
            if run.ids != reference.ids:
                differ = len(set(run.ids) ^ set(reference.ids))
                raise ValueError(
                    f"{run.run} and {reference.run} were tested on different {split} crystals "
                    f"({differ} not in both): compare runs of the same split"
                )
        base_predictions, other_predictions = (
            np.stack([run.predicted for run in runs]) for runs in groups
        )
        change = relative_mae_change(
            reference.true, base_predictions, other_predictions, resamples=resamples
        )
        comparisons.append(
            Comparison(
                target=target,
                crystals=len(reference.ids),
                base_mae=float(np.abs(base_predictions - reference.true).mean()),
                other_mae=float(np.abs(other_predictions - reference.true).mean()),
                change=change,
            )
        )
    return comparisons


def _predictions_path(run: str | Path) -> Path:
    path = Path(run) / PREDICTIONS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{run}: no {PREDICTIONS_FILE} (not a finished zoo run folder)")
    return path
