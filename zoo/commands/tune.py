"""``zoo tune``: an Optuna study over the training function (README, "zoo tune")."""

from __future__ import annotations

import argparse

from zoo.commands._common import add_set_flag

NAME = "tune"
HELP = "Optuna study for one variant and target(s)"
EXAMPLES = [
    "zoo tune --model cgcnn --target bulk --trials 20 --final",
    "zoo tune --model cgcnn-mt --target shear,bulk --jobs 2",
]
"""Shown at the end of the command's ``--help``."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="cgcnn", help="registered variant (default cgcnn)")
    parser.add_argument("--target", default="shear", help="shear, bulk or shear,bulk")
    parser.add_argument("--trials", type=int, default=20, help="finished trials the study holds")
    parser.add_argument("--data", help="data file or folder (default: built-in demo set)")
    parser.add_argument("--split", help="CSV of id -> train/val/test")
    parser.add_argument("--study", help="study name (default MODEL-TARGETS); same name resumes")
    parser.add_argument(
        "--storage",
        help="SQLAlchemy URL (sqlite:///..., postgresql://...) or journal:PATH "
        "(default: sqlite file mlruns/optuna/STUDY.db)",
    )
    parser.add_argument("--space", help="search space YAML (default: tuning/spaces/)")
    parser.add_argument(
        "--pruner",
        default="median",
        choices=["median", "hyperband", "none"],
        help="stop trials whose validation curve falls behind",
    )
    parser.add_argument("--timeout", type=float, help="stop starting trials after S seconds")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes sharing the study")
    parser.add_argument("--threads", type=int, help="torch threads per worker")
    parser.add_argument("--seed", type=int, default=0, help="the sampler's seed")
    parser.add_argument(
        "--heartbeat",
        type=float,
        default=60.0,
        help="seconds between a worker's heartbeats in a database storage; a trial whose "
        "worker missed three is taken back by another worker (default 60)",
    )
    parser.add_argument("--epochs", type=int, help="epochs per trial (overrides the space)")
    add_set_flag(parser, "fix any config key for every trial (dotted)")
    parser.add_argument(
        "--output-dir", "-o", "--output", default="runs/tune", help="where trial run folders go"
    )
    parser.add_argument(
        "--final",
        action="store_true",
        help="refit the best trial on train+val, test it, register it (alias champion if better)",
    )


def run(args) -> int:
    from zoo.files import check_output_folder
    from zoo.tuning.study import StudySpec, run_study

    check_output_folder(args.output_dir)
    overrides = dict(args.set or [])
    if args.epochs is not None:
        overrides["epochs"] = args.epochs
    same = ("model", "trials", "data", "split", "study", "storage", "space", "pruner", "timeout",
            "jobs", "threads", "seed", "final", "output_dir", "heartbeat")  # fmt: skip
    spec = StudySpec(
        **{name: getattr(args, name) for name in same},
        targets=[t.strip() for t in args.target.split(",")],
        overrides=overrides,
    )
    run_study(spec)
    return 0
