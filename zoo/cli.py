"""The ``zoo`` command: one CLI with subcommands, one module each (:mod:`zoo.commands`)."""

from __future__ import annotations

import argparse
import sys
import warnings

import zoo
from zoo.commands import COMMANDS
from zoo.malloc import keep_freed_memory


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="zoo",
        description="Crystal graph networks for elastic moduli: "
        + ", ".join(command.NAME for command in COMMANDS)
        + ".",
    )
    parser.add_argument("--version", action="version", version=f"zoo {zoo.__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_arguments(sub.add_parser(command.NAME, help=command.HELP))
        sub.choices[command.NAME].set_defaults(func=command.run)
    return parser


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    """Warnings as ``warning: <message>`` lines (the message names its file or entry)."""
    return f"warning: {' '.join(str(message).split())}\n"


def main(argv: list[str] | None = None) -> int:
    warnings.formatwarning = _one_line_warning
    args = build_parser().parse_args(argv)
    keep_freed_memory()
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return 130
    except (ValueError, FileNotFoundError, KeyError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
