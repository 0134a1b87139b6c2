"""What a model was trained on, and whether a structure lies inside it (applicability flags).

A bundle records its training domain (:func:`training_domain`): how many training crystals hold
each element, and the range of density, atoms per cell and volume per atom. ``zoo screen`` flags
every structure that leaves it (:func:`domain_flags`); a flag is a warning to the reader, not a
refusal: the prediction is still made.

Densities are in g/cm³ (atomic masses from pymatgen's element data), volumes in Å³.
"""

from __future__ import annotations

from functools import cache

import numpy as np

AMU_G_PER_CM3_PER_A3 = 1.66053906660
"""One atomic mass unit per cubic angstrom in g/cm³ (CODATA 2018 atomic mass constant)."""

DOMAIN_KEYS = ("entries", "element_counts", "density_g_cm3", "sites", "volume_per_atom_a3")


@cache
def atomic_masses() -> np.ndarray:
    """float64 ``(119,)``: atomic mass (u) by atomic number (NaN where pymatgen has none)."""
    from pymatgen.core import Element

    masses = np.full(119, np.nan)
    for z in range(1, 119):
        try:
            masses[z] = float(Element.from_Z(z).atomic_mass)
        except (ValueError, TypeError):  # no mass listed for this element
            continue
    return masses


def density_g_cm3(atomic_numbers: np.ndarray, volume_a3: float) -> float:
    """Mass density in g/cm³ of a cell holding ``atomic_numbers`` in ``volume_a3`` Å³."""
    return float(
        atomic_masses()[np.asarray(atomic_numbers)].sum() * AMU_G_PER_CM3_PER_A3 / volume_a3
    )


def symbol(z: int) -> str:
    from pymatgen.core import Element

    return Element.from_Z(int(z)).symbol


def training_domain(
    atomic_numbers: list[np.ndarray], volumes: np.ndarray, source: str | None = None
) -> dict:
    """The domain of a training set: ``atomic_numbers[i]`` int ``(N_i,)`` and ``volumes[i]``
    (Å³) of crystal i, read from ``source`` (the data set's label). Returns plain values
    (stored in the bundle): ``entries``, ``element_counts`` (symbol -> crystals holding it),
    ``[min, max]`` of ``density_g_cm3``, ``sites`` and ``volume_per_atom_a3``, and ``source``
    when given."""
    counts: dict[str, int] = {}
    for numbers in atomic_numbers:
        for z in np.unique(numbers):
            counts[symbol(z)] = counts.get(symbol(z), 0) + 1
    sites = np.array([len(n) for n in atomic_numbers], dtype=float)
    volumes = np.asarray(volumes, dtype=float)
    density = np.array([density_g_cm3(n, v) for n, v in zip(atomic_numbers, volumes, strict=True)])
    return {
        "entries": len(atomic_numbers),
        "element_counts": dict(sorted(counts.items())),
        "density_g_cm3": [float(density.min()), float(density.max())],
        "sites": [int(sites.min()), int(sites.max())],
        "volume_per_atom_a3": [float((volumes / sites).min()), float((volumes / sites).max())],
        **({"source": source} if source else {}),
    }


def merge_domains(domains: list[dict]) -> dict:
    """The union of several domains (an ensemble's members, a shear and a bulk model): element
    counts are the largest any model saw, ranges the widest, the source kept where all agree."""
    merged = dict(domains[0])
    for other in domains[1:]:
        counts = dict(merged["element_counts"])
        for element, count in other["element_counts"].items():
            counts[element] = max(counts.get(element, 0), count)
        merged = {
            "entries": max(merged["entries"], other["entries"]),
            "element_counts": dict(sorted(counts.items())),
            **{
                key: [min(merged[key][0], other[key][0]), max(merged[key][1], other[key][1])]
                for key in ("density_g_cm3", "sites", "volume_per_atom_a3")
            },
        }
    sources = {domain.get("source") for domain in domains}
    if len(sources) == 1 and None not in sources:
        merged["source"] = sources.pop()
    return merged


