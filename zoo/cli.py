"""The ``zoo`` command: one CLI with subcommands."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

import zoo._backend  # noqa: F401
from zoo.dataset import TARGETS

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
    "--output-dir": ("output_dir", str, "where run folders go (default runs/)"),
}


def _parse_assignment(text: str) -> tuple[str, object]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    return key.strip(), yaml.safe_load(value)


def _train_overrides(args) -> dict:
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
        overrides["data.target_keys"] = dict(_parse_assignment(t) for t in args.target_column)
    for key, value in args.set or []:
        overrides[key] = value
    return overrides


def cmd_train(args) -> int:
    from zoo.config import load_config
    from zoo.tracking import tracking_uri
    from zoo.training import train

    if args.resume:
        result = train(resume=args.resume, track=not args.no_track)
    else:
        config = load_config(args.config, _train_overrides(args))
        result = train(config, track=not args.no_track)
    targets = [t for t in TARGETS if f"train_{t}_mae_log10" in result.metrics]
    print("\nsplit  target  MAE(log10)  MAE(GPa)  RMSE(GPa)     R2  max err(GPa)")
    for split in ("train", "val", "test"):
        for target in targets:
            m = {
                k[len(split) + len(target) + 2 :]: v
                for k, v in result.metrics.items()
                if k.startswith(f"{split}_{target}_")
            }
            if m:
                print(
                    f"{split:5}  {target:6}  {m['mae_log10']:10.4f}  {m['mae_gpa']:8.2f}  "
                    f"{m['rmse_gpa']:9.2f}  {m['r2_gpa']:5.3f}  {m['max_error_gpa']:12.1f}"
                )
    print(f"\nbest epoch {result.best_epoch}, {result.metrics['train_seconds']:.0f} s of training")
    print(f"model bundle : {result.bundle_path}")
    print(f"run folder   : {result.output_dir} (plots, predictions.csv, history.csv)")
    if result.run_id:
        print(f"MLflow run   : {result.run_id} in {tracking_uri()}  (browse with: zoo ui)")
    return 0


def cmd_predict(args) -> int:
    from zoo.predict import predict_structures
    from zoo.readers import read_dataset
    from zoo.serving import resolve_bundle

    bundle = resolve_bundle(args.model)
    dataset = read_dataset(args.input, skip_bad=True, with_targets=False)
    table = predict_structures(
        bundle,
        dataset.ids,
        dataset.structures,
        batch_size=args.batch_size,
        skip_bad=not args.strict,
        workers=args.workers,
        progress=True,
    )
    for entry, reason in dataset.skipped.items:
        table.loc[len(table)] = {"id": entry, "error": reason}
    if args.strict and (table["error"] != "").any():
        bad = table[table["error"] != ""].iloc[0]
        print(f"error: {bad['id']}: {bad['error']}", file=sys.stderr)
        return 2
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.output, index=False)
    failed = int((table["error"] != "").sum())
    print(
        f"wrote {len(table) - failed} predictions to {args.output}"
        + (f"; {failed} entries could not be predicted (see the error column)" if failed else "")
    )
    return 0


def cmd_tune(args) -> int:
    from tuning.study import StudySpec, run_study

    overrides = dict(args.set or [])
    if args.epochs is not None:
        overrides["epochs"] = args.epochs
    spec = StudySpec(
        model=args.model,
        targets=[t.strip() for t in args.target.split(",")],
        trials=args.trials,
        data=args.data,
        split=args.split,
        study=args.study,
        storage=args.storage,
        space=args.space,
        pruner=args.pruner,
        timeout=args.timeout,
        jobs=args.jobs,
        threads=args.threads,
        seed=args.seed,
        final=args.final,
        overrides=overrides,
        output_dir=args.output_dir,
    )
    run_study(spec)
    return 0


def cmd_import_cgcnn(args) -> int:
    from zoo.cgcnn_import import import_cgcnn
    from zoo.elements import read_element_table

    bundle = import_cgcnn(args.checkpoint, read_element_table(args.atom_init), target=args.target)
    path = bundle.save(args.output)
    print(f"imported {args.checkpoint} ({bundle.transform.targets[0]}) -> {path}")
    return 0


def cmd_models(args) -> int:
    from models import count_parameters, create_model, get_model_entry, list_models

    for name in list_models(args.pattern):
        entry = get_model_entry(name)
        n_params = count_parameters(create_model(name))
        print(
            f"{name}  ({n_params:,} parameters with default settings, one target; graph parts: "
            f"{', '.join(entry.graph_parts)})"
        )
        print(f"    {entry.description}")
        print(f"    paper: {entry.paper}\n")
    return 0


def cmd_compare(args) -> int:
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


def cmd_ui(args) -> int:
    import os
    import signal
    import socket
    import subprocess
    import time
    import urllib.request

    from zoo import tracking
    from zoo.tracking import tracking_uri

    with socket.socket() as probe:
        try:
            probe.bind((args.host, args.port))
        except OSError:
            print(
                f"error: port {args.port} on {args.host} is in use (another zoo ui?); "
                "choose one with --port",
                file=sys.stderr,
            )
            return 2
    uri = tracking_uri()
    server = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", uri]
    server += ["--host", args.host, "--port", str(args.port), "--workers", "1"]
    server_log = tracking.MLRUNS / "ui-server.log"
    guard = subprocess.Popen(
        [sys.executable, "-m", "zoo.ui_guard", str(os.getpid()), *server],
        start_new_session=True,
        stdout=open(server_log, "ab"),  # noqa: SIM115 (the child owns it)
        stderr=subprocess.STDOUT,
    )
    url = f"http://{args.host}:{args.port}"

    def stop(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        while guard.poll() is None:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2):
                    break
            except OSError:
                time.sleep(0.3)
        if guard.poll() is not None:
            tail = server_log.read_text(errors="replace").splitlines()[-5:]
            print("error: the MLflow server stopped:", *tail, sep="\n  ", file=sys.stderr)
            return 2
        print(f"MLflow UI at {url} for {uri} (Ctrl-C stops it; server log {server_log})")
        sys.stdout.flush()
        return guard.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        if guard.poll() is None:
            guard.terminate()
            guard.wait(timeout=30)


def _add_set_flag(parser: argparse.ArgumentParser, text: str) -> None:
    parser.add_argument(
        "--set", action="append", type=_parse_assignment, metavar="KEY=VALUE", help=text
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="zoo", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train a model (default: cgcnn on the built-in set)")
    train.add_argument("--model", help="registered variant (see zoo models); default cgcnn")
    train.add_argument("--target", help="shear, bulk or shear,bulk (default shear)")
    train.add_argument("--data", help="data file or folder (default: built-in demo set)")
    train.add_argument("--config", help="YAML config; flags override it")
    for flag, (_, kind, text) in TRAIN_FLAGS.items():
        train.add_argument(flag, type=kind, help=text)
    train.add_argument(
        "--target-column",
        action="append",
        metavar="TARGET=COLUMN",
        help="column/info key holding a target (repeatable)",
    )
    _add_set_flag(train, "any config key, dotted (e.g. architecture.n_conv=4)")
    train.add_argument("--skip-bad", action="store_true", help="skip and report bad entries")
    train.add_argument(
        "--strict", action="store_true", help="split-file ids missing from the data are an error"
    )
    train.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run")
    train.add_argument("--no-track", action="store_true", help="do not log to MLflow")
    train.set_defaults(func=cmd_train)

    predict = sub.add_parser("predict", help="predict moduli (GPa) for structures")
    predict.add_argument(
        "--model",
        required=True,
        help="model bundle file, registry URI (models:/cgcnn-shear@champion) or run URI "
        "(runs:/RUN_ID/model)",
    )
    predict.add_argument("--input", required=True, help="structure file or folder, or data set")
    predict.add_argument("-o", "--output", required=True, help="output CSV")
    predict.add_argument("--batch-size", type=int, default=256)
    predict.add_argument("--workers", type=int, default=1)
    predict.add_argument("--strict", action="store_true", help="fail on the first bad entry")
    predict.set_defaults(func=cmd_predict)

    tune = sub.add_parser("tune", help="Optuna study for one variant and target(s)")
    tune.add_argument("--model", default="cgcnn", help="registered variant (default cgcnn)")
    tune.add_argument("--target", default="shear", help="shear, bulk or shear,bulk")
    tune.add_argument("--trials", type=int, default=20, help="finished trials the study holds")
    tune.add_argument("--data", help="data file or folder (default: built-in demo set)")
    tune.add_argument("--split", help="CSV of id -> train/val/test")
    tune.add_argument("--study", help="study name (default MODEL-TARGETS); same name resumes")
    tune.add_argument(
        "--storage",
        help="SQLAlchemy URL (sqlite:///..., postgresql://...) or journal:PATH "
        "(default: sqlite file mlruns/optuna/STUDY.db)",
    )
    tune.add_argument("--space", help="search space YAML (default: tuning/spaces/)")
    tune.add_argument("--pruner", default="median", choices=["median", "hyperband", "none"])
    tune.add_argument("--timeout", type=float, help="stop starting trials after S seconds")
    tune.add_argument("--jobs", type=int, default=1, help="worker processes sharing the study")
    tune.add_argument("--threads", type=int, help="torch threads per worker")
    tune.add_argument("--seed", type=int, default=0)
    tune.add_argument("--epochs", type=int, help="epochs per trial (overrides the space)")
    _add_set_flag(tune, "fix any config key for every trial (dotted)")
    tune.add_argument("--output-dir", default="runs/tune", help="where trial run folders go")
    tune.add_argument(
        "--final",
        action="store_true",
        help="refit the best trial on train+val, test it, register it (alias champion if better)",
    )
    tune.set_defaults(func=cmd_tune)

    imp = sub.add_parser("import-cgcnn", help="turn an original CGCNN checkpoint into a bundle")
    imp.add_argument("checkpoint", help="CHECKPOINT.pth.tar of the original code")
    imp.add_argument("--atom-init", required=True, help="atom_init.json it was trained with")
    imp.add_argument("--target", choices=["shear", "bulk"], help="default: from the checkpoint")
    imp.add_argument("-o", "--output", required=True, help="model bundle to write")
    imp.set_defaults(func=cmd_import_cgcnn)

    models = sub.add_parser("models", help="list registered model variants")
    models.add_argument("pattern", nargs="?", default="*")
    models.set_defaults(func=cmd_models)

    compare = sub.add_parser(
        "compare", help="test MAE of two groups of runs, with a bootstrap interval of the change"
    )
    compare.add_argument("--base", nargs="+", required=True, help="run folders (one per seed)")
    compare.add_argument("--other", nargs="+", required=True, help="run folders to compare")
    compare.add_argument("--target", help="shear, bulk or shear,bulk (default: all in common)")
    compare.add_argument("--split", default="test", choices=["train", "val", "test"])
    compare.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples")
    compare.set_defaults(func=cmd_compare)

    ui = sub.add_parser("ui", help="serve the MLflow UI on the zoo's runs")
    ui.add_argument("--host", default="127.0.0.1")
    ui.add_argument("--port", type=int, default=5000)
    ui.set_defaults(func=cmd_ui)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return 130
    except (ValueError, FileNotFoundError, KeyError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
