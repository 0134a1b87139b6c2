"""CIF text -> structure, refusing species symbols that are no element.

pymatgen reads a ``_atom_site_type_symbol`` that is no element in one of two silent ways: as a
dummy species with a hash-dependent atomic number (``Xx``), or as the element its first letters
happen to spell (``Nvg`` becomes N, ``Puh`` Pu, ``Cke`` C). Either gives a wrong structure and
a silent number, so every type symbol is checked before the structure is built.
"""

from __future__ import annotations

import re
import warnings
from contextlib import contextmanager
from pathlib import Path

from pymatgen.core import Element, Structure

TYPE_SYMBOL = re.compile(r"^([A-Za-z]+)(\d*[+-]?|[+-]\d*)$")
"""An element symbol with an optional charge: ``Fe``, ``Fe3+``, ``O2-``, ``Na+``, ``Cl1-``."""


def check_type_symbols(text: str) -> None:
    """Raise ValueError naming the first ``_atom_site_type_symbol`` that is no element."""
    from pymatgen.io.cif import CifFile

    for block in CifFile.from_str(text).data.values():
        for symbol in block.data.get("_atom_site_type_symbol") or []:
            symbol = symbol.strip()
            if symbol in ("?", "."):  # unknown / not applicable: pymatgen uses the label
                continue
            match = TYPE_SYMBOL.match(symbol)
            if match is None or not Element.is_valid_symbol(match.group(1)):
                raise ValueError(f"species {symbol!r} is not a chemical element")


def structure_from_cif(text: str) -> Structure:
    """The structure of CIF text (the first block, as ``Structure.from_str``)."""
    check_type_symbols(text)
    return Structure.from_str(text, fmt="cif")


def read_cif_file(path: Path) -> Structure:
    """One structure from a CIF file; an empty file is an error naming it."""
    text = Path(path).read_text(errors="replace")
    if not text.strip():
        raise ValueError(f"file {Path(path).name} is empty")
    with warnings_naming(path):
        return structure_from_cif(text)


@contextmanager
def warnings_naming(path: Path):
    """Re-issue the warnings raised inside (pymatgen's CIF parser warns without saying which
    file it read) with ``path`` in front, once per distinct message."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for message in dict.fromkeys((w.category, " ".join(str(w.message).split())) for w in caught):
        warnings.warn(f"{path}: {message[1]}", message[0], stacklevel=3)
