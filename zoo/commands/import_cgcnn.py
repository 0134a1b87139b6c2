"""``zoo import-cgcnn``: an original CGCNN checkpoint as a zoo model bundle."""

from __future__ import annotations

import argparse

NAME = "import-cgcnn"
HELP = "turn an original CGCNN checkpoint into a bundle"
EXAMPLES = [
    "zoo import-cgcnn shear-moduli.pth.tar --atom-init atom_init.json -o shear.zoo.pt",
]
"""Shown at the end of the command's ``--help``."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="CHECKPOINT.pth.tar of the original code")
    parser.add_argument("--atom-init", required=True, help="atom_init.json it was trained with")
    parser.add_argument("--target", choices=["shear", "bulk"], help="default: from the checkpoint")
    parser.add_argument("-o", "--output", required=True, help="model bundle to write")


def run(args) -> int:
    from zoo.cgcnn_import import import_cgcnn
    from zoo.elements import read_element_table
    from zoo.files import check_output_file

    check_output_file(args.output)
    bundle = import_cgcnn(args.checkpoint, read_element_table(args.atom_init), target=args.target)
    path = bundle.save(args.output)
    print(f"imported {args.checkpoint} ({bundle.transform.targets[0]}) -> {path}")
    return 0
