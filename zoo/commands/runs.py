"""``zoo runs``: the runs of the MLflow store as a table in the terminal."""

from __future__ import annotations

import argparse

NAME = "runs"
HELP = "table of training runs from the MLflow store (model, data, seed, MAE, time)"
EXAMPLES = [
    "zoo runs",
    "zoo runs --filter \"tags.`zoo.model` = 'cgcnn'\" --limit 10",
]
"""Shown at the end of the command's ``--help``."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--experiment", action="append", help="experiment name (repeatable; default: all)"
    )
    parser.add_argument(
        "--sort", help="metric to sort by, ascending (e.g. test_shear_mae_log10; default newest)"
    )
    parser.add_argument(
        "--filter",
        default="",
        help="MLflow search filter, e.g. \"tags.`zoo.model` = 'cgcnn'\" or "
        '"metrics.test_shear_mae_log10 < 0.1"',
    )
    parser.add_argument("--limit", type=int, default=50, help="at most this many runs")
    parser.add_argument(
        "--wide", action="store_true", help="also targets, the MAE in GPa, status and run ids"
    )


def run(args) -> int:
    import pandas as pd

    from zoo.runs_table import runs_table

    table = runs_table(args.experiment, args.filter, args.sort, args.limit, wide=args.wide)
    if table.empty:
        print("no training runs found")
        return 0
    table = table.dropna(axis=1, how="all")
    with pd.option_context("display.width", 250 if args.wide else 120, "display.max_columns", 40):
        print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}", na_rep="-"))
    if not args.wide:
        print("epochs: kept/run; val, test: MAE in log10 GPa; --wide adds GPa and run ids")
    return 0
