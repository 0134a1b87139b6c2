"""JSON (optionally gzipped) lists of records holding a structure and modulus columns."""

from __future__ import annotations

import gzip
import json
from functools import partial
from pathlib import Path

from zoo.readers.cif import warnings_naming
from zoo.readers.jsonfiles import first_character, load_json
from zoo.readers.registry import Entry, ReadOptions, input_format, is_file_named
from zoo.readers.structures import parse_structure

DEFAULT_ID_KEY = "mp_id"
DEFAULT_TARGET_KEYS = {"shear": "shear_modulus_vrh", "bulk": "bulk_modulus_vrh"}
"""Column names of the Materials Project elasticity export (values in GPa)."""


def record_entry(place: str, record, id_key: str, target_keys: dict[str, str], structure_key: str):
    """One JSON record as an :class:`Entry` (``place``: ``row-N`` or ``line-N``, 1-based, its
    id when the record has no ``id_key``). A record that is no object, whose id is null or
    empty, or that has no structure is bad input of its own; the structure (a dict or CIF /
    POSCAR text, never a path) is parsed by :func:`~zoo.readers.structures.parse_structure`."""
    if not isinstance(record, dict):
        return Entry(place, None, {}, "record is not a JSON object")
    if id_key in record and record[id_key] in (None, ""):
        return Entry(place, None, {}, f"record's {id_key!r} is {json.dumps(record[id_key])}")
    entry = str(record.get(id_key, place))
    if record.get(structure_key) is None:
        return Entry(entry, None, {}, f"record has no {structure_key!r} value")
    return Entry(
        entry,
        partial(parse_named, entry, record[structure_key]),
        {t: record.get(key) for t, key in target_keys.items()},
    )


def parse_named(entry: str, value):
    """:func:`~zoo.readers.structures.parse_structure`, with the parser's warnings (pymatgen's
    about a CIF) naming the entry they are about."""
    with warnings_naming(entry):
        return parse_structure(value)


def is_json_list(path) -> bool:
    """A ``.json[.gz]`` file that is not an object (a Matbench file is one)."""
    return is_file_named(".json", ".json.gz")(path) and first_character(path) != "{"


@input_format(
    "records-json",
    reads="*.json[.gz]: a JSON list of records with a structure (pymatgen dict or CIF "
    "text), an id and modulus columns in GPa",
    priority=40,
    matches=is_json_list,
    options=("id_key", "target_keys", "with_targets"),
    streams=False,
)
def _open_list(path: Path, options: ReadOptions):
    """A JSON list of records (read whole: JSON has no streaming reader in the standard
    library, and a list is one value)."""
    records = load_json(path)
    if not isinstance(records, list):
        raise ValueError(f"{path}: JSON is neither a Matbench file nor a list of records")
    target_keys = options.target_keys or DEFAULT_TARGET_KEYS
    id_key = options.id_key or DEFAULT_ID_KEY
    entries = (
        record_entry(f"row-{row}", r, id_key, target_keys, "structure")
        for row, r in enumerate(records, start=1)
    )
    return list(target_keys), entries


def _count_lines(path: Path) -> int:
    """Entries of a JSON-lines file: its non-blank lines (each is one entry, readable or not),
    counted without parsing (1 s for 80,000 records against 6 s parsed)."""
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rb") as handle:
        return sum(1 for line in handle if line.strip(b" \t\n\r\x0b\x0c\xef\xbb\xbf"))


@input_format(
    "records-jsonl",
    reads="*.jsonl[.gz]: one such record per line",
    priority=50,
    matches=is_file_named(".jsonl", ".jsonl.gz"),
    options=("id_key", "target_keys", "with_targets"),
    count=_count_lines,
)
def _open_lines(path: Path, options: ReadOptions):
    """JSON lines: one record per line, read line by line."""
    target_keys = options.target_keys or DEFAULT_TARGET_KEYS
    id_key = options.id_key or DEFAULT_ID_KEY

    def entries():
        opener = gzip.open if path.name.endswith(".gz") else open
        with opener(path, "rt", encoding="utf-8-sig") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except (json.JSONDecodeError, RecursionError) as error:
                    reason = getattr(error, "msg", "nested too deeply")
                    yield Entry(f"line-{number}", None, {}, f"invalid JSON ({reason})")
                    continue
                yield record_entry(f"line-{number}", record, id_key, target_keys, "structure")

    return list(target_keys), entries()
