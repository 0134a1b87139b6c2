"""The one way from outside data to a pymatgen ``Structure``: every reader, ``zoo predict``,
``zoo screen`` (also on Dask workers), ``zoo.load_model(...).predict`` and a served model go
through :func:`parse_structure`.

Outside data is read as data, never as code or as a file:

- A structure dict is read against a strict schema (:func:`structure_from_dict`): a lattice
  matrix and, per site, species (element, occupancy, optional oxidation state) and fractional
  (``abc``) or Cartesian (``xyz``) coordinates. Nothing is handed to ``Structure.from_dict`` or
  monty's decoder, whose ``@module``/``@class`` values import modules and build arbitrary
  objects (with the caller's arguments: a file name, say). An ``@module``/``@class`` pair is
  accepted only where pymatgen's own ``as_dict`` writes it, with pymatgen's own value; anywhere
  else (site or structure properties, species, lattice) the structure is refused. Site and
  structure properties are kept only where they are plain (a number, a string, a flat list of
  them; a site property only where every site has one), labels and spins are dropped: nothing
  in zoo reads them.
- Text is CIF (a line starting with ``data_``) or POSCAR; ASE ``Atoms`` and pymatgen
  ``Structure`` objects (a local caller's own) are taken as they are.
- A string without a line break, or a ``Path``, is a file path: read only when the caller says
  ``allow_paths`` (``zoo predict``, ``LoadedModel.predict(..., allow_paths=True)``), refused
  otherwise before the file system is touched, so a served model's caller can neither read a
  server file nor learn which exist.
- Work is bounded before parsing when ``max_sites`` is given: :func:`count_sites` counts a
  dict's sites, a POSCAR's atom counts, and a CIF's atom sites expanded by its symmetry
  operations (a 10 KB CIF can expand to tens of thousands of atoms); text longer than
  :data:`MAX_TEXT_CHARS` is refused.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
from pymatgen.core import Element, Lattice, Species, Structure

MAX_TEXT_CHARS = 2_000_000
"""The longest CIF or POSCAR text read (a 1,000-site CIF is about 80,000 characters)."""

CIF_START = re.compile(r"^\s*data_", re.MULTILINE)

PYMATGEN_CLASSES = {
    "": {("pymatgen.core.structure", "Structure"), ("pymatgen.core.structure", "IStructure")},
    "lattice": {("pymatgen.core.lattice", "Lattice")},
    "species": {
        ("pymatgen.core.periodic_table", "Element"),
        ("pymatgen.core.periodic_table", "Species"),
    },
}
"""Where pymatgen's ``as_dict`` writes ``@module``/``@class``, and the values it writes."""
MARKERS = ("@module", "@class", "@version")
TOP_KEYS = {"lattice", "sites", "charge", "properties", *MARKERS}
LATTICE_KEYS = {"matrix", "pbc", "a", "b", "c", "alpha", "beta", "gamma", "volume", *MARKERS}
SITE_KEYS = {"species", "abc", "xyz", "label", "properties", *MARKERS}
SPECIES_KEYS = {"element", "occu", "oxidation_state", "spin", "properties", *MARKERS}


def parse_structure(value, *, allow_paths: bool = False, max_sites: int | None = None):
    """A ``Structure`` from a ``Structure``, an ASE ``Atoms``, a structure dict, CIF or POSCAR
    text, or (with ``allow_paths``) a structure file's path. ``max_sites``: a structure counted
    (:func:`count_sites`) or built with more sites is refused. Raises ValueError with a
    one-line reason."""
    if isinstance(value, Structure):
        return check_sites(value, len(value), max_sites)
    if _is_atoms(value):
        from zoo.readers.structure_file import atoms_to_structure

        return check_sites(atoms_to_structure(value), len(value), max_sites)
    if isinstance(value, Path) or (isinstance(value, str) and "\n" not in value.strip()):
        return _from_path(value, allow_paths, max_sites)
    if isinstance(value, dict | str) and max_sites is not None:
        check_sites(None, count_sites(value), max_sites)
    if isinstance(value, dict):
        structure = structure_from_dict(value)
    elif isinstance(value, str):
        structure = structure_from_text(value)
    else:
        raise ValueError(f"unsupported structure value of type {type(value).__name__}")
    return check_sites(structure, len(structure), max_sites)


def check_sites(structure, sites: int | None, max_sites: int | None):
    """``structure`` when its ``sites`` (None: not known) are within ``max_sites`` (None: no
    bound); a ValueError saying both otherwise."""
    if max_sites is not None and sites is not None and sites > max_sites:
        raise ValueError(f"{sites:,} sites; at most {max_sites:,} are taken here")
    return structure


def _is_atoms(value) -> bool:
    from ase import Atoms

    return isinstance(value, Atoms)


def _from_path(value, allow_paths: bool, max_sites: int | None):
    if not allow_paths:
        raise ValueError(
            "file paths are not read here; send the structure itself (CIF text, POSCAR text "
            "or a structure dict)"
        )
    from zoo.readers.structure_file import read_structure_file

    path = Path(value)
    if not path.is_file():
        raise ValueError(f"{str(value)[:200]!r} is not a structure file")
    structure = read_structure_file(path)
    return check_sites(structure, len(structure), max_sites)


