"""``zoo compare``: two groups of runs, with a bootstrap interval of the change."""

from __future__ import annotations

import argparse

NAME = "compare"
HELP = "test MAE of two groups of runs, with a bootstrap interval of the change"
EXAMPLES = [
    "zoo compare --base runs/cgcnn-s0 runs/cgcnn-s1 --other runs/mt-s0 runs/mt-s1",
]
"""Shown at the end of the command's ``--help``."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--base", nargs="+", required=True, help="run folders (one per seed)")
    parser.add_argument("--other", nargs="+", required=True, help="run folders to compare")
    parser.add_argument("--target", help="shear, bulk or shear,bulk (default: all in common)")
    parser.add_argument(
        "--split", default="test", choices=["train", "val", "test"], help="the split compared"
    )
    parser.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples")


def run(args) -> int:
    from zoo.compare import compare_runs

    targets = args.target.split(",") if args.target else None
    comparisons = compare_runs(args.base, args.other, targets, args.split, args.resamples)
    print(
        f"{len(args.other)} run(s) against {len(args.base)} base run(s), {args.split} split, "
        "MAE in log10 GPa (mean over each group's runs); interval: crystals and runs resampled"
    )
    print(f"{'target':8s} {'crystals':>8s} {'base':>8s} {'other':>8s}  change")
    for item in comparisons:
        print(
            f"{item.target:8s} {item.crystals:8d} {item.base_mae:8.4f} {item.other_mae:8.4f}  "
            f"{item.change.describe()}"
        )
    return 0
