"""The ``zoo`` command: one CLI with subcommands, one module each (:mod:`zoo.commands`)."""

from __future__ import annotations

import argparse
import errno
import os
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
        parser_of = sub.add_parser(
            command.NAME,
            help=command.HELP,
            description=command.HELP,
            epilog="examples:\n" + "\n".join(f"  {line}" for line in command.EXAMPLES),
            formatter_class=HelpWithDefaults,
        )
        command.add_arguments(parser_of)
        sub.choices[command.NAME].set_defaults(func=command.run)
    return parser


class HelpWithDefaults(argparse.RawDescriptionHelpFormatter):
    """Help that states every option's default (unless its text already does, or it has
    none) and keeps the examples' line breaks."""

    def _get_help_string(self, action) -> str:
        text = action.help or ""
        default = action.default
        if getattr(action, "config_key", None):  # a flag setting a training config key
            default = config_default(action.config_key)
            return text if default is None else f"{text} (default: {default})"
        if "default" in text.lower() or default in (None, False, "", argparse.SUPPRESS):
            return text
        return f"{text} (default: %(default)s)"


def config_default(key: str):
    """The default of a dotted training config key (``optim.lr``), None if it has none."""
    from zoo.config import TrainConfig

    value = TrainConfig().model_dump()
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    """Warnings as ``warning: <message>`` lines (the message names its file or entry)."""
    return f"warning: {' '.join(str(message).split())}\n"


def main(argv: list[str] | None = None) -> int:
    """Run one command. Bad input and operating-system failures (a full disk, a missing or
    unwritable path, an unreachable scheduler) end in one line naming what failed, never a
    traceback; a reader that closes the pipe (``| head``) ends the command quietly."""
    warnings.formatwarning = _one_line_warning
    args = build_parser().parse_args(argv)
    keep_freed_memory()
    try:
        code = args.func(args)
        sys.stdout.flush()  # a closed pipe shows here, not at exit
        return code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        _quiet_stdout()
        return 0
    except OSError as error:
        print(f"error: {os_error_line(error)}", file=sys.stderr)
        return 2
    except (ValueError, KeyError, RuntimeError) as error:
        print(f"error: {' '.join(str(error).split())}", file=sys.stderr)
        return 2


def os_error_line(error: OSError) -> str:
    """``<path>: <cause>`` for an operating-system error (both paths of a rename), else the
    message, on one line."""
    cause = error.strerror or str(error) or type(error).__name__
    paths = [p for p in (error.filename, error.filename2) if p is not None]
    where = " -> ".join(map(str, paths))
    text = f"{where}: {cause}" if where else cause
    if error.errno == errno.ENOSPC:
        text += " (free some space; the same command continues where it stopped)"
    return " ".join(text.split())


def _quiet_stdout() -> None:
    """Standard output to /dev/null, so that flushing it at exit raises nothing more."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


if __name__ == "__main__":
    sys.exit(main())