def structure_from_text(text: str) -> Structure:
    """CIF text (a line starts with ``data_``) or POSCAR text."""
    from zoo.readers.cif import structure_from_cif

    _check_length(text)
    if CIF_START.search(text):
        return structure_from_cif(text)
    return Structure.from_str(text, fmt="poscar")


def _check_length(text: str) -> None:
    if len(text) > MAX_TEXT_CHARS:
        raise ValueError(f"structure text of {len(text):,} characters (at most {MAX_TEXT_CHARS:,})")


# --- dicts ------------------------------------------------------------------------------------


def structure_from_dict(value: dict) -> Structure:
    """A structure from a dict of pymatgen's ``Structure.as_dict`` layout, read as plain data
    (see the module docstring); a value outside the schema is a ValueError naming where."""
    _refuse_object_references(value)
    _only_keys(value, TOP_KEYS, "structure")
    lattice = _lattice(value.get("lattice"))
    sites = value.get("sites")
    if not isinstance(sites, list) or not sites:
        raise ValueError("structure dict needs a non-empty list 'sites'")
    species, coords, cartesian, properties = [], [], [], []
    for index, site in enumerate(sites):
        where = f"sites[{index}]"
        if not isinstance(site, dict):
            raise ValueError(f"{where} is not an object")
        _only_keys(site, SITE_KEYS, where)
        species.append(_site_species(site.get("species"), where))
        properties.append(_plain(site.get("properties")))
        if site.get("abc") is not None:
            coords.append(_numbers(site["abc"], 3, f"{where}.abc"))
            cartesian.append(False)
        else:
            coords.append(_numbers(site.get("xyz"), 3, f"{where}.xyz (or abc)"))
            cartesian.append(True)
    frac = np.asarray(coords, dtype=float)
    moved = np.asarray(cartesian)
    if moved.any():
        frac[moved] = lattice.get_fractional_coords(frac[moved])
    charge = value.get("charge")
    if charge is not None and not _is_number(charge):
        raise ValueError("structure 'charge' is not a number")
    shared = set.intersection(*(set(p) for p in properties))
    return Structure(
        lattice,
        species,
        frac,
        charge=charge,
        site_properties={key: [p[key] for p in properties] for key in sorted(shared)},
        properties=_plain(value.get("properties")),
    )


def _plain(properties) -> dict:
    """The plain entries of a properties dict: numbers, strings and flat lists of them."""
    if not isinstance(properties, dict):
        return {}

    def plain(v) -> bool:
        return isinstance(v, int | float | str) or (
            isinstance(v, list) and all(isinstance(x, int | float | str) for x in v)
        )

    return {str(k): v for k, v in properties.items() if plain(v)}


def _refuse_object_references(value) -> None:
    """Raise where a dict carries ``@module``/``@class`` other than pymatgen's own at its
    own place (walked without recursion, so any depth is safe)."""
    stack = [(value, "")]
    while stack:
        item, where = stack.pop()
        if isinstance(item, dict):
            if "@module" in item or "@class" in item:
                pair = (str(item.get("@module")), str(item.get("@class")))
                if pair not in PYMATGEN_CLASSES.get(_place(where), set()):
                    raise ValueError(
                        f"an object reference (@module {pair[0][:60]!r}, @class "
                        f"{pair[1][:60]!r}) at {where or 'the top'}: structures are read as "
                        "plain data only"
                    )
            stack.extend((v, f"{where}.{k}" if where else str(k)) for k, v in item.items())
        elif isinstance(item, list | tuple):
            stack.extend((v, f"{where}[{i}]") for i, v in enumerate(item))


def _place(where: str) -> str:
    """The schema place of a path: ``sites[3].species[0]`` -> ``species``."""
    if where == "lattice":
        return "lattice"
    if re.fullmatch(r"sites\[\d+\]\.species\[\d+\]", where):
        return "species"
    return where


def _only_keys(item: dict, allowed: set[str], where: str) -> None:
    unknown = sorted(str(k) for k in item if k not in allowed)
    if unknown:
        raise ValueError(f"{where} has unknown field(s) {', '.join(unknown)[:120]}")


def _lattice(value) -> Lattice:
    if isinstance(value, list):
        return Lattice(_matrix(value))
    if not isinstance(value, dict):
        raise ValueError("structure dict needs a 'lattice' (an object with 'matrix')")
    _only_keys(value, LATTICE_KEYS, "lattice")
    pbc = value.get("pbc", [True, True, True])
    if pbc not in ([True, True, True], (True, True, True)):
        raise ValueError(f"lattice pbc {pbc!r}: a crystal is periodic in all three directions")
    return Lattice(_matrix(value.get("matrix")))


def _matrix(value) -> list[list[float]]:
    if not isinstance(value, list) or len(value) != 3:
        raise ValueError("lattice matrix is not three rows of three numbers")
    return [_numbers(row, 3, "lattice matrix row") for row in value]


