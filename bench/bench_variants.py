"""Benchmark of issue 3: every registered variant on the development split, both targets.

Single-target variants are trained once per target; ``cgcnn-mt`` once on both targets, and so
is every variant named by ``--multitask`` (given ``cgcnn-mt``'s defaults for the heads and
loss weights: one head per target, learned weights). All use zoo's default configuration
(configs/cgcnn-zoo.yaml: AdamW, one-cycle, L1, EMA, 150 epochs), each with ``--seeds`` seeds;
the table gives mean and standard deviation over seeds. Runs go ``--parallel`` at a time, each
in a fresh process on ``2 // parallel`` threads. Also measures the size of the bond-angle line
graph, and checks the issue's two targets from the measured means.

    python bench/bench_variants.py                       # everything (60 runs, about 3 h 50 min)
    python bench/bench_variants.py --models cgcnn,cgcnn-angle --targets shear --seeds 1
    python bench/bench_variants.py --models cgcnn-mt --multitask "" --update
    python bench/bench_variants.py --seeds 5 --resume

Both keep the earlier rows of ``bench/results/variants.json`` (each row records when it
finished), so the table still covers every variant: ``--update`` trains the planned groups
(variant and targets) again and replaces their rows (after a default changed); ``--resume``
trains only the planned runs that have no row yet (an interrupted benchmark, or more seeds).
Neither combines with ``--epochs``.
"""

from __future__ import annotations

import argparse
import json
import statistics

from _common import DEV_SET, RESULTS, ROOT, earlier_rows, train_many

CONFIG = ROOT / "configs" / "cgcnn-zoo.yaml"


def line_graph_size() -> list[dict]:
    from zoo.graphs import GraphSettings, build_store
    from zoo.readers import read_dataset

    dataset = read_dataset(DEV_SET)
    rows = []
    for limit in (4, 6, 8, 12):
        settings = GraphSettings(parts=("bond", "angle"), angle_neighbors=limit)
        store, _ = build_store(
            dataset.ids, dataset.structures, settings, cache_dir=False, progress=False
        )
        rows.append(
            {
                "angle_neighbors": limit,
                "atoms": int(store.num_nodes.sum()),
                "bonds": int(store.num_edges.sum()),
                "angles": int(store.num_angles.sum()),
            }
        )
    return rows


def multitask_heads() -> dict:
    """``cgcnn-mt``'s defaults for the heads and loss weights, given to every ``--multitask``
    variant so that all multitask rows are trained alike."""
    from zoo.models import resolve_config

    defaults = resolve_config("cgcnn-mt")
    return {
        "per_target_heads": defaults.per_target_heads,
        "loss_weighting": defaults.loss_weighting,
    }


def plan(models: list[str], multitask: list[str], targets: list[str], seeds: int) -> list[dict]:
    """One override set per training run: label, model, targets, seed (and multitask heads)."""
    groups = []
    for model in models:
        if model.endswith("-mt"):
            groups.append((f"{model} (both)", {"model": model, "targets": targets}))
        else:
            groups += [(model, {"model": model, "targets": [t]}) for t in targets]
    for model in reversed(multitask):  # the longest runs first, so the two workers end together
        overrides = {"model": model, "targets": targets, "architecture": multitask_heads()}
        groups.insert(0, (f"{model} (both)", overrides))
    return [
        {
            **overrides,
            "seed": seed,
            "run_name": f"bench-{overrides['model']}-{'-'.join(overrides['targets'])}-seed{seed}",
            "label": label,
        }
        for label, overrides in groups
        for seed in range(seeds)
    ]


