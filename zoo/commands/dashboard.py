"""``zoo dashboard``: optuna-dashboard on a zoo study (README, "zoo tune")."""

from __future__ import annotations

import argparse

NAME = "dashboard"
HELP = "optuna-dashboard on a study (its default storage found from its name)"
EXAMPLES = [
    "zoo dashboard --study cgcnn-shear",
]
"""Shown at the end of the command's ``--help``."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--study", required=True, help="study name (as given to zoo tune)")
    parser.add_argument("--storage", help="storage URL (default: the study's SQLite file)")
    parser.add_argument("--port", type=int, default=8080, help="port on 127.0.0.1 (default 8080)")


def run(args) -> int:
    from pathlib import Path

    try:
        from optuna_dashboard import run_server
    except ImportError:
        raise RuntimeError(
            "optuna-dashboard is not installed: pip install -e '.[dashboard]'"
        ) from None
    url = args.storage
    if url is None:  # where zoo tune keeps a study by default (zoo.tuning.storage)
        path = Path("mlruns/optuna").resolve() / f"{args.study}.db"
        if not path.exists():
            raise ValueError(f"no study {args.study!r} here (no {path}); give --storage")
        url = f"sqlite:///{path}"
    print(f"optuna-dashboard on {url}: http://127.0.0.1:{args.port}/dashboard", flush=True)
    run_server(url, host="127.0.0.1", port=args.port)
    return 0
