"""JSON (optionally gzipped) lists of records holding a structure and modulus columns."""

from __future__ import annotations

import gzip
import json
from functools import partial
from pathlib import Path

from pymatgen.core import Lattice, Structure

from zoo.readers.cif import structure_from_cif
from zoo.readers.jsonfiles import first_character, load_json
from zoo.readers.registry import Entry, ReadOptions, input_format, is_file_named

DEFAULT_ID_KEY = "mp_id"
DEFAULT_TARGET_KEYS = {"shear": "shear_modulus_vrh", "bulk": "bulk_modulus_vrh"}
"""Column names of the Materials Project elasticity export (values in GPa)."""


def structure_from_value(value) -> Structure:
    """A structure from a pymatgen dict or from CIF text."""
    if isinstance(value, dict):
        return structure_from_dict(value)
    if isinstance(value, str):
        return structure_from_cif(value)
    raise ValueError(f"unsupported structure value of type {type(value).__name__}")


def structure_from_dict(value: dict) -> Structure:
    """``Structure.from_dict``, built once in the common case: every site one element at full
    occupancy with fractional coordinates, no oxidation states, no site properties, no charge.
    Then the structure is made from its lattice, elements and fractional coordinates
    (``from_dict`` builds every site twice: 0.9 of its 1.2 ms for a cell of 37 atoms). Site
    labels, which nothing here reads, take their default. Any other dict goes to
    ``from_dict``."""
    try:
        sites = value["sites"]
        simple = not value.get("charge") and all(
            len(site["species"]) == 1
            and set(site["species"][0]) == {"element", "occu"}
            and site["species"][0]["occu"] == 1
            and not site.get("properties")
            and "abc" in site
            for site in sites
        )
        lattice = value["lattice"]
    except (KeyError, TypeError, AttributeError):
        simple = False
    if not simple:
        return Structure.from_dict(value)
    return Structure(
        Lattice(lattice["matrix"], pbc=tuple(lattice.get("pbc", (True, True, True)))),
        [site["species"][0]["element"] for site in sites],
        [site["abc"] for site in sites],
    )


def record_entry(row: int, record, id_key: str, target_keys: dict[str, str], structure_key: str):
    """One JSON record as an :class:`Entry`: a record that is no object or has no structure is
    bad input of its own."""
    if not isinstance(record, dict):
        return Entry(f"row-{row}", None, {}, "record is not a JSON object")
    entry = str(record.get(id_key, f"row-{row}"))
    if record.get(structure_key) is None:
        return Entry(entry, None, {}, f"record has no {structure_key!r} value")
    return Entry(
        entry,
        partial(structure_from_value, record[structure_key]),
        {t: record.get(key) for t, key in target_keys.items()},
    )


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
        record_entry(row, r, id_key, target_keys, "structure") for row, r in enumerate(records)
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
            for row, line in enumerate(handle):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as error:
                    yield Entry(f"line-{row + 1}", None, {}, f"invalid JSON ({error.msg})")
                    continue
                yield record_entry(row, record, id_key, target_keys, "structure")

    return list(target_keys), entries()
