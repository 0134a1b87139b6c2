"""``zoo screen``: both moduli and the properties that follow from them for a large collection
of structures, streaming and resumable, locally or on a Dask cluster."""

from __future__ import annotations

import argparse

from zoo.processes import usable_cpus

NAME = "screen"
HELP = "screen many structures: moduli, derived properties, flags; resumable"
EXAMPLES = [
    "zoo screen --model zoo-elastic-mp2024 --input structures.jsonl.gz -o screen/",
    "zoo screen --model zoo-elastic-mp2024 --input cifs/ -o screen/ --engine dask",
]
"""Shown at the end of the command's ``--help``."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--input",
        help="structures: a folder tree of CIF/POSCAR files, *.extxyz, *.db (ASE), JSON or "
        "JSON-lines records (pymatgen dicts or CIF text), a Matbench file (default: the "
        "built-in demo set's 53 elemental solids)",
    )
    parser.add_argument(
        "--model",
        action="append",
        required=True,
        help="a pretrained name (zoo pretrained), model file or registry URI; repeat to give "
        "each target its model (a shear and a bulk model)",
    )
    parser.add_argument("--output-dir", "-o", "--output", required=True, help="output folder")
    parser.add_argument("--chunk-size", type=int, default=1000, help="structures per chunk")
    parser.add_argument(
        "--workers",
        type=int,
        default=usable_cpus(),
        help="worker processes (default: the CPUs this process may use, here %(default)s)",
    )
    parser.add_argument(
        "--engine",
        choices=["local", "dask"],
        default="local",
        help="local worker processes, or Dask tasks (a local cluster, or --scheduler)",
    )
    parser.add_argument(
        "--scheduler", help="Dask scheduler address (default: a local cluster of --workers)"
    )
    parser.add_argument(
        "--restart", action="store_true", help="discard a different screen in the output folder"
    )
    parser.add_argument(
        "--max-atoms", type=int, default=200, help="flag structures with more atoms per cell"
    )
    parser.add_argument("--id-key", help="id field of JSON records (default mp_id)")
    parser.add_argument("--no-card", action="store_true", help="skip the data card and plots")


def run(args) -> int:
    from zoo.files import check_output_folder
    from zoo.screening import ScreenSpec, run_screen

    check_output_folder(args.output_dir)
    spec = ScreenSpec(
        input=args.input,
        models=args.model,
        output_dir=args.output_dir,
        chunk_size=args.chunk_size,
        workers=args.workers,
        engine=args.engine,
        scheduler=args.scheduler,
        restart=args.restart,
        max_atoms=args.max_atoms,
        id_key=args.id_key,
        card=not args.no_card,
    )
    result = run_screen(spec)
    print(result.report())
    return 0