def _site_species(value, where: str):
    """A site's species: an element symbol, a ``Species`` or ``{species: occupancy}``."""
    if not isinstance(value, list) or not value:
        raise ValueError(f"{where}.species is not a non-empty list")
    parts = {}
    for number, item in enumerate(value):
        at = f"{where}.species[{number}]"
        if not isinstance(item, dict):
            raise ValueError(f"{at} is not an object")
        _only_keys(item, SPECIES_KEYS, at)
        symbol = item.get("element")
        if not isinstance(symbol, str) or not Element.is_valid_symbol(symbol):
            raise ValueError(f"{at}: species {str(symbol)[:20]!r} is not a chemical element")
        occupancy = item.get("occu", 1)
        if not _is_number(occupancy) or not 0 < occupancy <= 1:
            raise ValueError(f"{at}: occupancy {str(occupancy)[:20]!r} is not in (0, 1]")
        oxidation = item.get("oxidation_state")
        if oxidation is not None and not _is_number(oxidation):
            raise ValueError(f"{at}: oxidation state {str(oxidation)[:20]!r} is not a number")
        key = Species(symbol, oxidation) if oxidation is not None else Element(symbol)
        parts[key] = parts.get(key, 0.0) + float(occupancy)
    if len(parts) == 1 and next(iter(parts.values())) == 1:
        only = next(iter(parts))
        return only.symbol if isinstance(only, Element) else only
    return parts


def _numbers(value, length: int, where: str) -> list[float]:
    if not isinstance(value, list | tuple) or len(value) != length:
        raise ValueError(f"{where} is not {length} numbers")
    if not all(_is_number(v) and math.isfinite(v) for v in value):
        raise ValueError(f"{where} holds a value that is not a finite number")
    return [float(v) for v in value]


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# --- counting before parsing ------------------------------------------------------------------


def count_sites(value) -> int | None:
    """Sites of a structure dict, POSCAR or CIF text without building it (a CIF's atom sites
    expanded by its symmetry operations, coincident positions counted once); None where the
    text says no number (its parser then reports what is wrong)."""
    if isinstance(value, dict):
        sites = value.get("sites")
        return len(sites) if isinstance(sites, list) else None
    _check_length(value)
    if CIF_START.search(value):
        return _cif_site_count(value)
    return _poscar_site_count(value)


def _poscar_site_count(text: str) -> int | None:
    lines = text.strip().splitlines()
    for line in lines[5:7]:
        tokens = line.split()
        if tokens and all(t.isdigit() for t in tokens):
            return sum(int(t) for t in tokens)
    return None


SYMOP_KEYS = (
    "_symmetry_equiv_pos_as_xyz",
    "_space_group_symop_operation_xyz",
    "_space_group_symop.operation_xyz",
)
SPACE_GROUP_KEYS = ("_symmetry_space_group_name_H-M", "_space_group_name_H-M_alt")
MAX_RAW_POSITIONS = 5_000_000
"""Atom sites times operations beyond which a CIF is refused before any expansion."""


def _cif_site_count(text: str) -> int | None:
    from pymatgen.io.cif import CifFile

    total = 0
    for block in CifFile.from_str(text).data.values():
        data = block.data
        columns = [data.get(f"_atom_site_fract_{axis}") for axis in "xyz"]
        if any(c is None for c in columns):
            return None
        operations = _symmetry_operations(data)
        if len(columns[0]) * len(operations) > MAX_RAW_POSITIONS:
            return len(columns[0]) * len(operations)
        positions = np.array([[_cif_number(v) for v in c] for c in columns]).T  # (sites, 3)
        rotations = np.array([op.rotation_matrix for op in operations])  # (ops, 3, 3)
        shifts = np.array([op.translation_vector for op in operations])  # (ops, 3)
        images = np.einsum("oij,sj->soi", rotations, positions) + shifts  # (sites, ops, 3)
        wrapped = np.round(np.mod(images, 1.0), 3) % 1.0
        total += sum(len(np.unique(site, axis=0)) for site in wrapped)
    return total


def _symmetry_operations(data: dict) -> list:
    from pymatgen.core.operations import SymmOp

    for key in SYMOP_KEYS:
        if data.get(key):
            values = data[key] if isinstance(data[key], list) else [data[key]]
            try:
                return [SymmOp.from_xyz_str(str(v).strip("'\"")) for v in values]
            except (ValueError, IndexError, KeyError):
                break
    for key in SPACE_GROUP_KEYS:
        if data.get(key):
            from pymatgen.symmetry.groups import SpaceGroup

            try:
                return list(SpaceGroup(str(data[key]).replace(" ", "")).symmetry_ops)
            except ValueError:
                break
    return [SymmOp.from_xyz_str("x, y, z")]


def _cif_number(text: str) -> float:
    """A CIF number (``0.1234(5)``: the uncertainty dropped); an unreadable one as 0, which
    can only lower the count (the parser reports the value itself)."""
    try:
        return float(str(text).split("(")[0])
    except ValueError:
        return 0.0
