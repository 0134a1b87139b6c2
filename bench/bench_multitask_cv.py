"""Five-fold cross-validation of multitask against single-target CGCNN.

The issue-3 benchmark compares ``cgcnn-mt`` with ``cgcnn`` on one split, whose 791 test crystals
cannot resolve differences of a few percent. Here every crystal of a data set is tested once:
Matbench's fold rule (``KFold(5, shuffle=True, random_state=18012019)``) makes five test folds;
of the other four folds a seeded 10% is the validation set (the best-epoch choice) and the rest
is trained on. In each fold ``cgcnn`` is trained once per target and ``cgcnn-mt`` once on both,
with zoo's default configuration (configs/cgcnn-zoo.yaml). The out-of-fold predictions of all
folds are then compared crystal by crystal, with a bootstrap interval
(``zoo.metrics.relative_mae_change``).

Two data sets (``--data``):

- ``dev``: the 3,953 binaries of the development set, folds over the entries in file order, so
  each fold has the development split's sizes (about 2,845 / 317 / 791).
- ``matbench-subset``: the 3,077 Matbench v0.1 entries of ``../shared/data/matbench`` that have
  structures, all chemistries (not only binaries), with both official targets. Each entry keeps
  its official test fold (the fold rule over the 10,987 rows of the official table), so this is
  the Matbench protocol restricted to the subset (about 2,215 / 246 / 615 per fold). Both
  targets of an entry are written to one JSON records file under ``bench/results`` (ids
  ``mb-<row + 1>``; moduli in GPa) so that ``cgcnn-mt`` can train on them together.

    python bench/bench_multitask_cv.py --seeds 3                        # 45 runs, about 95 minutes
    python bench/bench_multitask_cv.py --seeds 2 --data matbench-subset # 30 runs, 45 minutes

Every finished run is kept in ``bench/results/multitask_cv.json`` (``--data dev``) or
``multitask_cv_matbench_subset.json``; ``--resume`` trains only the runs that have no row there.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import statistics

import numpy as np
from _common import DEV_SET, RESULTS, ROOT, SHARED, earlier_rows, train_many

CONFIG = ROOT / "configs" / "cgcnn-zoo.yaml"
FOLDS = 5
VAL_FRACTION = 0.1
GROUPS = ("cgcnn", "cgcnn-mt (both)")  # one cgcnn per target; cgcnn-mt on both


MATBENCH = SHARED / "data" / "matbench"
SETUPS = {
    "dev": ("cv", "multitask_cv.json"),
    "matbench-subset": ("cv-matbench-subset", "multitask_cv_matbench_subset.json"),
}
"""--data -> (folder of its split files under bench/results, results file)."""


def dev_folds():
    """The development set and the test fold of each entry (fold rule over file order)."""
    from zoo.readers import read_dataset
    from zoo.splits import kfold_assignment

    ids = read_dataset(DEV_SET).ids
    return DEV_SET, ids, kfold_assignment(len(ids), FOLDS)


def matbench_subset_folds():
    """A records file of the Matbench subset with both targets, and each entry's official
    test fold (the fold rule over all rows of the official table)."""
    from zoo.files import atomic_write
    from zoo.readers.jsonfiles import load_json
    from zoo.splits import kfold_assignment

    shear = load_json(MATBENCH / "matbench_log_gvrh_subset.json.gz")
    bulk = load_json(MATBENCH / "matbench_log_kvrh_subset.json.gz")
    if shear["index"] != bulk["index"]:
        raise ValueError("the shear and bulk subsets hold different Matbench rows")
    with open(MATBENCH / "leaderboard_predictions_log_gvrh.csv", newline="") as handle:
        table_rows = sum(1 for _ in csv.DictReader(handle))
    records, ids = [], []
    for row, (structure, log_shear), (same, log_bulk) in zip(
        shear["index"], shear["data"], bulk["data"], strict=True
    ):
        if structure != same:
            raise ValueError(f"Matbench row {row}: the two subsets hold different structures")
        ids.append(f"mb-{row + 1:05d}")
        records.append(
            {
                "mp_id": ids[-1],
                "structure": structure,
                "shear_modulus_vrh": 10.0**log_shear,
                "bulk_modulus_vrh": 10.0**log_bulk,
            }
        )
    path = RESULTS / SETUPS["matbench-subset"][0] / "matbench_subset_both.json.gz"
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as partial, gzip.open(partial, "wt") as handle:
        json.dump(records, handle)
    return path, ids, kfold_assignment(table_rows, FOLDS)[shear["index"]]


def write_fold_files(data: str) -> tuple:
    """The data file of ``data`` and one split file per fold,
    ``bench/results/<folder>/fold{k}.csv``."""
    from zoo.splits import fold_split, write_split_file

    path, ids, assignment = dev_folds() if data == "dev" else matbench_subset_folds()
    folder = RESULTS / SETUPS[data][0]
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for fold in range(FOLDS):
        split_path = folder / f"fold{fold}.csv"
        write_split_file(split_path, ids, fold_split(assignment, fold, VAL_FRACTION, seed=0))
        paths.append(split_path)
    return path, paths


def plan(data_path, paths: list, seeds: int) -> list[dict]:
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
                        "data.path": str(data_path),
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


LEADERBOARD = {"shear": ("log_gvrh", "log10(G_VRH)"), "bulk": ("log_kvrh", "log10(K_VRH)")}
"""zoo target -> (stem of its Matbench leaderboard predictions file, target column)."""


def leaderboard_on_subset() -> None:
    """Test MAE of the Matbench leaderboard models on the subset's entries, from their own
    test-fold predictions (trained on about 8,800 entries per fold, not about 2,215)."""
    from zoo.readers.jsonfiles import load_json

    index = load_json(MATBENCH / "matbench_log_gvrh_subset.json.gz")["index"]
    rows = {f"{row + 1:05d}" for row in index}
    print("\nMatbench leaderboard on the same entries (trained on ~8,800 per fold):")
    for target, (stem, column) in LEADERBOARD.items():
        with open(MATBENCH / f"leaderboard_predictions_{stem}.csv", newline="") as handle:
            table = [r for r in csv.DictReader(handle) if r["mbid"][-5:] in rows]
        truth = np.array([float(r[column]) for r in table])
        models = [name for name in table[0] if name not in ("mbid", "test_fold", column)]
        maes = ", ".join(
            f"{name} {np.abs(np.array([float(r[name]) for r in table]) - truth).mean():.4f}"
            for name in models
        )
        print(f"  {target} ({len(table)} entries): {maes}")


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
    parser.add_argument("--data", choices=sorted(SETUPS), default="dev")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--parallel", type=int, default=2, choices=(1, 2))
    parser.add_argument(
        "--resume", action="store_true", help="keep every earlier row, train only missing runs"
    )
    args = parser.parse_args()
    jobs = plan(*write_fold_files(args.data), args.seeds)
    saved = RESULTS / SETUPS[args.data][1]
    keep = []
    if args.resume:
        keep, jobs = earlier_rows(saved, jobs, update=False)
    rows = keep + train_many(CONFIG, jobs, args.parallel, saved, keep)
    report(rows, args.seeds)
    if args.data == "matbench-subset":
        leaderboard_on_subset()


if __name__ == "__main__":
    main()
