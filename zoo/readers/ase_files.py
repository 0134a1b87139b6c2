"""Structures that ASE reads: extended XYZ with ``info`` keys, ASE databases, and folders of
structure files (POSCAR, CIF, ...).

Targets come from ``atoms.info`` (extxyz) or a row's key-value pairs (ase.db), under the keys
the user names (default: ``shear`` and ``bulk``, in GPa). The id is the ``id`` info key if
present, else the frame number (extxyz), the row id (ase.db) or the file name (folders).
"""

from __future__ import annotations

from pathlib import Path

from pymatgen.core import Structure

from zoo.dataset import Dataset, DatasetBuilder
from zoo.readers.cif import read_cif_file

DEFAULT_TARGET_KEYS = {"shear": "shear", "bulk": "bulk"}
STRUCTURE_SUFFIXES = {".cif", ".vasp", ".poscar", ".xyz", ".extxyz", ".json", ".traj", ".in"}
STRUCTURE_NAMES = ("POSCAR", "CONTCAR")


def atoms_to_structure(atoms) -> Structure:
    from pymatgen.io.ase import AseAtomsAdaptor

    if not atoms.pbc.all():
        raise ValueError("structure is not periodic in all three directions")
    return AseAtomsAdaptor.get_structure(atoms)


def read_extxyz(
    path: str | Path,
    target_keys: dict[str, str] | None = None,
    skip_bad: bool = False,
    with_targets: bool = True,
) -> Dataset:
    import ase.io

    target_keys = target_keys or DEFAULT_TARGET_KEYS
    path = Path(path)
    try:
        frames = ase.io.read(path, index=":", format="extxyz")
    except Exception as error:
        raise ValueError(f"{path}: cannot read as extended XYZ ({error})") from error
    builder = DatasetBuilder(
        str(path), list(target_keys) if with_targets else [], skip_bad=skip_bad
    )
    for frame, atoms in enumerate(frames):
        entry = str(atoms.info.get("id", frame))
        values = {t: atoms.info.get(key) for t, key in target_keys.items()}
        builder.add(entry, lambda a=atoms: atoms_to_structure(a), values)
    return builder.build()


def read_ase_db(
    path: str | Path,
    target_keys: dict[str, str] | None = None,
    skip_bad: bool = False,
    with_targets: bool = True,
) -> Dataset:
    import ase.db

    target_keys = target_keys or DEFAULT_TARGET_KEYS
    path = Path(path)
    if not path.exists():
        raise ValueError(f"{path}: no such ASE database")
    builder = DatasetBuilder(
        str(path), list(target_keys) if with_targets else [], skip_bad=skip_bad
    )
    with ase.db.connect(path) as database:
        for row in database.select():
            pairs = row.key_value_pairs
            entry = str(pairs.get("id", row.id))
            values = {t: pairs.get(key) for t, key in target_keys.items()}
            builder.add(entry, lambda r=row: atoms_to_structure(r.toatoms()), values)
    return builder.build()


def structure_files(folder: Path) -> list[Path]:
    """Structure files in a folder, sorted by name."""
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file()
        and (p.suffix.lower() in STRUCTURE_SUFFIXES or p.name.startswith(STRUCTURE_NAMES))
    )


def read_structure_file(path: Path) -> Structure:
    """One structure; CIFs through pymatgen (as the original CGCNN), everything else through ASE."""
    import ase.io

    if path.stat().st_size == 0:
        raise ValueError(f"file {path.name} is empty")
    if path.suffix.lower() == ".cif":
        return read_cif_file(path)
    return atoms_to_structure(ase.io.read(path))


def read_structure_folder(folder: str | Path, skip_bad: bool = False) -> Dataset:
    """Every structure file in ``folder`` (no targets), id = file stem (or name for POSCARs)."""
    folder = Path(folder)
    files = structure_files(folder)
    if not files:
        raise ValueError(f"{folder}: no structure files (CIF, POSCAR, extxyz...) found")
    builder = DatasetBuilder(str(folder), [], skip_bad=skip_bad)
    for path in files:
        entry = path.name if path.name.startswith(STRUCTURE_NAMES) else path.stem
        builder.add(entry, lambda p=path: read_structure_file(p), {})
    return builder.build()
