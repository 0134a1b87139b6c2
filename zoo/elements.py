"""Element feature tables in the CGCNN ``atom_init.json`` layout.

The original CGCNN (Xie & Grossman, PRL 120, 145301 (2018), Table S2 of the supplement) describes
each element by nine one-hot encoded properties, 92 values in all:

=====================  ========  ==========================================
property               slots     categories
=====================  ========  ==========================================
group number           19        0 (lanthanides, actinides), 1 ... 18
period                 7         1 ... 7
electronegativity      10        Pauling, 0.5 ... 4.0 in equal bins
covalent radius        10        25 ... 250 pm in equal bins
valence electrons      12        1 ... 12
first ionisation       10        ln(E / eV), 1.3 ... 3.3 in equal bins
electron affinity      10        -3.0 ... 3.7 eV in equal bins
block                  4         s, p, d, f
atomic volume          10        ln(V / cm^3 mol^-1), 1.5 ... 4.3 in equal bins
=====================  ========  ==========================================

:func:`generate_element_table` computes this encoding from pymatgen's element data and ASE's
covalent radii (Cordero et al. 2008). A property that is unknown for an element leaves its slots
at zero. Users may instead read any table in the ``atom_init.json`` layout (a JSON object from
atomic number to a list of floats) with :func:`read_element_table`.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MAX_Z = 100
"""Largest atomic number a dense table covers."""

_BINNED = {
    # name: (number of bins, low edge, high edge)
    "electronegativity": (10, 0.5, 4.0),
    "covalent_radius_pm": (10, 25.0, 250.0),
    "ln_first_ionisation_ev": (10, 1.3, 3.3),
    "electron_affinity_ev": (10, -3.0, 3.7),
    "ln_molar_volume": (10, 1.5, 4.3),
}
_BLOCKS = ("s", "p", "d", "f")


@dataclass(frozen=True)
class ElementTable:
    """Feature vector per element.

    Attributes:
        features: atomic number -> feature vector (all of equal length).
        source: where the table came from (a file path or ``"generated"``).
    """

    features: dict[int, tuple[float, ...]]
    source: str

    @property
    def n_features(self) -> int:
        return len(next(iter(self.features.values())))

    def dense(self) -> tuple[np.ndarray, np.ndarray]:
        """Dense arrays indexed by atomic number.

        Returns:
            table: float32 ``(MAX_Z + 1, n_features)``, zero rows for unknown elements.
            known: bool ``(MAX_Z + 1,)``, True where the element has features.
        """
        table = np.zeros((MAX_Z + 1, self.n_features), dtype=np.float32)
        known = np.zeros(MAX_Z + 1, dtype=bool)
        for z, values in self.features.items():
            table[z] = values
            known[z] = True
        return table, known

    def to_json(self) -> dict[str, list[float]]:
        """The table in the ``atom_init.json`` layout."""
        return {str(z): list(v) for z, v in sorted(self.features.items())}

    def write(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_json()))


def read_element_table(path: str | Path) -> ElementTable:
    """Read a table in the ``atom_init.json`` layout (atomic number -> feature list)."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: cannot read element table ({error})") from error
    if not isinstance(raw, dict) or not raw:
        raise ValueError(f"{path}: an element table is a JSON object from atomic number to list")
    features: dict[int, tuple[float, ...]] = {}
    for key, values in raw.items():
        z = int(key)
        if not 1 <= z <= MAX_Z:
            raise ValueError(f"{path}: atomic number {z} outside 1..{MAX_Z}")
        features[z] = tuple(float(v) for v in values)
    if len({len(v) for v in features.values()}) != 1:
        raise ValueError(f"{path}: feature vectors of different lengths")
    return ElementTable(features=features, source=str(path))


def _one_hot_bin(value: float | None, bins: int, low: float, high: float) -> list[float]:
    slots = [0.0] * bins
    if value is None or not math.isfinite(value):
        return slots
    index = int((value - low) / (high - low) * bins)
    slots[min(max(index, 0), bins - 1)] = 1.0
    return slots


def _one_hot(index: int | None, size: int) -> list[float]:
    slots = [0.0] * size
    if index is not None and 0 <= index < size:
        slots[index] = 1.0
    return slots


def _valence_electrons(element) -> int:
    """Electrons outside the noble-gas core, counting (n-1)d for d-block elements and only the
    outer s shell for f-block elements."""
    shells = element.full_electronic_structure
    outer_n = max(n for n, _, _ in shells)
    if element.block == "f":
        return sum(count for n, orbital, count in shells if n == outer_n and orbital == "s")
    if element.block == "d":
        return sum(
            count
            for n, orbital, count in shells
            if (n == outer_n and orbital == "s") or (n == outer_n - 1 and orbital == "d")
        )
    return sum(count for n, orbital, count in shells if n == outer_n and orbital in "sp")


def _element_properties(z: int) -> dict[str, float | int | str | None]:
    from ase.data import covalent_radii
    from pymatgen.core import Element

    element = Element.from_Z(z)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        electronegativity = element.X
        ionisation = element.ionization_energies[0] if element.ionization_energies else None
        try:
            affinity = element.electron_affinity
        except (ValueError, KeyError):
            affinity = None
        molar_volume = element.molar_volume
    f_block = element.block == "f"
    return {
        "group": 0 if f_block else element.group,
        "period": element.row,
        "electronegativity": electronegativity if electronegativity > 0 else None,
        "covalent_radius_pm": float(covalent_radii[z]) * 100.0,
        "valence": _valence_electrons(element),
        "ln_first_ionisation_ev": math.log(ionisation) if ionisation else None,
        "electron_affinity_ev": float(affinity) if affinity is not None else None,
        # pymatgen files helium (1s2) under p with the noble gases; by its electrons it is s
        "block": "s" if z == 2 else element.block,
        "ln_molar_volume": math.log(float(molar_volume)) if molar_volume else None,
    }


def element_feature_vector(z: int) -> tuple[float, ...]:
    """The 92-value CGCNN-layout feature vector of the element with atomic number ``z``."""
    props = _element_properties(z)
    vector = _one_hot(props["group"], 19) + _one_hot(props["period"] - 1, 7)
    for name in ("electronegativity", "covalent_radius_pm"):
        vector += _one_hot_bin(props[name], *_BINNED[name])
    vector += _one_hot(min(props["valence"], 12) - 1, 12)
    for name in ("ln_first_ionisation_ev", "electron_affinity_ev"):
        vector += _one_hot_bin(props[name], *_BINNED[name])
    vector += _one_hot(_BLOCKS.index(props["block"]), 4)
    vector += _one_hot_bin(props["ln_molar_volume"], *_BINNED["ln_molar_volume"])
    return tuple(vector)


def generate_element_table(max_z: int = MAX_Z) -> ElementTable:
    """Build the CGCNN-layout table for elements 1..max_z from pymatgen and ASE element data."""
    return ElementTable(
        features={z: element_feature_vector(z) for z in range(1, max_z + 1)},
        source="generated",
    )
