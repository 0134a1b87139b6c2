"""``zoo models``: the registered variants."""

from __future__ import annotations

import argparse

NAME = "models"
HELP = "list registered model variants"
EXAMPLES = [
    "zoo models",
    "zoo models 'cgcnn-angle*'",
]
"""Shown at the end of the command's ``--help``."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pattern", nargs="?", default="*", help="shell pattern of model names")


def run(args) -> int:
    from zoo.models import count_parameters, create_model, get_model_entry, list_models

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
