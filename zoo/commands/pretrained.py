"""``zoo pretrained``: the models shipped with zoo; ``--card NAME`` prints one's model card,
``--register`` puts them in the MLflow registry (one registered model each, same name)."""

from __future__ import annotations

import argparse

NAME = "pretrained"
HELP = "list the shipped pretrained models; show a model card; register them"
EXAMPLES = [
    "zoo pretrained",
    "zoo pretrained --card zoo-elastic-mp2024",
]
"""Shown at the end of the command's ``--help``."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--card", metavar="NAME", help="print this model's card")
    parser.add_argument(
        "--register", action="store_true", help="register every shipped model in MLflow"
    )
    parser.add_argument("--experiment", default="pretrained", help="MLflow experiment (register)")


def run(args) -> int:
    from zoo import pretrained

    if args.card:
        print(pretrained.card_path(args.card).read_text())
        return 0
    shipped = pretrained.names()
    if not shipped:
        print("no pretrained models are shipped with this installation")
        return 0
    print(table(shipped))
    if args.register:
        for name in shipped:
            register(name, args.experiment)
    return 0


def table(shipped: list[str]) -> str:
    """One line per shipped model: name, kind, targets, training data, test MAE (log10 GPa)."""
    from zoo import pretrained

    lines = ["| name | kind | targets | trained on | test MAE (log10 GPa) | file |",
             "| --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for name in shipped:
        record = pretrained.record(name)
        scores = ", ".join(f"{t} {v:.4f}" for t, v in record["test_mae_log10"].items())
        size = pretrained.model_path(name).stat().st_size / 1e6
        lines.append(
            f"| {name} | {record['kind']} | {', '.join(record['targets'])} | "
            f"{record['training_data']} | {scores} | {size:.1f} MB |"
        )
    lines.append("use one: zoo predict --model NAME ...; zoo.load_model(NAME); "
                 "its card: zoo pretrained --card NAME")  # fmt: skip
    return "\n".join(lines)


def register(name: str, experiment: str) -> None:
    """Register a shipped model under its own name (alias champion by its validation score)."""
    from zoo import pretrained
    from zoo.serving import register_model_file

    record = pretrained.record(name)
    version, champion = register_model_file(
        pretrained.model_path(name),
        name,
        experiment=experiment,
        run_name=f"pretrained-{name}",
        val_score=float(record.get("val_mae_log10_mean", float("inf"))),
        tags={"zoo.kind": record["kind"], "zoo.pretrained": name},
        metrics={f"test_{t}_mae_log10": v for t, v in record["test_mae_log10"].items()},
    )
    state = " (champion)" if champion else ""
    print(f"registered {name} version {version}{state}: models:/{name}@champion")
