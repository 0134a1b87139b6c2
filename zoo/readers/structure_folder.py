"""A folder of structure files (CIF, POSCAR, ...; no targets), for prediction: every file whose
name says it is a structure, sorted by name, read one by one. The id is the file's stem (its
name for POSCAR/CONTCAR files)."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from zoo.readers.registry import Entry, ReadOptions, input_format
from zoo.readers.structure_file import entry_id, is_structure_file, read_structure_file


def structure_files(folder: Path) -> list[Path]:
    """Structure files in a folder, sorted by name (paths only: nothing is read)."""
    return sorted(p for p in folder.iterdir() if p.is_file() and is_structure_file(p))


@input_format(
    "structure-folder",
    reads="a folder of structure files (CIF, POSCAR, ...; no targets)",
    priority=20,
    matches=lambda path: path is not None and path.is_dir(),
    options=(),
)
def _open(folder: Path, options: ReadOptions):
    files = structure_files(folder)
    if not files:
        raise ValueError(f"{folder}: no structure files (CIF, POSCAR, extxyz...) found")
    entries = (Entry(entry_id(p), partial(read_structure_file, p)) for p in files)
    return [], entries
