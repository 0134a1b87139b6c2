"""The original CGCNN data layout: a folder of ``<id>.cif`` files and ``id_prop.csv``.

``id_prop.csv`` has no header; each row is ``id,value``. The value is the modulus of the one
target the user names, in GPa, or its log10 when ``log10_values`` is set (as in the original
elastic training data).
"""

from __future__ import annotations

import csv
from pathlib import Path

from pymatgen.core import Structure

from zoo.dataset import Dataset, DatasetBuilder
from zoo.readers.cif import read_cif_file


def read_cgcnn_folder(
    folder: str | Path,
    target: str = "shear",
    log10_values: bool = False,
    skip_bad: bool = False,
    with_targets: bool = True,
) -> Dataset:
    """The folder's structures and, ``with_targets``, their ``id_prop.csv`` values as
    ``target`` (without: the values are not read at all, as prediction needs none)."""
    folder = Path(folder)
    table = folder / "id_prop.csv"
    if not table.exists():
        raise ValueError(f"{folder}: no id_prop.csv (not a CGCNN data folder)")
    builder = DatasetBuilder(str(folder), [target] if with_targets else [], skip_bad=skip_bad)
    with open(table, newline="", encoding="utf-8-sig") as handle:
        for row in csv.reader(handle):
            if not row:
                continue
            entry, raw = row[0].strip(), row[1].strip() if len(row) > 1 else None
            value: object = raw
            if log10_values and raw is not None:
                try:
                    value = 10.0 ** float(raw)
                except ValueError:
                    value = raw
            cif = folder / f"{entry}.cif"
            builder.add(entry, lambda p=cif: read_cif(p), {target: value})
    return builder.build()


def read_cif(path: Path) -> Structure:
    """One structure from a CIF file; a missing, empty or unparsable file is an error naming it."""
    if not path.exists():
        raise ValueError(f"file {path} does not exist")
    return read_cif_file(path)
