"""JSON (optionally gzipped) lists of records holding a structure and modulus columns."""

from __future__ import annotations

from pathlib import Path

from pymatgen.core import Structure

from zoo.dataset import Dataset, DatasetBuilder
from zoo.errors import BadInputError
from zoo.readers.cif import structure_from_cif

DEFAULT_ID_KEY = "mp_id"
DEFAULT_TARGET_KEYS = {"shear": "shear_modulus_vrh", "bulk": "bulk_modulus_vrh"}
"""Column names of the Materials Project elasticity export (values in GPa)."""


def structure_from_value(value) -> Structure:
    """A structure from a pymatgen dict or from CIF text."""
    if isinstance(value, dict):
        return Structure.from_dict(value)
    if isinstance(value, str):
        return structure_from_cif(value)
    raise ValueError(f"unsupported structure value of type {type(value).__name__}")


def records_from_payload(
    records: list,
    source: str,
    id_key: str = DEFAULT_ID_KEY,
    target_keys: dict[str, str] | None = None,
    structure_key: str = "structure",
    skip_bad: bool = False,
    with_targets: bool = True,
) -> Dataset:
    """Turn a list of record dicts into a :class:`Dataset`. Absent or null values are missing."""
    target_keys = target_keys or DEFAULT_TARGET_KEYS
    builder = DatasetBuilder(source, list(target_keys) if with_targets else [], skip_bad=skip_bad)
    for row, record in enumerate(records):
        if not isinstance(record, dict):
            builder.reject(BadInputError(f"row-{row}", "record is not a JSON object"))
            continue
        entry = str(record.get(id_key, f"row-{row}"))
        if record.get(structure_key) is None:
            builder.reject(BadInputError(entry, f"record has no {structure_key!r} value"))
            continue
        builder.add(
            entry,
            lambda v=record[structure_key]: structure_from_value(v),
            {t: record.get(key) for t, key in target_keys.items()},
        )
    return builder.build()


def read_records(
    path: str | Path,
    id_key: str = DEFAULT_ID_KEY,
    target_keys: dict[str, str] | None = None,
    skip_bad: bool = False,
) -> Dataset:
    """Read a JSON list of records (``.json`` or ``.json.gz``)."""
    from zoo.readers.matbench import load_json

    path = Path(path)
    payload = load_json(path)
    if not isinstance(payload, list):
        raise ValueError(f"{path}: expected a JSON list of records")
    return records_from_payload(payload, str(path), id_key, target_keys, skip_bad=skip_bad)
