"""Issue 16's yardstick: zoo models through Matbench v0.1's protocol on the 7,931-entry subset
of ``../shared/data/matbench`` (``*_subset_large.json.gz``; ``--subset small`` for the 3,077
entries), set side by side with the leaderboard models on exactly the same entries, and the
spread of a seed ensemble measured on out-of-fold predictions.

Each configuration is one ``zoo benchmark`` (the same function, :func:`zoo.benchmark.run_benchmark`,
in ``bench/results/benchmark/<name>/``); a finished benchmark is read back, an interrupted one
continues. The targets (issue 16): the best single model ahead of ALIGNN on both tasks, its
five-member ensemble ahead of coNGN on at least one and within 5% on the other, about 20
minutes of training per fold on 2 cores.

    python bench/bench_matbench.py                  # the configurations below, large subset
    python bench/bench_matbench.py --only angle-global-mt-large
"""

from __future__ import annotations

import argparse

from _common import RESULTS, ROOT, SHARED

MATBENCH = SHARED / "data" / "matbench"
CONFIGURATIONS = {
    # name: (subset, model, config file, seeds per fold, threads)
    "angle-global-mt-large": ("large", None, "configs/cgcnn-angle-global-mt.yaml", 1, 1),
    "cgcnn-mt-subset-3seeds": ("small", "cgcnn-mt", None, 3, 1),
}
TARGETS = {"shear": ("alignn", "coNGN"), "bulk": ("alignn", "coNGN")}


def data_files(subset: str) -> list[str]:
    suffix = "_subset_large" if subset == "large" else "_subset"
    return [str(MATBENCH / f"matbench_log_{t}{suffix}.json.gz") for t in ("gvrh", "kvrh")]


def run(name: str):
    from zoo.benchmark import BenchmarkSpec, run_benchmark

    subset, model, config, seeds, threads = CONFIGURATIONS[name]
    spec = BenchmarkSpec(
        model=model,
        task="both",
        data=data_files(subset),
        config=str(ROOT / config) if config else None,
        seeds=seeds,
        threads=threads,
        output_dir=str(RESULTS / "benchmark"),
        name=name,
    )
    return run_benchmark(spec, log=lambda *_: None)


def table(reports: dict) -> None:
    print("\n| configuration | entries | shear MAE | bulk MAE | min/fold | shear vs ALIGNN | "
          "shear vs coNGN | bulk vs ALIGNN | bulk vs coNGN |")  # fmt: skip
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, report in reports.items():
        s, b = report.summary["shear"], report.summary["bulk"]
        change = {
            (row.target, row.model): f"{100 * row.change:+.1f}% ({100 * row.change_low:+.0f}…"
            f"{100 * row.change_high:+.0f})"
            for row in report.comparison.itertuples()
        }
        print(
            f"| {name} | {s['pooled']['entries']} | {s['pooled']['mae_log10']:.4f} | "
            f"{b['pooled']['mae_log10']:.4f} | {s['minutes_per_fold']:.1f} | "
            f"{change.get(('shear', 'alignn'), '-')} | {change.get(('shear', 'coNGN'), '-')} | "
            f"{change.get(('bulk', 'alignn'), '-')} | {change.get(('bulk', 'coNGN'), '-')} |"
        )
    print(
        "\n(MAE: log10 GPa, every entry once, the mean over a fold's seeds; change: zoo MAE / "
        "leaderboard MAE − 1 on the same entries with its paired bootstrap 95% interval)"
    )


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", action="append", choices=sorted(CONFIGURATIONS))
    args = parser.parse_args()
    reports = {name: run(name) for name in args.only or CONFIGURATIONS}
    for name, report in reports.items():
        print(f"\n## {name}\n\n{report.text}")
    table(reports)
    calibrated = RESULTS / "benchmark" / "cgcnn-mt-subset-3seeds"
    if calibrated.exists():
        from zoo.calibration import calibrate

        record = calibrate(calibrated, calibrated / "calibration.png")
        print(f"\nSpread of the 3-seed ensembles of {calibrated.name} (out-of-fold):")
        for target in ("shear", "bulk"):
            r = record[target]
            print(
                f"  {target}: Spearman(spread, |error|) {r['spearman_spread_error']:.2f}; "
                f"±1σ {100 * r['test_coverage_1sigma_raw']:.1f}%, ±2σ "
                f"{100 * r['test_coverage_2sigma_raw']:.1f}% raw; scale {r['scale']:.2f} "
                f"(fitted on {r['validation_entries']} validation entries) -> "
                f"{100 * r['test_coverage_1sigma']:.1f}%, {100 * r['test_coverage_2sigma']:.1f}%"
            )


if __name__ == "__main__":
    main()
