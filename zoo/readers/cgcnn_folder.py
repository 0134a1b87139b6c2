"""The original CGCNN data layout: a folder of ``<id>.cif`` files and ``id_prop.csv``.

``id_prop.csv`` has no header; each row is ``id,value``. The value is the modulus of the one
target the user names, in GPa, or its log10 when ``log10_values`` is set (as in the original
elastic training data).
"""

from __future__ import annotations

import csv
from functools import partial
from pathlib import Path

from pymatgen.core import Structure

from zoo.readers.cif import read_cif_file
from zoo.readers.registry import Entry, ReadOptions, input_format


@input_format(
    "cgcnn-folder",
    reads="a folder with id_prop.csv (the original CGCNN layout: <id>.cif files, rows "
    "id,value of one target)",
    priority=10,
    matches=lambda path: path is not None and (path / "id_prop.csv").is_file(),
    options=("cgcnn_target", "cgcnn_log10", "with_targets"),
)
def _open(folder: Path, options: ReadOptions):
    """The folder's ``id_prop.csv`` rows, read row by row; each row's CIF is parsed with its
    entry. Without targets the values are not read at all (prediction needs none)."""
    target = options.cgcnn_target

    def entries():
        with open(folder / "id_prop.csv", newline="", encoding="utf-8-sig") as handle:
            for row in csv.reader(handle):
                if not row:
                    continue
                entry, raw = row[0].strip(), row[1].strip() if len(row) > 1 else None
                value: object = raw
                if options.cgcnn_log10 and raw is not None:
                    try:
                        value = 10.0 ** float(raw)
                    except ValueError:
                        value = raw
                yield Entry(entry, partial(read_cif, folder / f"{entry}.cif"), {target: value})

    return [target], entries()


def read_cif(path: Path) -> Structure:
    """One structure from a CIF file; a missing, empty or unparsable file is an error naming it."""
    if not path.exists():
        raise ValueError(f"file {path} does not exist")
    return read_cif_file(path)
