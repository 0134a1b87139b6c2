"""ASE databases (``*.db``), read row by row. Targets come from a row's key-value pairs under
the keys the user names (default ``shear`` and ``bulk``, in GPa); the id is the ``id`` pair if
present, else the row id."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from zoo.readers.registry import Entry, ReadOptions, input_format, is_file_named
from zoo.readers.structure_file import atoms_to_structure

DEFAULT_TARGET_KEYS = {"shear": "shear", "bulk": "bulk"}


@input_format(
    "ase-db",
    reads="*.db: an ASE database, targets from key-value pairs",
    priority=70,
    matches=is_file_named(".db"),
    options=("target_keys", "with_targets"),
)
def _open(path: Path, options: ReadOptions):
    target_keys = options.target_keys or DEFAULT_TARGET_KEYS

    def entries():
        import ase.db

        with ase.db.connect(path) as database:
            for row in database.select():
                pairs = row.key_value_pairs
                values = {t: pairs.get(key) for t, key in target_keys.items()}
                entry = str(pairs.get("id", row.id))
                yield Entry(entry, partial(_row_structure, row), values)

    return list(target_keys), entries()


def _row_structure(row):
    """A database row's structure (module level, so that entries can go to worker processes)."""
    return atoms_to_structure(row.toatoms())
