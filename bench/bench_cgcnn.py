"""Benchmark of issue 2 on the development set and split (needs ../shared).

(a) graph building, structures per second: the original CGCNN featurisation (CIF parse, pymatgen
    ``get_all_neighbors``, sort, 12 neighbours with padding, Gaussian expansion; re-implemented
    here from the paper's description for timing) against zoo's builder, in one run;
(b) zoo's ``cgcnn`` trained with the original recipe (configs/cgcnn-original.yaml);
(c) zoo's ``cgcnn`` with zoo's default configuration (configs/cgcnn-zoo.yaml).

Each training runs in its own process (bench/_common.py) so its peak memory is its own.

    python bench/bench_cgcnn.py                 # everything (about 30 minutes on 2 cores)
    python bench/bench_cgcnn.py --part graphs   # only (a)
    python bench/bench_cgcnn.py --part original --targets shear
"""

from __future__ import annotations

import argparse
import json
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import DEV_SET, RESULTS, ROOT, SHARED, train_in_child

DEV_CIFS = SHARED / "reference" / "cgcnn" / "dev_cifs.tar.gz"

# The original code trained exactly so on this split on this kind of machine (issue 2):
ORIGINAL_CODE = {
    "shear": {
        "test_mae_log10": 0.1176,
        "test_mae_gpa": 12.6,
        "test_r2": 0.857,
        "seconds_per_epoch": 6.2,
        "minutes": 31,
    },
    "bulk": {
        "test_mae_log10": 0.0621,
        "test_mae_gpa": 10.2,
        "test_r2": 0.914,
        "seconds_per_epoch": 6.2,
        "minutes": 31,
    },
}
RANDOM_FOREST = {"shear": 0.1200, "bulk": 0.0715}  # composition + density forest (issue 2)


def original_featurise(cif_path: Path, radius=8.0, max_num_nbr=12, step=0.2):
    """What the original CGCNN data loader computes per crystal, for timing only."""
    from pymatgen.core import Structure

    crystal = Structure.from_file(cif_path)
    neighbours = crystal.get_all_neighbors(radius, include_index=True)
    neighbours = [sorted(n, key=lambda x: x[1]) for n in neighbours]
    index, distance = [], []
    for n in neighbours:
        if len(n) < max_num_nbr:
            index.append([x[2] for x in n] + [0] * (max_num_nbr - len(n)))
            distance.append([x[1] for x in n] + [radius + 1.0] * (max_num_nbr - len(n)))
        else:
            index.append([x[2] for x in n[:max_num_nbr]])
            distance.append([x[1] for x in n[:max_num_nbr]])
    centres = np.arange(0, radius + step, step)
    expanded = np.exp(-((np.array(distance)[..., None] - centres) ** 2) / step**2)
    return np.array(index), expanded


def rate(count, seconds):
    return count / seconds if seconds > 0 else float("inf")


