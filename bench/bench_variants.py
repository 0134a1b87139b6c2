"""Benchmark of issue 3: every registered variant on the development split, both targets.

Single-target variants are trained once per target; ``cgcnn-mt`` once on both targets. All use
zoo's default configuration (configs/cgcnn-zoo.yaml: AdamW, one-cycle, L1, EMA, 150 epochs).
Also measures the size of the bond-angle line graph.

    python bench/bench_variants.py                       # everything (about 45 minutes)
    python bench/bench_variants.py --models cgcnn-angle --targets shear
"""

from __future__ import annotations

import argparse
import json

from _common import DEV_SET, RESULTS, ROOT, train_in_child

CONFIG = ROOT / "configs" / "cgcnn-zoo.yaml"


def line_graph_size() -> list[dict]:
    from zoo.graph_store import build_store
    from zoo.graphs import GraphSettings
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


def main():
    from models import list_models

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", default=",".join(list_models()))
    parser.add_argument("--targets", default="shear,bulk")
    parser.add_argument("--skip-size", action="store_true")
    args = parser.parse_args()
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
    targets = args.targets.split(",")
    rows = []
    for model in args.models.split(","):
        jobs = [targets] if model.endswith("-mt") else [[t] for t in targets]
        for job in jobs:
            label = f"bench-{model}-{'-'.join(job)}"
            row = train_in_child(CONFIG, {"model": model, "targets": job, "run_name": label})
            rows.append(row)
            print(f"finished {label}: {row['train_minutes']:.1f} min", flush=True)
    (RESULTS / "variants.json").write_text(json.dumps(rows, indent=2))
    print(
        f"\n{'model':13} {'target':6} {'MAE log10':>9} {'MAE GPa':>8} {'R2 GPa':>6} "
        f"{'params':>8} {'s/epoch':>7} {'minutes':>7} {'peak MB':>7}"
    )
    for row in rows:
        for target in row["targets"]:
            print(
                f"{row['model']:13} {target:6} {row[f'test_{target}_mae_log10']:9.4f} "
                f"{row[f'test_{target}_mae_gpa']:8.2f} {row[f'test_{target}_r2_gpa']:6.3f} "
                f"{row['parameters']:8d} {row['seconds_per_epoch']:7.2f} "
                f"{row['train_minutes']:7.1f} {row['peak_rss_mb']:7.0f}"
            )


if __name__ == "__main__":
    main()
