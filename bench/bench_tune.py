"""Benchmark of issue 4: a 20-trial Optuna study of cgcnn per target on the development split.

For each target, side by side:
- the untuned default (configs/cgcnn-zoo.yaml) trained on train (validation and test MAE) and
  refitted on train+val (test MAE): the fair comparison for the tuned refit;
- the study (``zoo tune ... --final``, median pruner, bundled search space): best validation MAE,
  trial counts, pruned fraction, wall time, the summed trial time; the best configuration refitted
  on train+val and tested once.

The two studies run at the same time, one core each (``--threads 1``); the defaults run after
them with two threads. Everything goes to ``bench/results/tune/`` (its own MLflow store and
study files, removed at the start so each run measures a fresh study).

    python bench/bench_tune.py                          # about 1.5 hours
    python bench/bench_tune.py --targets shear --trials 4 --epochs 5   # a quick check
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from _common import DEV_SET, DEV_SPLIT, RESULTS, ROOT, train_in_child

CONFIG = ROOT / "configs" / "cgcnn-zoo.yaml"
WORK = RESULTS / "tune"


def start_study(
    model: str, targets: list[str], trials: int, epochs: int | None, work: Path, seed: int = 0
) -> tuple[subprocess.Popen, float, object]:
    """Start ``zoo tune --final`` on one core in ``work``; study name ``bench-<model>[-target]``."""
    name = study_name(model, targets)
    command = [
        sys.executable,
        "-m",
        "zoo.cli",
        "tune",
        "--model",
        model,
        "--target",
        ",".join(targets),
        "--trials",
        str(trials),
        "--data",
        str(DEV_SET),
        "--split",
        str(DEV_SPLIT),
        "--study",
        name,
        "--threads",
        "1",
        "--final",
        "--seed",
        str(seed),
    ]
    if epochs:
        command += ["--epochs", str(epochs)]
    log = open(work / f"{name}.log", "w")  # noqa: SIM115 (closed by wait_for_study)
    print(f"started {name}: log in {log.name}", flush=True)
    return (
        subprocess.Popen(command, cwd=work, stdout=log, stderr=subprocess.STDOUT),
        time.perf_counter(),
        log,
    )


def wait_for_study(started_study) -> float:
    """Wait for a study started by :func:`start_study`; its wall time in minutes."""
    process, started, log = started_study
    if process.wait() != 0:
        raise SystemExit(f"a study failed; see {log.name}")
    log.close()
    return (time.perf_counter() - started) / 60


def study_name(model: str, targets: list[str]) -> str:
    return f"bench-{model}" if len(targets) > 1 else f"bench-{model}-{targets[0]}"


def study_figures(model: str, targets: list[str], work: Path) -> dict:
    """Trial counts, summed trial time, the best trial and its refit's test metrics."""
    import optuna

    from zoo.tuning.storage import open_storage

    name = study_name(model, targets)
    os.chdir(work)
    study = optuna.load_study(study_name=name, storage=open_storage(None, name))
    trials = study.get_trials(deepcopy=False)
    states = [t.state.name for t in trials]
    finished = states.count("COMPLETE") + states.count("PRUNED")
    metrics = json.loads((final_run(work, name) / "metrics.json").read_text())
    os.chdir(ROOT)
    figures = {
        "complete": states.count("COMPLETE"),
        "pruned": states.count("PRUNED"),
        "failed": states.count("FAIL"),
        "pruned_fraction": states.count("PRUNED") / finished,
        "trial_minutes_sum": sum(
            (t.datetime_complete - t.datetime_start).total_seconds()
            for t in trials
            if t.datetime_complete
        )
        / 60,
        "best_trial": study.best_trial.number,
        "best_params": study.best_trial.params,
        "val_mae_log10": study.best_value,
        "final_train_minutes": metrics["train_seconds"] / 60,
    }
    for target in targets:
        for metric in ("mae_log10", "mae_gpa"):
            figures[f"final_test_{target}_{metric}"] = metrics[f"test_{target}_{metric}"]
        figures[f"val_{target}_mae_log10"] = _best_trial_val(study, target)
    return figures


def final_run(work: Path, name: str) -> Path:
    """The run folder of study ``name``'s refit (``final-trial-*``) under ``work``."""
    return sorted((work / "runs" / "tune" / name).glob("final-trial-*"))[-1]


def _best_trial_val(study, target: str) -> float:
    """The best trial's validation MAE of one target at its best epoch (from its run folder)."""
    folder = Path(study.best_trial.user_attrs["zoo.output_dir"])
    return json.loads((folder / "metrics.json").read_text())[f"val_{target}_mae_log10"]


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--targets", default="shear,bulk")
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--epochs", type=int, help="epochs per trial (default: the space's)")
    args = parser.parse_args()
    targets = args.targets.split(",")
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    studies = {t: start_study("cgcnn", [t], args.trials, args.epochs, WORK) for t in targets}
    wall = {t: wait_for_study(started) for t, started in studies.items()}
    rows = {}
    for target in targets:
        tuned = {"wall_minutes": wall[target], **study_figures("cgcnn", [target], WORK)}
        tuned["final_test_mae_log10"] = tuned.pop(f"final_test_{target}_mae_log10")
        tuned["final_test_mae_gpa"] = tuned.pop(f"final_test_{target}_mae_gpa")
        overrides = {"targets": [target]}
        if args.epochs:
            overrides["epochs"] = args.epochs
        default = train_in_child(CONFIG, overrides)
        refit = train_in_child(CONFIG, {**overrides, "fit_on": "train+val"})
        rows[target] = {"tuned": tuned, "default": default, "default_refit": refit}
    (RESULTS / "bench_tune.json").write_text(json.dumps(rows, indent=2, default=str))

    print("\ncgcnn on the development split: untuned default vs a tuned study (log10 GPa)")
    print(
        f"{'target':6} {'model':26} {'val MAE':>8} {'test MAE':>9} {'test GPa':>9} "
        f"{'trials c/p/f':>12} {'pruned':>7} {'wall min':>9} {'trial min':>10}"
    )
    for target, row in rows.items():
        d, r, t = row["default"], row["default_refit"], row["tuned"]
        print(
            f"{target:6} {'default, train':26} {d[f'val_{target}_mae_log10']:8.4f} "
            f"{d[f'test_{target}_mae_log10']:9.4f} {d[f'test_{target}_mae_gpa']:9.2f} "
            f"{'':>12} {'':>7} {d['train_minutes']:9.1f}"
        )
        print(
            f"{target:6} {'default, refit train+val':26} {'':>8} "
            f"{r[f'test_{target}_mae_log10']:9.4f} {r[f'test_{target}_mae_gpa']:9.2f} "
            f"{'':>12} {'':>7} {r['train_minutes']:9.1f}"
        )
        label = f"tuned (trial {t['best_trial']}), refit"
        counts = f"{t['complete']}/{t['pruned']}/{t['failed']}"
        print(
            f"{target:6} {label:26} "
            f"{t['val_mae_log10']:8.4f} {t['final_test_mae_log10']:9.4f} "
            f"{t['final_test_mae_gpa']:9.2f} "
            f"{counts:>12} "
            f"{t['pruned_fraction']:7.0%} {t['wall_minutes']:9.1f} {t['trial_minutes_sum']:10.1f}"
        )
    for target, row in rows.items():
        print(f"\nbest {target} parameters: {row['tuned']['best_params']}")


if __name__ == "__main__":
    main()
