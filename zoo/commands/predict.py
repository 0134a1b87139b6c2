"""``zoo predict``: moduli for any structures with a bundle or a registered model."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

NAME = "predict"
HELP = "predict moduli (GPa) for structures"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        required=True,
        help="model bundle file, registry URI (models:/cgcnn-shear@champion) or run URI "
        "(runs:/RUN_ID/model)",
    )
    parser.add_argument("--input", required=True, help="structure file or folder, or data set")
    parser.add_argument("-o", "--output", required=True, help="output CSV")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--strict", action="store_true", help="fail on the first bad entry")


def run(args) -> int:
    from zoo.readers import read_dataset
    from zoo.resolve import load_predictor

    predictor = load_predictor(args.model, batch_size=args.batch_size, workers=args.workers)
    dataset = read_dataset(args.input, skip_bad=True, with_targets=False)
    table = predictor.predict(
        dataset.ids, dataset.structures, skip_bad=not args.strict, progress=True
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
