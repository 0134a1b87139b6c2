"""JSON files as users have them: gzipped or not, with or without a byte-order mark."""

from __future__ import annotations

import gzip
import json
from pathlib import Path


def load_json(path: Path) -> object:
    """The JSON value of a ``.json`` or ``.json.gz`` file, read as UTF-8 with or without a
    byte-order mark; invalid JSON is an error naming the file, line and column."""
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8-sig") as handle:
            return json.load(handle)
    except json.JSONDecodeError as error:
        raise ValueError(
            f"{path}: invalid JSON at line {error.lineno}, column {error.colno}: {error.msg}"
        ) from None
    except (UnicodeDecodeError, EOFError, gzip.BadGzipFile) as error:
        raise ValueError(f"{path}: not a readable JSON file ({error})") from None


def first_character(path: Path) -> str:
    """The first character of a (gzipped) text file that is not white space or a BOM."""
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8-sig", errors="replace") as handle:
            return handle.read(4096).lstrip()[:1]
    except (OSError, EOFError):
        return ""
