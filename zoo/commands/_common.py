"""What several commands share: ``KEY=VALUE`` settings."""

from __future__ import annotations

import argparse

import yaml


def parse_assignment(text: str) -> tuple[str, object]:
    """``KEY=VALUE`` -> ``(KEY, VALUE as YAML)``."""
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    return key.strip(), yaml.safe_load(value)


def add_set_flag(parser: argparse.ArgumentParser, text: str) -> None:
    """``--set KEY=VALUE`` (repeatable)."""
    parser.add_argument(
        "--set", action="append", type=parse_assignment, metavar="KEY=VALUE", help=text
    )
