"""``zoo predict``: moduli for any structures with a bundle, an ensemble or a registered model."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from zoo.processes import usable_cpus

NAME = "predict"
HELP = "predict moduli (GPa) for structures"
FLOAT_FORMAT = "%.6g"
"""Numbers are written with 6 significant digits (more than any model's accuracy)."""
EXAMPLES = [
    "zoo predict --model zoo-elastic-mp2024 --input my_cifs/ -o moduli.csv",
    "zoo predict --model models:/cgcnn-shear@champion --input POSCAR",
]
"""Shown at the end of the command's ``--help``."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        required=True,
        help="model bundle or ensemble file, pretrained name (zoo pretrained), registry URI "
        "(models:/cgcnn-shear@champion) or run URI (runs:/RUN_ID/model)",
    )
    parser.add_argument("--input", required=True, help="structure file or folder, or data set")
    parser.add_argument(
        "-o", "--output", default="-", help="output CSV (default -: a table on standard output)"
    )
    parser.add_argument(
        "--batch-size", type=int, default=256, help="most crystals per batch (default: 256)"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=usable_cpus(),
        help="processes parsing structures and building graphs; 1: all in this process "
        "(default: the CPUs this process may use, here %(default)s)",
    )
    parser.add_argument("--strict", action="store_true", help="fail on the first bad entry")


def run(args) -> int:
    from zoo.files import atomic_write, check_output_file
    from zoo.loaded_model import load_model

    if args.output != "-":
        check_output_file(args.output)
    model = load_model(args.model, batch_size=args.batch_size, workers=args.workers)
    version = f", registry version {model.version}" if model.version else ""
    print(f"model: {args.model}{version} ({', '.join(model.targets)})", file=sys.stderr)
    table = model.predict_path(args.input, strict=args.strict, progress=True)
    if args.strict and (table["error"] != "").any():
        bad = table[table["error"] != ""].iloc[0]
        print(f"error: {bad['id']}: {bad['error']}", file=sys.stderr)
        return 2
    failed = int((table["error"] != "").sum())
    entries = "1 entry" if failed == 1 else f"{failed} entries"
    note = f"; {entries} could not be predicted (see the error column)" if failed else ""
    if args.output == "-":
        table.to_csv(sys.stdout, index=False, float_format=FLOAT_FORMAT)
        print(f"{len(table) - failed} predictions{note}", file=sys.stderr)
        return 0
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(output) as partial:
        table.to_csv(partial, index=False, float_format=FLOAT_FORMAT)
    print(f"wrote {len(table) - failed} predictions to {output}{note}")
    return 0
