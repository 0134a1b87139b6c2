"""The zoo's own pretrained models, shipped in the package: a name -> its model file, its model
card (Markdown) and its record (JSON: training data, scores, intended use, limits).

``zoo pretrained`` lists them; every place that takes a model spec (``zoo predict --model``,
``zoo screen --model``, :func:`zoo.load_model`) also takes a pretrained name. The files are made
by ``bench/build_pretrained.py`` (commands and figures in docs/benchmarks.md).
"""

from __future__ import annotations

import json
from pathlib import Path

FOLDER = Path(__file__).resolve().parent
SUFFIX = ".zoo.pt"


def names() -> list[str]:
    """Names of the shipped models."""
    return sorted(p.name[: -len(SUFFIX)] for p in FOLDER.glob(f"*{SUFFIX}"))


def is_pretrained(spec: str) -> bool:
    return (FOLDER / f"{spec}{SUFFIX}").is_file()


def model_path(name: str) -> Path:
    """The model file of a shipped model; an unknown name is an error listing the known ones."""
    path = FOLDER / f"{name}{SUFFIX}"
    if not path.is_file():
        known = ", ".join(names()) or "none"
        raise ValueError(f"{name}: no such pretrained model (shipped: {known})")
    return path


def card_path(name: str) -> Path:
    """The model card (Markdown) of a shipped model."""
    model_path(name)
    return FOLDER / f"{name}.md"


def record(name: str) -> dict:
    """The shipped model's record: targets, members, training data, test scores, citations."""
    model_path(name)
    return json.loads((FOLDER / f"{name}.json").read_text())