def bench_graphs(n_original: int = 400) -> list[dict]:
    from pymatgen.core import Structure

    from zoo.graphs import GraphSettings, build_store, neighbor_arrays
    from zoo.readers import read_dataset

    dataset = read_dataset(DEV_SET)
    settings = GraphSettings()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        with tarfile.open(DEV_CIFS) as archive:
            archive.extractall(tmp, filter="data")
        cifs = sorted(Path(tmp).rglob("*.cif"))
        sample = cifs[:: max(1, len(cifs) // n_original)][:n_original]
        start = time.perf_counter()
        for path in sample:
            original_featurise(path)
        rows.append(
            {
                "method": "original featurisation (CIF, get_all_neighbors, sort, expand)",
                "structures": len(sample),
                "per_second": rate(len(sample), time.perf_counter() - start),
            }
        )
        start = time.perf_counter()
        for path in sample:
            neighbor_arrays(Structure.from_file(path), settings)
        rows.append(
            {
                "method": "zoo builder from CIF, 1 process",
                "structures": len(sample),
                "per_second": rate(len(sample), time.perf_counter() - start),
            }
        )
    start = time.perf_counter()
    for structure in dataset.structures:
        structure.get_neighbor_list(settings.radius)
    rows.append(
        {
            "method": "get_neighbor_list alone (floor), 1 process",
            "structures": len(dataset),
            "per_second": rate(len(dataset), time.perf_counter() - start),
        }
    )
    larger = dataset.structures * 4  # a larger job, where worker start-up is amortised
    for structures, label in [(dataset.structures, ""), (larger, ", set x4")]:
        ids = [str(i) for i in range(len(structures))]
        for workers in (1, 2):
            start = time.perf_counter()
            build_store(ids, structures, settings, workers=workers, cache_dir=False, progress=False)
            rows.append(
                {
                    "method": f"zoo builder + graph store, {workers} process(es){label}",
                    "structures": len(structures),
                    "per_second": rate(len(structures), time.perf_counter() - start),
                }
            )
    with tempfile.TemporaryDirectory() as cache:
        build_store(
            dataset.ids, dataset.structures, settings, cache_dir=Path(cache), progress=False
        )
        start = time.perf_counter()
        build_store(
            dataset.ids, dataset.structures, settings, cache_dir=Path(cache), progress=False
        )
        rows.append(
            {
                "method": "zoo graph cache hit (load, checksum)",
                "structures": len(dataset),
                "per_second": rate(len(dataset), time.perf_counter() - start),
            }
        )
    baseline = rows[0]["per_second"]
    for row in rows:
        row["vs_original"] = row["per_second"] / baseline
    return rows


def bench_training(config_path: Path, targets: list[str], seeds: list[int]) -> list[dict]:
    """One training per target and seed; seed 0 is the configuration's own seed."""
    rows = []
    for target in targets:
        for seed in seeds:
            suffix = "" if seed == 0 else f"-seed{seed}"
            row = train_in_child(
                config_path,
                {
                    "targets": [target],
                    "seed": seed,
                    "run_name": f"bench-{Path(config_path).stem}-{target}{suffix}",
                },
            )
            rows.append(
                {
                    "config": Path(config_path).stem + suffix,
                    "target": target,
                    "seed": seed,
                    "epochs": row["epochs"],
                    "best_epoch": row["best_epoch"],
                    "seconds_per_epoch": row["seconds_per_epoch"],
                    "train_minutes": row["train_minutes"],
                    "peak_rss_mb": row["peak_rss_mb"],
                    **{
                        key.replace(f"_{target}", ""): value
                        for key, value in row.items()
                        if f"_{target}_" in key
                    },
                }
            )
    return rows


def print_graphs(rows):
    print("\n(a) graph building, development set (radius 8 A, 12 neighbours)")
    print(f"{'method':66} {'n':>5} {'per s':>9} {'x original':>10}")
    for row in rows:
        print(
            f"{row['method']:66} {row['structures']:5d} {row['per_second']:9.0f} "
            f"{row['vs_original']:10.1f}"
        )


def print_training(rows, title):
    print(f"\n{title}")
    print(
        f"{'target':6} {'run':16} {'MAE log10':>9} {'MAE GPa':>8} {'R2 log':>6} {'R2 GPa':>6} "
        f"{'train MAE':>9} {'s/epoch':>7} {'epochs':>6} {'best':>4} {'minutes':>7} {'peak MB':>7}"
    )
    for row in rows:
        target = row["target"]
        original = ORIGINAL_CODE[target]
        print(
            f"{target:6} {'original code':16} {original['test_mae_log10']:9.4f} "
            f"{original['test_mae_gpa']:8.1f} {'':>6} {original['test_r2']:6.3f} {'0.03':>9} "
            f"{original['seconds_per_epoch']:7.2f} {300:6d} {'':>4} {original['minutes']:7.1f}"
        )
        print(
            f"{target:6} {'zoo ' + row['config']:16} {row['test_mae_log10']:9.4f} "
            f"{row['test_mae_gpa']:8.1f} {row['test_r2_log10']:6.3f} {row['test_r2_gpa']:6.3f} "
            f"{row['train_mae_log10']:9.4f} {row['seconds_per_epoch']:7.2f} {row['epochs']:6d} "
            f"{row['best_epoch']:4d} {row['train_minutes']:7.1f} {row['peak_rss_mb']:7.0f}"
        )
        print(f"{target:6} {'random forest':16} {RANDOM_FOREST[target]:9.4f}")


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--part", choices=["graphs", "original", "default", "all"], default="all")
    parser.add_argument("--targets", default="shear,bulk")
    parser.add_argument("--seeds", default="0", help="training seeds, e.g. 0,1,2")
    args = parser.parse_args()
    if not DEV_SET.exists():
        raise SystemExit(f"benchmark needs the shared data at {SHARED}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    targets = args.targets.split(",")
    if args.part in ("graphs", "all"):
        rows = bench_graphs()
        print_graphs(rows)
        (RESULTS / "graphs.json").write_text(json.dumps(rows, indent=2))
    for part, config, title in [
        (
            "original",
            ROOT / "configs" / "cgcnn-original.yaml",
            "(b) the original recipe: SGD 0.02, x0.1 at 240, 300 epochs, n_conv 4, h 32, batch 64",
        ),
        ("default", ROOT / "configs" / "cgcnn-zoo.yaml", "(c) zoo's default configuration"),
    ]:
        if args.part in (part, "all"):
            rows = bench_training(config, targets, [int(x) for x in args.seeds.split(",")])
            print_training(rows, title)
            (RESULTS / f"training-{part}-{'-'.join(targets)}.json").write_text(
                json.dumps(rows, indent=2)
            )


if __name__ == "__main__":
    main()