def summarise(rows: list[dict]) -> list[dict]:
    """Mean and standard deviation over seeds, one entry per (label, target): ``cgcnn`` first,
    then the single-target variants, then the multitask ones, each by name."""
    table = []
    groups = sorted(
        dict.fromkeys((row["label"], tuple(row["targets"])) for row in rows),
        key=lambda group: (group[0] != "cgcnn", group[0].endswith("(both)"), group[0]),
    )
    for label, targets in groups:
        runs = [r for r in rows if r["label"] == label and tuple(r["targets"]) == targets]
        for target in runs[0]["targets"]:
            mae = [row[f"test_{target}_mae_log10"] for row in runs]
            table.append(
                {
                    "label": label,
                    "model": runs[0]["model"],
                    "target": target,
                    "targets": runs[0]["targets"],
                    "seeds": len(runs),
                    "mae_log10": statistics.mean(mae),
                    "mae_log10_sd": statistics.stdev(mae) if len(mae) > 1 else float("nan"),
                    "mae_gpa": statistics.mean(row[f"test_{target}_mae_gpa"] for row in runs),
                    "r2_gpa": statistics.mean(row[f"test_{target}_r2_gpa"] for row in runs),
                    "parameters": runs[0]["parameters"],
                    "seconds_per_epoch": statistics.median(r["seconds_per_epoch"] for r in runs),
                    "minutes": statistics.mean(row["train_minutes"] for row in runs),
                    "peak_mb": max(row["peak_rss_mb"] for row in runs),
                }
            )
    return table