def domain_flags(domain: dict | None, atomic_numbers: np.ndarray, volume_a3: float) -> dict:
    """Where a structure leaves ``domain``: ``unseen_elements`` (symbols no training crystal
    held, space-separated, '' if none), ``density_outside``, ``sites_outside`` and
    ``volume_per_atom_outside`` (bool). Without a recorded domain every flag is None."""
    if domain is None:
        return {"unseen_elements": None, "density_outside": None, "sites_outside": None,
                "volume_per_atom_outside": None}  # fmt: skip
    seen = domain["element_counts"]
    unseen = sorted({symbol(z) for z in np.unique(atomic_numbers)} - set(seen))
    density = density_g_cm3(atomic_numbers, volume_a3)
    sites = len(atomic_numbers)

    def outside(value, key):
        low, high = domain[key]
        return bool(value < low or value > high)

    return {
        "unseen_elements": " ".join(unseen),
        "density_outside": outside(density, "density_g_cm3"),
        "sites_outside": outside(sites, "sites"),
        "volume_per_atom_outside": outside(volume_a3 / sites, "volume_per_atom_a3"),
    }


MANY_ATOMS = 200
"""``flag_many_atoms`` above this many atoms per cell (the Materials Project's elastic cells
have under 200 sites)."""
DOMAIN_FLAG_COLUMNS = [
    "flag_unseen_elements",
    "flag_density_outside",
    "flag_sites_outside",
    "flag_volume_per_atom_outside",
    "flag_many_atoms",
]
"""The flags a structure and the training domain decide alone (``flagged``, any flag of
:data:`FLAG_COLUMNS`, is :func:`any_flag`'s)."""
FEW_NEIGHBORS = "flag_few_neighbors"
"""The flag the graphs decide (:meth:`zoo.graphs.store.GraphStore.few_neighbors`)."""
FLAG_COLUMNS = [*DOMAIN_FLAG_COLUMNS, FEW_NEIGHBORS]
"""Every applicability flag, in the order ``zoo screen`` and ``zoo predict`` write them."""


def flag_table(domain: dict | None, atoms: list, volumes: list, max_atoms: int = MANY_ATOMS):
    """The :data:`DOMAIN_FLAG_COLUMNS` of crystals given by ``atoms[i]`` (int
    ``(N_i,)`` atomic numbers, or None for a row without a structure: its flags are missing)
    and ``volumes[i]`` (cubic angstrom), as a DataFrame, one row each, in order.
    ``flag_unseen_elements`` holds the space-separated symbols (string); the others are
    nullable booleans (missing without a recorded domain)."""
    import pandas as pd

    rows = []
    for numbers, volume in zip(atoms, volumes, strict=True):
        if numbers is None:
            rows.append(dict.fromkeys(DOMAIN_FLAG_COLUMNS))
            continue
        found = domain_flags(domain, np.asarray(numbers), volume)
        rows.append({f"flag_{key}": value for key, value in found.items()}
                    | {"flag_many_atoms": len(numbers) > max_atoms})  # fmt: skip
    table = pd.DataFrame(rows, columns=DOMAIN_FLAG_COLUMNS)
    columns = {"flag_unseen_elements": table["flag_unseen_elements"].astype("string")}
    for name in DOMAIN_FLAG_COLUMNS[1:]:
        columns[name] = table[name].astype("boolean")
    return pd.DataFrame(columns)


def any_flag(table, names: list[str]) -> np.ndarray:
    """bool ``(n,)``: where any of the flag columns ``names`` is set (unseen elements: a
    non-empty list of symbols; missing values: not set)."""
    set_ = np.zeros(len(table), dtype=bool)
    for name in names:
        column = table[name]
        if name == "flag_unseen_elements":
            set_ |= (column.fillna("").astype(str).str.len() > 0).to_numpy()
        else:
            set_ |= column.fillna(False).astype(bool).to_numpy()
    return set_
