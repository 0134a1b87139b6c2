"""Read any supported input into a :class:`zoo.dataset.Dataset`.

========================================  ==========================================
input                                     reader
========================================  ==========================================
nothing (``path=None``)                   the built-in demo set
``*.json[.gz]`` with index/columns/data   Matbench (matminer's file format)
``*.json[.gz]`` with a list of records    JSON records (id and target columns named)
folder with ``id_prop.csv``               original CGCNN layout (CIFs)
``*.extxyz`` / ``*.xyz``                  ASE extended XYZ, targets from ``info``
``*.db``                                  ASE database, targets from key-value pairs
folder of structure files                 CIF/POSCAR/... (no targets: for prediction)
single ``*.cif`` / POSCAR file            one structure (no targets)
========================================  ==========================================
"""

from __future__ import annotations

from pathlib import Path

from zoo.dataset import Dataset, DatasetBuilder
from zoo.readers.ase_files import (
    STRUCTURE_NAMES,
    STRUCTURE_SUFFIXES,
    read_ase_db,
    read_extxyz,
    read_structure_file,
    read_structure_folder,
)
from zoo.readers.cgcnn_folder import read_cgcnn_folder
from zoo.readers.demo import read_demo
from zoo.readers.matbench import (
    download_matbench,
    is_matbench_payload,
    load_json,
    matbench_from_payload,
    read_matbench,
)
from zoo.readers.records import read_records, records_from_payload

__all__ = [
    "download_matbench",
    "read_ase_db",
    "read_cgcnn_folder",
    "read_dataset",
    "read_demo",
    "read_extxyz",
    "read_matbench",
    "read_records",
    "read_structure_folder",
]


def read_dataset(
    path: str | Path | None = None,
    *,
    id_key: str | None = None,
    target_keys: dict[str, str] | None = None,
    cgcnn_target: str = "shear",
    cgcnn_log10: bool = False,
    skip_bad: bool = False,
    with_targets: bool = True,
) -> Dataset:
    """Read ``path`` with the reader its form calls for (see the module table).

    Args:
        path: file or folder; None for the built-in demo set.
        id_key: id column of JSON records (default ``mp_id``).
        target_keys: target name -> column/info key (JSON records, extxyz, ase.db).
        cgcnn_target: which target the values of a CGCNN ``id_prop.csv`` are.
        cgcnn_log10: whether those values are log10(GPa) rather than GPa.
        skip_bad: drop bad entries and report them in ``Dataset.skipped`` instead of raising.
        with_targets: read the moduli too; False reads structures only (prediction: a file's
            target values, valid or not, never matter then).
    """
    if path is None:
        return read_demo(skip_bad=skip_bad)
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder")
    if path.is_dir():
        if (path / "id_prop.csv").exists():
            return read_cgcnn_folder(
                path, cgcnn_target, cgcnn_log10, skip_bad=skip_bad, with_targets=with_targets
            )
        return read_structure_folder(path, skip_bad=skip_bad)
    name = path.name.lower()
    if name.endswith((".json", ".json.gz")):
        payload = load_json(path)
        if is_matbench_payload(payload):
            return matbench_from_payload(
                payload, str(path), skip_bad=skip_bad, with_targets=with_targets
            )
        if isinstance(payload, list):
            return records_from_payload(
                payload,
                str(path),
                id_key or "mp_id",
                target_keys,
                skip_bad=skip_bad,
                with_targets=with_targets,
            )
        raise ValueError(f"{path}: JSON is neither a Matbench file nor a list of records")
    if name.endswith((".extxyz", ".xyz")):
        return read_extxyz(path, target_keys, skip_bad=skip_bad, with_targets=with_targets)
    if name.endswith(".db"):
        return read_ase_db(path, target_keys, skip_bad=skip_bad, with_targets=with_targets)
    if path.suffix.lower() in STRUCTURE_SUFFIXES or path.name.startswith(STRUCTURE_NAMES):
        builder = DatasetBuilder(str(path), [], skip_bad=skip_bad)
        builder.add(path.stem, lambda: read_structure_file(path), {})
        return builder.build()
    raise ValueError(f"{path}: unknown input format")
