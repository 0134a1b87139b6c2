"""The in-memory data set every reader returns: ids, structures and moduli in GPa."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import partial

import numpy as np
from pymatgen.core import Structure

from zoo.errors import BadInputError, SkipReport
from zoo.processes import map_forked

TARGETS = {
    "shear": "G_VRH, Voigt-Reuss-Hill shear modulus",
    "bulk": "K_VRH, Voigt-Reuss-Hill bulk modulus",
}
"""Target names the zoo knows. All are moduli in GPa, trained as log10(GPa)."""

UNITS = "GPa"

MIN_CONTACT_FRACTION = 0.5
"""The closest two atoms of a structure may be no nearer than this fraction of the sum of
their covalent radii (ASE's table, Cordero et al. 2008). Evidence
(``bench/bench_close_contacts.py``, docs/benchmarks.md): over every structure in ``../shared/data``
the smallest such ratio is well above it; a cell squeezed to a fraction of its size (Na in a
1.5 angstrom cube: 0.45) falls below it."""
MIN_VOLUME_PER_ATOM = 1.0
"""Cubic angstrom; no real crystal comes near it (diamond: 5.7; the smallest in
``../shared/data``: 4.45). Checked before the contact search, which a denser cell would
flood."""
MAX_VOLUME_PER_ATOM = 10_000.0
"""Cubic angstrom: atoms over 20 angstrom apart on average are no crystal (the largest in
``../shared/data``: docs/benchmarks.md). Checked before the contact search, whose bins a cell
thousands of angstrom wide would not fit in memory; a sparse cell under this bound reaches
the graph builder, which names its isolated atoms."""


@dataclass
class Dataset:
    """Crystals with their moduli.

    Attributes:
        ids: entry identifiers, unique, length ``n``.
        structures: ordered pymatgen structures, length ``n``.
        targets: target name -> float64 ``(n,)`` modulus in GPa, NaN where the entry has none.
        source: where the data came from (a path or a description).
        skipped: entries dropped while reading because the user asked to skip bad input.
    """

    ids: list[str]
    structures: list[Structure]
    targets: dict[str, np.ndarray]
    source: str
    skipped: SkipReport = field(default_factory=SkipReport)

    def __post_init__(self) -> None:
        n = len(self.ids)
        if len(self.structures) != n:
            raise ValueError("ids and structures differ in length")
        if len(set(self.ids)) != n:
            seen: set[str] = set()
            duplicate = next(i for i in self.ids if i in seen or seen.add(i))
            raise BadInputError(duplicate, "duplicate id in data set")
        for name, values in self.targets.items():
            if name not in TARGETS:
                raise ValueError(f"unknown target {name!r}; known: {', '.join(TARGETS)}")
            if len(values) != n:
                raise ValueError(f"target {name!r} has {len(values)} values for {n} entries")

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, indices) -> Dataset:
        """A new data set with the entries at ``indices`` (in that order)."""
        indices = list(indices)
        return Dataset(
            ids=[self.ids[i] for i in indices],
            structures=[self.structures[i] for i in indices],
            targets={k: v[indices] for k, v in self.targets.items()},
            source=self.source,
            skipped=self.skipped,
        )


def check_modulus(entry: str, target: str, value) -> float:
    """A modulus in GPa from raw input: ``None`` means missing (NaN); NaN, infinity, zero or a
    negative value is bad input because its log10 is undefined."""
    if value is None:
        return math.nan
    try:
        number = float(value)
    except (TypeError, ValueError) as error:
        raise BadInputError(entry, f"{target} modulus {value!r} is not a number") from error
    if not math.isfinite(number):
        raise BadInputError(entry, f"{target} modulus is {number} (log10 needs a finite value)")
    if number <= 0:
        raise BadInputError(entry, f"{target} modulus {number} GPa is not positive (no log10)")
    return number


def check_structure(entry: str, structure: Structure) -> Structure:
    """Reject structures the graph builder cannot represent faithfully: no sites, a lattice or
    coordinates that are not finite numbers, a cell without volume, a species that is not a
    chemical element (a dummy species such as ``Xx``, a vacancy), a disordered site."""
    if len(structure) == 0:
        raise BadInputError(entry, "structure has no sites")
    lattice = np.asarray(structure.lattice.matrix, dtype=float)
    if not (np.isfinite(lattice).all() and np.isfinite(structure.frac_coords).all()):
        raise BadInputError(entry, "lattice or atomic coordinates are not finite numbers")
    volume = structure.volume
    if not math.isfinite(volume) or volume <= 1e-6:
        raise BadInputError(entry, f"cell volume {volume:g} cubic angstrom is not positive")
    for index, site in enumerate(structure):
        for species in site.species:
            if element_of(species) is None:
                raise BadInputError(
                    entry, f"site {index}: species {species!s} is not a chemical element"
                )
    if not structure.is_ordered:
        site = next(s for s in structure if not s.is_ordered)
        raise BadInputError(
            entry, f"disordered or partially occupied site ({site.species}); order it first"
        )
    _check_geometry(entry, structure)
    return structure


def _check_geometry(entry: str, structure: Structure) -> None:
    """Refuse a cell denser than :data:`MIN_VOLUME_PER_ATOM` or two atoms closer than
    :data:`MIN_CONTACT_FRACTION` of their covalent radii: no real crystal, and a model asked
    about one answers a number without meaning (Na in a 0.55 angstrom cube: 1e8 GPa)."""
    per_atom = structure.volume / len(structure)
    if not MIN_VOLUME_PER_ATOM <= per_atom <= MAX_VOLUME_PER_ATOM:
        raise BadInputError(
            entry, f"{per_atom:.3g} cubic angstrom per atom is no real crystal (from "
            f"{MIN_VOLUME_PER_ATOM:g} to {MAX_VOLUME_PER_ATOM:g})"
        )  # fmt: skip
    contact = closest_contact(structure, MIN_CONTACT_FRACTION)
    if contact is not None:
        ratio, i, j, distance = contact
        raise BadInputError(
            entry, f"sites {i} ({structure[i].specie}) and {j} ({structure[j].specie}) are "
            f"{distance:.3f} angstrom apart, {ratio:.2f} of their covalent radii "
            f"(at least {MIN_CONTACT_FRACTION:g}): no real crystal"
        )  # fmt: skip


def closest_contact(structure: Structure, below: float) -> tuple[float, int, int, float] | None:
    """The pair of sites (periodic images included) with the smallest distance / (r_i + r_j)
    under ``below``, as ``(ratio, i, j, distance in angstrom)``; None when no pair is that
    close. Covalent radii from ASE (Cordero et al. 2008); the search reaches ``below`` times
    the largest radius sum of the structure, so it costs little for small ``below``."""
    from ase.data import covalent_radii

    radii = np.array([covalent_radii[element_of(s.species.elements[0]).Z] for s in structure])
    reach = below * 2.0 * float(radii.max())
    centres, neighbours, _, distances = structure.get_neighbor_list(reach)
    if len(distances) == 0:
        return None
    ratios = distances / (radii[centres] + radii[neighbours])
    k = int(np.argmin(ratios))
    if ratios[k] >= below:
        return None
    return float(ratios[k]), int(centres[k]), int(neighbours[k]), float(distances[k])


def element_of(species):
    """The chemical element of a pymatgen species (``Fe`` for ``Fe2+``), or None for anything
    that is not one: a dummy species (an unknown symbol such as ``Xx`` is read as one, with an
    atomic number that depends on the hash seed), a vacancy, any other object."""
    from pymatgen.core.periodic_table import DummySpecies, Element, Species

    if isinstance(species, Element):
        return species
    if isinstance(species, Species) and not isinstance(species, DummySpecies):
        return species.element
    return None


def _load(entry: str, load_structure) -> Structure:
    """``load_structure()``; any failure of a parser is bad input for this entry."""
    try:
        structure = load_structure()
    except BadInputError:
        raise
    except Exception as error:
        raise BadInputError(entry, f"cannot read structure ({error})") from error
    if not isinstance(structure, Structure):
        raise BadInputError(entry, f"not a structure ({type(structure).__name__})")
    return structure


PARALLEL_PARSE = 200
"""Fewest entries a :class:`DatasetBuilder` with workers parses in worker processes (forking
costs more than parsing fewer)."""


def _parsed_or_error(job: tuple):
    """A worker's part of :meth:`DatasetBuilder._parse_pending`: the structure, or the entry's
    :class:`BadInputError` (sent back as a value, raised in the parent)."""
    entry, load_structure = job
    try:
        return _load(entry, load_structure)
    except BadInputError as error:
        return error


def _raise_or_return(result):
    if isinstance(result, BadInputError):
        raise result
    return result


class DatasetBuilder:
    """Accumulates entries one by one, checking each, raising or skipping bad ones.

    ``targets`` are the moduli to read; an empty list reads structures only (prediction, where
    a file's target column must not matter). A duplicate id is bad input for its second entry.
    With ``workers`` > 1 and at least :data:`PARALLEL_PARSE` entries, the structures are
    parsed in that many forked processes when :meth:`build` is called (same entries, same
    order, same reasons); else each as it is added.
    """

    def __init__(self, source: str, targets: list[str], skip_bad: bool = False, workers: int = 1):
        self.source = source
        self.workers = workers
        self._pending: list[tuple] = []
        self.target_names = targets
        self.skip_bad = skip_bad
        self.ids: list[str] = []
        self.structures: list[Structure] = []
        self.values: dict[str, list[float]] = {t: [] for t in targets}
        self.skipped = SkipReport()
        self._seen: set[str] = set()

    def add(self, entry: str, load_structure, raw_targets: dict[str, object]) -> None:
        """Add one entry. ``load_structure`` is a callable so parse errors are caught here."""
        if self.workers > 1:
            self._pending.append((str(entry), load_structure, raw_targets, None))
            return
        self._add(str(entry), partial(_load, str(entry), load_structure), raw_targets)

    def _add(self, entry: str, load, raw_targets: dict[str, object]) -> None:
        """Check and keep (or skip) one entry whose ``load()`` gives its structure."""
        try:
            if entry in self._seen:
                raise BadInputError(entry, "duplicate id (an earlier entry has the same id)")
            structure = check_structure(entry, load())
            values = {t: check_modulus(entry, t, raw_targets.get(t)) for t in self.target_names}
        except BadInputError as error:
            if not self.skip_bad:
                raise
            self.skipped.add(error)
            return
        self._seen.add(entry)
        self.ids.append(entry)
        self.structures.append(structure)
        for t, v in values.items():
            self.values[t].append(v)

    def reject(self, error: BadInputError) -> None:
        """An entry the reader found bad before it had a structure (e.g. a record without one):
        raised, or skipped and reported with ``skip_bad``."""
        if self.workers > 1:  # in its place among the entries held back
            self._pending.append((error.entry, None, {}, error))
            return
        self._reject(error)

    def _reject(self, error: BadInputError) -> None:
        if not self.skip_bad:
            raise error
        self.skipped.add(error)

    def _parse_pending(self) -> None:
        """Parse the entries held back by :meth:`add`, in parallel, then add them in order."""
        pending, self._pending = self._pending, []
        workers = self.workers if len(pending) >= PARALLEL_PARSE else 1
        jobs = [(entry, load) for entry, load, _, rejected in pending if rejected is None]
        parsed = iter(map_forked(_parsed_or_error, jobs, workers))
        for entry, _, raw_targets, rejected in pending:
            if rejected is not None:
                self._reject(rejected)
            else:
                self._add(entry, partial(_raise_or_return, next(parsed)), raw_targets)

    def build(self, allow_empty: bool = False) -> Dataset:
        """The data set; no usable entry is an error unless ``allow_empty`` (a chunk of a
        larger source may hold only bad entries)."""
        self._parse_pending()
        if not self.ids and not allow_empty:
            raise ValueError(f"{self.source}: no usable entries ({self.skipped.summary()})")
        return Dataset(
            ids=self.ids,
            structures=self.structures,
            targets={t: np.asarray(v, dtype=np.float64) for t, v in self.values.items()},
            source=self.source,
            skipped=self.skipped,
        )
