"""The report of a ``zoo benchmark`` folder, written from its finished fold runs.

Files (beside the fold folders)::

    predictions.csv        every test prediction: id, mbid, fold, target, true and predicted
                           log10 GPa (the mean over the fold's seeds), their spread
    results.json.gz        the matbench package's results format (zoo.protocol)
    summary.json           per target: each fold's scores and their mean, std, min and max
    comparison.csv         the zoo model against each leaderboard model on the same entries
    report.md              the two tables as text (also printed)
    parity-<target>.png    pooled parity plot, coloured by fold; parity-<target>-fold<k>.png
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from zoo import names
from zoo.files import atomic_write
from zoo.protocol import TASK_OF_TARGET, FoldRecord, mbid, results_document, write_results

PREDICTIONS_FILE = "predictions.csv"
SUMMARY_FILE = "summary.json"
COMPARISON_FILE = "comparison.csv"
REPORT_FILE = "report.md"
RESULTS_FILE = "results.json.gz"
SCORES = ("mae_log10", "rmse_log10", "max_error_log10", "mae_gpa", "r2_gpa")
LEADERBOARD_COLUMNS = {"shear": ("log_gvrh", "log10(G_VRH)"), "bulk": ("log_kvrh", "log10(K_VRH)")}
"""zoo target -> (stem of its leaderboard predictions file, the file's target column)."""


@dataclass
class Report:
    folder: Path
    summary: dict
    comparison: pd.DataFrame
    text: str


def test_predictions(runs: list, table) -> pd.DataFrame:
    """One row per fold model, target and test entry: fold, seed, id, mbid, target,
    true_log10, pred_log10."""
    from zoo.compare import read_run_predictions

    row_of = dict(zip(table.ids, table.rows.tolist(), strict=True))
    parts = []
    for run in runs:
        for target in run.targets:
            tested = read_run_predictions(run.folder, target)
            parts.append(
                pd.DataFrame(
                    {
                        "fold": run.fold,
                        "seed": run.seed,
                        "id": tested.ids,
                        "mbid": [mbid(TASK_OF_TARGET[target], row_of[i]) for i in tested.ids],
                        "target": target,
                        "true_log10": tested.true,
                        "pred_log10": tested.predicted,
                    }
                )
            )
    return pd.concat(parts, ignore_index=True)


def combine_seeds(per_model: pd.DataFrame) -> pd.DataFrame:
    """The fold's prediction of each entry and target: the mean over its seeds (log10 GPa),
    their standard deviation (NaN with one seed) and the number of models."""
    keys = ["target", "fold", "id", "mbid", "true_log10"]
    grouped = per_model.groupby(keys, sort=True)["pred_log10"]
    combined = grouped.agg(["mean", "std", "count"]).reset_index()
    return combined.rename(columns={"mean": "pred_log10", "std": "std_log10", "count": "models"})


def fold_scores(frame: pd.DataFrame) -> dict:
    """Scores of one target's test predictions (log10 GPa and GPa)."""
    from zoo.metrics import modulus_metrics

    metrics = modulus_metrics(frame["true_log10"].to_numpy(), frame["pred_log10"].to_numpy())
    return {name: metrics[name] for name in SCORES} | {"entries": len(frame)}


def summarise(combined: pd.DataFrame, per_model: pd.DataFrame, minutes: dict) -> dict:
    """Per target: each fold's scores, their mean/std/min/max over folds, the pooled scores
    (every entry once), the mean single-model MAE and the training minutes per fold."""
    summary = {}
    for target, frame in combined.groupby("target"):
        folds = {int(fold): fold_scores(part) for fold, part in frame.groupby("fold")}
        over = {
            name: {
                "mean": float(np.mean([f[name] for f in folds.values()])),
                "std": float(np.std([f[name] for f in folds.values()], ddof=1))
                if len(folds) > 1
                else None,  # one fold has no spread (null in summary.json, "-" in tables)
                "min": float(min(f[name] for f in folds.values())),
                "max": float(max(f[name] for f in folds.values())),
            }
            for name in SCORES
        }
        single = per_model[per_model["target"] == target]
        single_mae = single.assign(error=(single.pred_log10 - single.true_log10).abs())
        summary[target] = {
            "folds": folds,
            "over_folds": over,
            "pooled": fold_scores(frame),
            "single_model_mae_log10": float(single_mae.groupby("seed")["error"].mean().mean()),
            "minutes_per_fold": minutes.get(target, float("nan")),
        }
    return summary


def leaderboard_comparison(combined: pd.DataFrame, folder: Path | None) -> pd.DataFrame:
    """The zoo model against every model of the leaderboard files in ``folder``, on the
    entries both predicted: MAE of each (log10 GPa) and the relative change of zoo's MAE with
    a paired bootstrap 95% interval. A leaderboard fold that differs from ours is an error."""
    from zoo.metrics import relative_mae_change

    rows = []
    for target, ours in combined.groupby("target"):
        stem, column = LEADERBOARD_COLUMNS[target]
        path = folder / f"leaderboard_predictions_{stem}.csv" if folder else None
        if path is None or not path.exists():
            continue
        board = pd.read_csv(path).merge(ours, on="mbid", how="inner")
        moved = board[board["test_fold"] != board["fold"]]
        if len(moved):
            raise ValueError(f"{path}: {moved['mbid'].iloc[0]} is in another test fold there")
        models = [
            c for c in pd.read_csv(path, nrows=0).columns if c not in ("mbid", "test_fold", column)
        ]
        true = board[column].to_numpy()
        for model in models:
            change = relative_mae_change(
                true, board[model].to_numpy(), board["pred_log10"].to_numpy()
            )
            rows.append(
                {
                    "target": target,
                    "model": model,
                    "entries": len(board),
                    "model_mae_log10": float(np.abs(board[model] - true).mean()),
                    "zoo_mae_log10": float(np.abs(board["pred_log10"] - true).mean()),
                    "change": change.change,
                    "change_low": change.low,
                    "change_high": change.high,
                }
            )
    return pd.DataFrame(rows)


def leaderboard_folder(spec, sources: list[str]) -> Path | None:
    """``--leaderboard``, else the data files' folder when it holds leaderboard files."""
    if spec.leaderboard:
        return Path(spec.leaderboard)
    beside = Path(sources[0]).parent
    return beside if any(beside.glob("leaderboard_predictions_*.csv")) else None


def matbench_records(combined: pd.DataFrame, spec) -> dict:
    """Per Matbench task and fold, the test predictions as :class:`zoo.protocol.FoldRecord`
    (with the seeds' spread as the uncertainty when there are several)."""
    records: dict = {}
    for target, frame in combined.groupby("target"):
        task = TASK_OF_TARGET[target]
        for fold, part in frame.groupby("fold"):
            spread = part["std_log10"].to_numpy()
            records.setdefault(task, {})[int(fold)] = FoldRecord(
                ids=part["mbid"].tolist(),
                true=part["true_log10"].to_numpy(),
                predicted=part["pred_log10"].to_numpy(),
                std=spread if np.isfinite(spread).all() else None,
                parameters={"model": spec.model, "seeds": spec.seeds, "fold": int(fold)},
            )
    return records


def text_tables(spec, summary: dict, comparison: pd.DataFrame) -> str:
    """The summary and the comparison as Markdown tables."""
    lines = [
        f"zoo benchmark: {spec.model} on {spec.task}, folds {spec.folds}, "
        f"{spec.seeds} model(s) per fold; MAE in log10 GPa unless marked",
        "",
        "| target | fold | entries | MAE | RMSE | max error | MAE (GPa) | R² (GPa) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for target, part in summary.items():
        for fold, s in part["folds"].items():
            lines.append(
                f"| {target} | {fold} | {s['entries']} | {s['mae_log10']:.4f} | "
                f"{s['rmse_log10']:.4f} | {s['max_error_log10']:.3f} | {s['mae_gpa']:.2f} | "
                f"{s['r2_gpa']:.3f} |"
            )
        o = part["over_folds"]
        std = o["mae_log10"]["std"]
        lines.append(
            f"| {target} | mean ± std | | {o['mae_log10']['mean']:.4f} ± "
            f"{'-' if std is None else f'{std:.4f}'} | {o['rmse_log10']['mean']:.4f} | "
            f"{o['max_error_log10']['mean']:.3f} | {o['mae_gpa']['mean']:.2f} | "
            f"{o['r2_gpa']['mean']:.3f} |"
        )
        lines.append(
            f"| {target} | min – max | | {o['mae_log10']['min']:.4f} – "
            f"{o['mae_log10']['max']:.4f} | | | | |"
        )
    for target, part in summary.items():
        lines.append(
            f"\n{target}: pooled MAE {part['pooled']['mae_log10']:.4f} on "
            f"{part['pooled']['entries']} entries; single models "
            f"{part['single_model_mae_log10']:.4f}; "
            f"{part['minutes_per_fold']:.1f} training minutes per fold"
        )
    if len(comparison):
        lines += [
            "",
            "Against the leaderboard on the same entries (their own test-fold predictions; "
            "change = zoo MAE / model MAE − 1, paired bootstrap 95% interval):",
            "",
            "| target | model | entries | model MAE | zoo MAE | change | interval |",
            "| --- | --- | ---: | ---: | ---: | ---: | --- |",
        ]
        for row in comparison.itertuples():
            lines.append(
                f"| {row.target} | {row.model} | {row.entries} | {row.model_mae_log10:.4f} | "
                f"{row.zoo_mae_log10:.4f} | {100 * row.change:+.1f}% | "
                f"{100 * row.change_low:+.1f}% to {100 * row.change_high:+.1f}% |"
            )
    return "\n".join(lines) + "\n"


def fold_minutes(runs: list) -> dict:
    """Training minutes per fold and target (a model trained on both counts for both),
    summed over seeds and averaged over folds."""
    from zoo.training import TrainResult

    per_fold: dict = {}
    for run in runs:
        seconds = TrainResult.from_folder(run.folder).metrics[names.TRAIN_SECONDS]
        for target in run.targets:
            per_fold.setdefault(target, {}).setdefault(run.fold, 0.0)
            per_fold[target][run.fold] += seconds / 60
    return {target: float(np.mean(list(f.values()))) for target, f in per_fold.items()}


def write_report(spec, table, runs: list, parents: dict, log=print) -> Report:
    """Write every report file of the benchmark folder and close its MLflow parent runs."""
    folder = spec.folder()
    per_model = test_predictions(runs, table)
    combined = combine_seeds(per_model)
    summary = summarise(combined, per_model, fold_minutes(runs))
    comparison = leaderboard_comparison(combined, leaderboard_folder(spec, table.sources))
    text = text_tables(spec, summary, comparison)
    _write_csv(folder / PREDICTIONS_FILE, combined)
    _write_csv(folder / COMPARISON_FILE, comparison)
    with atomic_write(folder / SUMMARY_FILE) as partial:
        partial.write_text(json.dumps(summary, indent=1))
    with atomic_write(folder / REPORT_FILE) as partial:
        partial.write_text(text)
    metadata = {"zoo_model": spec.model, "entries": len(table.rows), "sources": table.sources}
    write_results(
        folder / RESULTS_FILE, results_document(matbench_records(combined, spec), metadata)
    )
    pictures = parity_pictures(combined, folder)
    close_parents(
        parents, summary, [folder / f for f in (REPORT_FILE, SUMMARY_FILE, RESULTS_FILE)] + pictures
    )
    log(f"report: {folder / REPORT_FILE}, {folder / RESULTS_FILE}")
    return Report(folder, summary, comparison, text)


def _write_csv(path: Path, frame: pd.DataFrame) -> None:
    with atomic_write(path) as partial:
        frame.to_csv(partial, index=False)


def parity_pictures(combined: pd.DataFrame, folder: Path) -> list[Path]:
    """Pooled parity plot per target (coloured by fold) and one per fold."""
    from zoo.plots import fold_parity_plot

    paths = []
    for target, frame in combined.groupby("target"):
        paths.append(fold_parity_plot(frame, target, folder / f"parity-{target}.png"))
        for fold, part in frame.groupby("fold"):
            paths.append(fold_parity_plot(part, target, folder / f"parity-{target}-fold{fold}.png"))
    return paths


def close_parents(parents: dict, summary: dict, artifacts: list[Path]) -> None:
    """Log the summary as each parent run's metrics (mean over folds, per target) and end it."""
    from mlflow import MlflowClient

    client = MlflowClient()
    for targets, run_id in parents.items():
        metrics = {}
        for target in targets:
            for name, stats in summary[target]["over_folds"].items():
                metrics[f"test_{target}_{name}"] = stats["mean"]
                metrics[f"test_{target}_{name}_std"] = stats["std"]
            metrics[f"test_{target}_pooled_mae_log10"] = summary[target]["pooled"]["mae_log10"]
        for key, value in metrics.items():
            if value is not None and np.isfinite(value):
                client.log_metric(run_id, key, value)
        for path in artifacts:
            client.log_artifact(run_id, str(path))
        client.set_terminated(run_id, "FINISHED")
