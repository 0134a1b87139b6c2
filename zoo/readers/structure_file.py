"""Single structure files (CIF, POSCAR/CONTCAR, extxyz frame, ASE trajectory, ...): the readers
of one file, and the format of a path that is one structure file (no targets).

CIFs are read through pymatgen (as the original CGCNN, with the type-symbol check of
:mod:`zoo.readers.cif`), everything else through ASE.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from pymatgen.core import Structure

from zoo.readers.cif import read_cif_file
from zoo.readers.registry import Entry, ReadOptions, input_format

STRUCTURE_SUFFIXES = {".cif", ".vasp", ".poscar", ".xyz", ".extxyz", ".json", ".traj", ".in"}
STRUCTURE_NAMES = ("POSCAR", "CONTCAR")


def is_structure_file(path: Path) -> bool:
    return path.suffix.lower() in STRUCTURE_SUFFIXES or path.name.startswith(STRUCTURE_NAMES)


def atoms_to_structure(atoms) -> Structure:
    """An ASE ``Atoms`` as a pymatgen structure; it must be periodic in all three directions."""
    from pymatgen.io.ase import AseAtomsAdaptor

    if not atoms.pbc.all():
        raise ValueError("structure is not periodic in all three directions")
    return AseAtomsAdaptor.get_structure(atoms)


def read_structure_file(path: Path) -> Structure:
    """One structure; CIFs through pymatgen, everything else through ASE."""
    import ase.io

    if path.stat().st_size == 0:
        raise ValueError(f"file {path.name} is empty")
    if path.suffix.lower() == ".cif":
        return read_cif_file(path)
    return atoms_to_structure(ase.io.read(path))


def entry_id(path: Path) -> str:
    """A structure file's id: its stem (its name for POSCAR/CONTCAR files)."""
    return path.name if path.name.startswith(STRUCTURE_NAMES) else path.stem


@input_format(
    "structure-file",
    reads="one structure file (CIF, POSCAR, ...; no targets)",
    priority=90,
    matches=lambda path: path is not None and path.is_file() and is_structure_file(path),
    options=(),
)
def _open(path: Path, options: ReadOptions):
    return [], iter([Entry(entry_id(path), partial(read_structure_file, path))])