def print_table(table: list[dict]) -> None:
    baseline = {row["target"]: row["mae_log10"] for row in table if row["label"] == "cgcnn"}
    print(
        "\n| model | target | test MAE (log10) | vs cgcnn | test MAE (GPa) | R² (GPa) "
        "| seeds | parameters | s/epoch | minutes | peak MB |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    shown = set()
    for row in table:
        change = ""
        if row["target"] in baseline and row["label"] != "cgcnn":
            change = f"{100 * (row['mae_log10'] / baseline[row['target']] - 1):+.1f}%"
        first = (row["label"], tuple(row["targets"])) not in shown
        shown.add((row["label"], tuple(row["targets"])))
        print(
            f"| {row['label']} | {row['target']} | {row['mae_log10']:.4f} ± "
            f"{row['mae_log10_sd']:.4f} | {change} | {row['mae_gpa']:.2f} | {row['r2_gpa']:.3f} | "
            f"{row['seeds']} | "
            + (
                f"{row['parameters']:,} | {row['seconds_per_epoch']:.2f} | "
                f"{row['minutes']:.1f} | {row['peak_mb']:.0f} |"
                if first
                else "(same model) | | | |"
            )
        )


def uncertainty(rows: list[dict], base: str, other: str, target: str) -> str:
    """The 95% bootstrap interval of the change of ``other``'s test MAE against ``base``'s
    (test crystals and seeds resampled, zoo.compare), or why there is none."""
    from zoo.compare import compare_runs

    folders = [
        [
            ROOT / r.get("output_dir", "-")
            for r in rows
            if r["label"] == label and target in r["targets"]
        ]
        for label in (base, other)
    ]
    try:
        (comparison,) = compare_runs(*folders, [target])
    except (FileNotFoundError, ValueError) as error:
        return f"no interval: {error}"
    return comparison.change.interval()


def check_targets(table: list[dict], rows: list[dict]) -> None:
    """The issue's targets, from the means: best variant -10% per target; cgcnn-mt vs cgcnn.
    Each comparison also gets the bootstrap interval of the change (zoo.metrics), to show
    whether the test set and the seeds can tell the two apart."""
    cgcnn = {row["target"]: row for row in table if row["label"] == "cgcnn"}
    print("\ntargets (means over seeds; 95% intervals over test crystals and seeds)")
    for target, base in cgcnn.items():
        others = [r for r in table if r["target"] == target and r["label"] != "cgcnn"]
        if others:
            best = min(others, key=lambda r: r["mae_log10"])
            change = best["mae_log10"] / base["mae_log10"] - 1
            verdict = "met" if change <= -0.10 else "not met"
            print(
                f"  {target}: best {best['label']} {best['mae_log10']:.5f} vs cgcnn "
                f"{base['mae_log10']:.5f}, {100 * change:+.2f}% (10% lower: "
                f"{0.9 * base['mae_log10']:.5f}; {verdict}); "
                + uncertainty(rows, "cgcnn", best["label"], target)
            )
        for row in (r for r in others if r["label"] == "cgcnn-mt (both)"):
            verdict = "met" if row["mae_log10"] <= base["mae_log10"] else "not met"
            print(
                f"  {target}: cgcnn-mt {row['mae_log10']:.5f} vs cgcnn "
                f"{base['mae_log10']:.5f} ({verdict}); "
                + uncertainty(rows, "cgcnn", row["label"], target)
            )
    multitask = next((r for r in table if r["label"] == "cgcnn-mt (both)"), None)
    if multitask and all(t in cgcnn for t in multitask["targets"]):
        single = sum(cgcnn[t]["minutes"] for t in multitask["targets"])
        print(
            f"  cgcnn-mt time: {multitask['minutes']:.1f} min for both against "
            f"{single:.1f} min for the single-target cgcnn runs "
            f"({100 * multitask['minutes'] / single:.0f}%)"
        )
    print("\nevery multitask model against the same variant trained once per target")
    for row in table:
        if not row["label"].endswith(" (both)"):
            continue
        model = row["label"].removesuffix(" (both)")
        alone = model if model != "cgcnn-mt" else "cgcnn"
        single = {r["target"]: r for r in table if r["label"] == alone}
        if row["target"] not in single:
            continue
        change = row["mae_log10"] / single[row["target"]]["mae_log10"] - 1
        line = (
            f"  {row['label']:28s} {row['target']:5s} {100 * change:+6.1f}% vs {alone} "
            f"({uncertainty(rows, alone, row['label'], row['target'])})"
        )
        if row["target"] == row["targets"][0]:
            alone_minutes = sum(single[t]["minutes"] for t in row["targets"] if t in single)
            line += f"; time {100 * row['minutes'] / alone_minutes:.0f}% of {alone}'s runs"
        print(line)


def main():
    from zoo.models import list_models

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", default=",".join(list_models()))
    parser.add_argument(
        "--multitask",
        default="cgcnn-angle,cgcnn-global,cgcnn-angle-global",
        help="also train these on both targets",
    )
    parser.add_argument("--targets", default="shear,bulk")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--parallel", type=int, default=2, choices=(1, 2))
    parser.add_argument("--epochs", type=int, help="instead of the configuration's 150")
    parser.add_argument("--skip-size", action="store_true")
    earlier = parser.add_mutually_exclusive_group()
    earlier.add_argument(
        "--update", action="store_true", help="re-train the planned groups, keep other rows"
    )
    earlier.add_argument(
        "--resume", action="store_true", help="keep every earlier row, train only missing runs"
    )
    args = parser.parse_args()
    if args.epochs and (args.update or args.resume):
        parser.error("--epochs makes quick checks, not rows to mix with the table's (150 epochs)")
    RESULTS.mkdir(parents=True, exist_ok=True)
    if not args.skip_size:
        sizes = line_graph_size()
        print("\nline graph size on the development set (3,953 crystals)")
        print(
            f"{'angle_neighbors':>15} {'atoms':>8} {'bonds':>9} {'angles':>10} {'angles/bond':>11}"
        )
        for row in sizes:
            print(
                f"{row['angle_neighbors']:15d} {row['atoms']:8d} {row['bonds']:9d} "
                f"{row['angles']:10d} {row['angles'] / row['bonds']:11.1f}"
            )
        (RESULTS / "line_graph_size.json").write_text(json.dumps(sizes, indent=2))
    multitask = [m for m in args.multitask.split(",") if m]
    jobs = plan(args.models.split(","), multitask, args.targets.split(","), args.seeds)
    if args.epochs:
        jobs = [{**job, "epochs": args.epochs} for job in jobs]
    keep = []
    if args.update or args.resume:
        keep, jobs = earlier_rows(RESULTS / "variants.json", jobs, update=args.update)
    rows = keep + train_many(CONFIG, jobs, args.parallel, RESULTS / "variants.json", keep)
    table = summarise(rows)
    print_table(table)
    check_targets(table, rows)


if __name__ == "__main__":
    main()
