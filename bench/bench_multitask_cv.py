"""Five-fold cross-validation of multitask against single-target CGCNN on the development set.

The issue-3 benchmark compares ``cgcnn-mt`` with ``cgcnn`` on one split, whose 791 test crystals
cannot resolve differences of a few percent. Here every one of the 3,953 crystals is tested
once: Matbench's fold rule (``KFold(5, shuffle=True, random_state=18012019)`` over the entries
in file order) makes five test folds; of the other four folds a seeded 10% is the validation
set (the best-epoch choice) and the rest is trained on, so each fold has the development
split's sizes (about 2,845 / 317 / 791). In each fold ``cgcnn`` is trained once per target and
``cgcnn-mt`` once on both, with zoo's default configuration (configs/cgcnn-zoo.yaml). The
out-of-fold predictions of all folds are then compared crystal by crystal, with a bootstrap
interval (``zoo.metrics.relative_mae_change``).

    python bench/bench_multitask_cv.py --seeds 2       # docs/benchmarks.md: 30 runs, about an hour
    python bench/bench_multitask_cv.py                 # one seed: 15 runs, about 35 minutes

Every finished run is kept in ``bench/results/multitask_cv.json``; ``--resume`` trains only
the runs that have no row there.
"""

from __future__ import annotations

import argparse
import statistics

import numpy as np
from _common import DEV_SET, RESULTS, ROOT, earlier_rows, train_many

CONFIG = ROOT / "configs" / "cgcnn-zoo.yaml"
FOLDS = 5
VAL_FRACTION = 0.1
GROUPS = ("cgcnn", "cgcnn-mt (both)")  # one cgcnn per target; cgcnn-mt on both


def write_fold_files() -> list:
    """Split files ``bench/results/cv/fold{k}.csv`` of the development set, one per fold."""
    from zoo.readers import read_dataset
    from zoo.splits import fold_split, kfold_assignment, write_split_file

    dataset = read_dataset(DEV_SET)
    assignment = kfold_assignment(len(dataset.ids), FOLDS)
    folder = RESULTS / "cv"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for fold in range(FOLDS):
        path = folder / f"fold{fold}.csv"
        write_split_file(path, dataset.ids, fold_split(assignment, fold, VAL_FRACTION, seed=0))
        paths.append(path)
    return paths


def plan(paths: list, seeds: int) -> list[dict]:
    """One job per fold, seed and run: cgcnn on shear, cgcnn on bulk, cgcnn-mt on both."""
    jobs = []
    for fold, path in enumerate(paths):
        runs = [("cgcnn", "cgcnn", [target]) for target in ("shear", "bulk")]
        runs.append(("cgcnn-mt (both)", "cgcnn-mt", ["shear", "bulk"]))
        for seed in range(seeds):
            for label, model, targets in runs:
                jobs.append(
                    {
                        "model": model,
                        "targets": targets,
                        "seed": seed,
                        "data.split_file": str(path),
                        "run_name": f"cv-{model}-{'-'.join(targets)}-fold{fold}-seed{seed}",
                        "label": f"{label}, fold {fold}",
                    }
                )
    return jobs


def out_of_fold(rows: list[dict], group: str, target: str, seeds: int):
    """True log10 moduli ``(N,)`` of all crystals and the group's out-of-fold predictions
    ``(seeds, N)`` (each crystal predicted by the model whose test fold holds it), by id."""
    from zoo.compare import read_run_predictions

    per_seed = []
    for seed in range(seeds):
        ids, true, predicted = [], [], []
        for fold in range(FOLDS):
            (row,) = [
                r
                for r in rows
                if r["label"] == f"{group}, fold {fold}"
                and r["seed"] == seed
                and target in r["targets"]
            ]
            tested = read_run_predictions(ROOT / row["output_dir"], target)
            ids += tested.ids
            true.append(tested.true)
            predicted.append(tested.predicted)
        order = np.argsort(ids)
        per_seed.append((np.concatenate(true)[order], np.concatenate(predicted)[order]))
    return per_seed[0][0], np.stack([predicted for _, predicted in per_seed])


def report(rows: list[dict], seeds: int) -> None:
    from zoo.metrics import relative_mae_change

    print("\n| fold | target | cgcnn | cgcnn-mt (both) | change |")
    print("| ---: | --- | ---: | ---: | ---: |")
    for fold in range(FOLDS):
        for target in ("shear", "bulk"):
            mae = {}
            for group in GROUPS:
                runs = [
                    r
                    for r in rows
                    if r["label"] == f"{group}, fold {fold}" and target in r["targets"]
                ]
                mae[group] = statistics.mean(r[f"test_{target}_mae_log10"] for r in runs)
            change = mae["cgcnn-mt (both)"] / mae["cgcnn"] - 1
            print(
                f"| {fold} | {target} | {mae['cgcnn']:.4f} | {mae['cgcnn-mt (both)']:.4f} | "
                f"{100 * change:+.1f}% |"
            )
    print(f"\nall {FOLDS} folds, every crystal tested once (MAE log10 GPa, mean over seeds)")
    for target in ("shear", "bulk"):
        true, single = out_of_fold(rows, "cgcnn", target, seeds)
        _, multitask = out_of_fold(rows, "cgcnn-mt (both)", target, seeds)
        change = relative_mae_change(true, single, multitask)
        print(
            f"  {target}: cgcnn {np.abs(single - true).mean():.5f}, cgcnn-mt "
            f"{np.abs(multitask - true).mean():.5f} on {len(true)} crystals: "
            f"{change.describe()}"
        )
    minutes = {
        group: sum(r["train_minutes"] for r in rows if r["label"].startswith(f"{group}, fold"))
        / (FOLDS * seeds)
        for group in GROUPS
    }
    print(
        f"  time per fold: cgcnn {minutes['cgcnn']:.1f} min (both targets), cgcnn-mt "
        f"{minutes['cgcnn-mt (both)']:.1f} min "
        f"({100 * minutes['cgcnn-mt (both)'] / minutes['cgcnn']:.0f}%)"
    )


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--parallel", type=int, default=2, choices=(1, 2))
    parser.add_argument(
        "--resume", action="store_true", help="keep every earlier row, train only missing runs"
    )
    args = parser.parse_args()
    jobs = plan(write_fold_files(), args.seeds)
    saved = RESULTS / "multitask_cv.json"
    keep = []
    if args.resume:
        keep, jobs = earlier_rows(saved, jobs, update=False)
    rows = keep + train_many(CONFIG, jobs, args.parallel, saved, keep)
    report(rows, args.seeds)


if __name__ == "__main__":
    main()
