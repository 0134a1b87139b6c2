"""``zoo train``: train one model (README, "zoo train")."""

from __future__ import annotations

import argparse

from zoo.commands._common import add_set_flag, parse_assignment

TRAIN_FLAGS = {
    # flag: (dotted config key, type, help)
    "--epochs": ("epochs", int, "number of epochs"),
    "--lr": ("optim.lr", float, "(peak) learning rate"),
    "--optimizer": ("optim.name", str, "adamw, adam or sgd"),
    "--weight-decay": ("optim.weight_decay", float, "weight decay"),
    "--schedule": ("schedule.name", str, "onecycle, cosine, step or constant"),
    "--batch-size": ("batch_size", int, "crystals per batch"),
    "--patience": ("patience", int, "early stopping patience in epochs"),
    "--seed": ("seed", int, "random seed (same seed, same result)"),
    "--threads": ("threads", int, "torch threads"),
    "--workers": ("data.workers", int, "processes for graph building"),
    "--split": ("data.split_file", str, "CSV of id -> train/val/test"),
    "--id-key": ("data.id_key", str, "id column of JSON records"),
    "--element-table": ("element_table", str, "atom_init.json to use instead of generated"),
    "--run-name": ("run_name", str, "name of the run folder and MLflow run"),
    "--experiment": ("experiment", str, "MLflow experiment name"),
    "--output-dir": ("output_dir", str, "where run folders go"),
}

NAME = "train"
HELP = "train a model (default: cgcnn on the built-in set)"
EXAMPLES = [
    "zoo train --model cgcnn --target shear --epochs 30",
    "zoo train --config configs/cgcnn-angle-global-mt.yaml --data my_data.json.gz",
]
"""Shown at the end of the command's ``--help``."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="registered variant (see zoo models); default cgcnn")
    parser.add_argument("--target", help="shear, bulk or shear,bulk (default shear)")
    parser.add_argument("--data", help="data file or folder (default: built-in demo set)")
    parser.add_argument("--config", help="YAML config; flags override it")
    for flag, (key, kind, text) in TRAIN_FLAGS.items():
        aliases = ("-o", "--output") if flag == "--output-dir" else ()
        action = parser.add_argument(flag, *aliases, type=kind, help=text)
        action.config_key = key  # its default is the config's, looked up when help is shown
    parser.add_argument(
        "--target-column",
        action="append",
        metavar="TARGET=COLUMN",
        help="column/info key holding a target (repeatable)",
    )
    add_set_flag(parser, "any config key, dotted (e.g. architecture.n_conv=4)")
    parser.add_argument("--skip-bad", action="store_true", help="skip and report bad entries")
    parser.add_argument(
        "--strict", action="store_true", help="split-file ids missing from the data are an error"
    )
    parser.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run")
    parser.add_argument("--no-track", action="store_true", help="do not log to MLflow")
    parser.add_argument(
        "--register",
        metavar="NAME",
        help="register the model in the MLflow registry (alias champion if its validation "
        "score beats the current champion's, as zoo tune --final)",
    )


def train_overrides(args) -> dict:
    overrides: dict = {}
    for flag, (key, _, _) in TRAIN_FLAGS.items():
        value = getattr(args, flag.lstrip("-").replace("-", "_"))
        if value is not None:
            overrides[key] = value
    if args.model is not None:
        overrides["model"] = args.model
    if args.target is not None:
        overrides["targets"] = [t.strip() for t in args.target.split(",")]
    if args.data is not None:
        overrides["data.path"] = args.data
    if args.skip_bad:
        overrides["data.skip_bad"] = True
    if args.strict:
        overrides["data.strict"] = True
    if args.target_column:
        overrides["data.target_keys"] = dict(parse_assignment(t) for t in args.target_column)
    for key, value in args.set or []:
        overrides[key] = value
    return overrides


def print_metrics(result) -> None:
    """The final metrics of a run as a table: one row per split and target."""
    from zoo import names

    metrics = result.metrics
    print("\nsplit  target  MAE(log10)  MAE(GPa)  RMSE(GPa)     R2  max err(GPa)")
    for split in names.SPLITS:
        for target in result.targets:
            if names.split_metric(split, target, "mae", "log10") not in metrics:
                continue  # no such split in this run (a refit has no validation split)
            m = {
                (name, unit): metrics[names.split_metric(split, target, name, unit)]
                for name in names.METRICS
                for unit in names.UNITS
            }
            print(
                f"{split:5}  {target:6}  {m['mae', 'log10']:10.4f}  {m['mae', 'gpa']:8.2f}  "
                f"{m['rmse', 'gpa']:9.2f}  {m['r2', 'gpa']:5.3f}  {m['max_error', 'gpa']:12.1f}"
            )
    seconds = metrics[names.TRAIN_SECONDS]
    print(f"\nbest epoch {result.best_epoch}, {seconds:.0f} s of training")
    for line in small_split_notes(result.output_dir):
        print(line)


SMALL_SPLIT = 30
"""A validation or test split of fewer crystals than this gets a note: its MAE says little."""


def small_split_notes(output_dir) -> list[str]:
    """A note for every validation or test split of the run with under :data:`SMALL_SPLIT`
    crystals (read from its ``predictions.csv``)."""
    from pathlib import Path

    import pandas as pd

    path = Path(output_dir) / "predictions.csv"
    if not path.exists():
        return []
    sizes = pd.read_csv(path, usecols=["split"])["split"].value_counts()
    return [
        f"note: the {split} split holds {sizes[split]} crystals, too few for its MAE to say much "
        "(another seed or split moves it a lot); compare models on a larger data set"
        for split in ("val", "test")
        if 0 < sizes.get(split, 0) < SMALL_SPLIT
    ]


def run(args) -> int:
    from zoo.config import load_config
    from zoo.files import check_output_folder
    from zoo.tracking import tracking_uri
    from zoo.training import train

    if args.resume:
        result = train(resume=args.resume, track=not args.no_track)
    else:
        config = load_config(args.config, train_overrides(args))
        check_output_folder(config.output_dir)
        result = train(config, track=not args.no_track)
    print_metrics(result)
    print(f"model bundle : {result.bundle_path}")
    print(f"run folder   : {result.output_dir} (plots, predictions.csv, history.csv)")
    if result.run_id:
        print(f"MLflow run   : {result.run_id} in {tracking_uri()}  (browse with: zoo ui)")
    if args.register:
        register_run(result, args.register)
    return 0


def register_run(result, name: str) -> None:
    """Log the run's pyfunc model (once) and register it; its score for the champion rule is
    the best epoch's validation score (the kept epoch's)."""
    import math

    from zoo import names, tracking
    from zoo.serving import pyfunc_of_run, register

    if not result.run_id:
        raise ValueError("--register needs an MLflow run (drop --no-track)")
    tracking.quiet_logging()
    scores = [row.get(names.score("val"), math.inf) for row in result.history]
    score = min(scores)  # a train+val refit has no validation score: inf, never preferred
    model_uri = pyfunc_of_run(result.run_id, result.bundle_path)
    tags = {"zoo.run_id": result.run_id, "zoo.kind": "train"}
    version, champion = register(model_uri, name, score, tags, log=lambda text: None)
    state = "champion" if champion else "not champion (an earlier version validates better)"
    print(f"registered   : {name} version {version}, {state}; models:/{name}@champion")
