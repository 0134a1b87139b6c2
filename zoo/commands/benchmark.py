"""``zoo benchmark``: a zoo model through Matbench v0.1's protocol (README, "zoo benchmark")."""

from __future__ import annotations

import argparse

from zoo.commands._common import add_set_flag

NAME = "benchmark"
HELP = "Matbench v0.1 protocol: five official folds, results.json.gz, leaderboard comparison"
EXAMPLES = [
    "zoo benchmark --model cgcnn --data matbench_log_gvrh.json.gz",
    "zoo benchmark --config configs/cgcnn-angle-global-mt.yaml --folds 0 --seeds 3 "
    "--data matbench_log_gvrh.json.gz matbench_log_kvrh.json.gz",
]
"""Shown at the end of the command's ``--help``."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="registered variant (default: the config's, else cgcnn)")
    parser.add_argument(
        "--task",
        choices=["matbench_log_gvrh", "matbench_log_kvrh", "both"],
        help="Matbench task(s) (default: the task of one --data file, else both)",
    )
    parser.add_argument(
        "--data",
        nargs="+",
        help="Matbench file(s) of the task(s), or subsets of their rows in the same format "
        "(default: the official files, downloaded once)",
    )
    parser.add_argument("--folds", default="0,1,2,3,4", help="official folds to run")
    parser.add_argument("--config", help="YAML training config")
    add_set_flag(parser, "any training config key, dotted (e.g. epochs=100)")
    parser.add_argument("--tune-trials", type=int, default=0, help="Optuna trials per fold")
    parser.add_argument("--seeds", type=int, default=1, help="models per fold (an ensemble)")
    parser.add_argument("--threads", type=int, help="torch threads per model (default: all cores)")
    parser.add_argument(
        "--output-dir", "-o", "--output", default="runs/benchmark", help="where the benchmark goes"
    )
    parser.add_argument("--name", help="folder name (default MODEL-TASK)")
    parser.add_argument(
        "--leaderboard",
        help="folder with leaderboard_predictions_log_{gvrh,kvrh}.csv (default: beside --data)",
    )


def spec_of(args):
    from zoo.benchmark import BenchmarkSpec
    from zoo.protocol import task_of_files

    return BenchmarkSpec(
        model=args.model,
        task=args.task or task_of_files(args.data or []),
        data=args.data or [],
        folds=[int(f) for f in args.folds.split(",")],
        config=args.config,
        overrides=dict(args.set or []),
        tune_trials=args.tune_trials,
        seeds=args.seeds,
        output_dir=args.output_dir,
        name=args.name,
        leaderboard=args.leaderboard,
        threads=args.threads,
    )


def run(args) -> int:
    from zoo.benchmark import run_benchmark
    from zoo.files import check_output_folder

    check_output_folder(args.output_dir)
    report = run_benchmark(spec_of(args))
    print(report.text)
    return 0
