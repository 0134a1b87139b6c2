"""The built-in demo set: elemental solids with tabulated bulk and shear moduli.

DEMO SET, NOT SCIENCE. 53 elements for which pymatgen's element data (``periodic_table.json``,
compiled from WebElements) lists both a bulk modulus and a rigidity (shear) modulus, in GPa, each
placed on ASE's reference crystal structure for the element (``ase.build.bulk``, lattice constants
from ``ase.data.reference_states``: fcc, bcc, hcp, diamond, ...). The tabulated moduli are
experimental polycrystal values, not the DFT Voigt-Reuss-Hill averages of Matbench; they are real
numbers, but far too few for a useful model. The set exists so that every command runs on a
fresh machine with no download.
"""

from __future__ import annotations

import warnings
from functools import partial

from zoo.dataset import Dataset
from zoo.readers.registry import Entry, ReadOptions, input_format, read_dataset

DEMO_SOURCE = "built-in demo set: elemental solids (pymatgen element moduli, ASE structures)"


def _demo_entries():
    from ase.build import bulk
    from pymatgen.core import Element

    for element in Element:
        if element.Z > 100:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            bulk_modulus, shear_modulus = element.bulk_modulus, element.rigidity_modulus
        if bulk_modulus is None or shear_modulus is None:
            continue
        try:
            atoms = bulk(element.symbol)
        except (ValueError, KeyError, RuntimeError):
            continue  # ASE has no single-species reference structure for it (e.g. Se, Te)
        yield element.symbol, atoms, float(shear_modulus), float(bulk_modulus)


@input_format(
    "demo",
    reads="nothing given: the built-in demo set",
    priority=0,
    matches=lambda path: path is None,
    describe=lambda path: DEMO_SOURCE,
)
def _open(path, options: ReadOptions):
    from zoo.readers.structure_file import atoms_to_structure

    entries = (
        Entry(symbol, partial(atoms_to_structure, atoms), {"shear": shear, "bulk": bulk})
        for symbol, atoms, shear, bulk in _demo_entries()
    )
    return ["shear", "bulk"], entries


def read_demo(skip_bad: bool = False) -> Dataset:
    return read_dataset(None, skip_bad=skip_bad)
