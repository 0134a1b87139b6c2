"""Crystal structure -> neighbour arrays (numpy), the first half of structure -> graph.

The atom-bond graph follows CGCNN: for every atom, its ``max_neighbors`` nearest neighbours within
``radius`` (periodic images included), ordered by distance, each a directed edge from neighbour to
centre. Unlike the original code there is no zero padding: an atom with fewer neighbours in the
radius simply has fewer edges (variable degree). An atom with no neighbour at all is an error, and
so are two atoms closer than :data:`MIN_DISTANCE`.

Ties at the cut (a degenerate ``max_neighbors``-th shell) are broken by neighbour index, then
by periodic image (lexicographically): which tied neighbours are kept is arbitrary in the
original code too, but here it does not depend on the order in which pymatgen's search
enumerates the pairs (which changes with the search radius).
"""

from __future__ import annotations

import hashlib

import numpy as np
from pymatgen.core import Structure

from zoo.errors import BadInputError
from zoo.graphs.settings import GraphSettings

MIN_DISTANCE = 0.5
"""Shortest interatomic distance (angstrom) the builder accepts. The shortest bond in any known
solid is H-H in solid hydrogen, 0.74 angstrom (O-H in ice: 0.96); two atoms closer than 0.5
angstrom are a broken structure (a duplicated site, a wrong coordinate), not a material, and
a model would give it a silent number."""


def neighbor_arrays(
    structure: Structure, settings: GraphSettings, entry: str = "structure"
) -> dict[str, np.ndarray]:
    """Nearest-neighbour edges of one structure as numpy arrays.

    Returns a dict with:
        ``Z``: int64 ``(N,)`` atomic numbers.
        ``src``: int64 ``(E,)`` neighbour atom index (message source).
        ``dst``: int64 ``(E,)`` centre atom index (message destination), non-decreasing.
        ``distance``: float32 ``(E,)`` in angstrom, non-decreasing within each centre.
        ``vector``: float32 ``(E, 3)`` centre -> neighbour image, in angstrom.
        ``volume``: float64 ``(1,)`` cell volume in cubic angstrom.
        ``angle_src``, ``angle_dst``: int64 ``(A,)`` bond indices of the line graph (only with
        the ``angle`` part): all ordered pairs among the ``angle_neighbors`` nearest bonds of
        each atom, completed to a whole shell (:func:`angle_pairs`).
    """
    n_atoms = len(structure)
    centers, points, images, distances = _candidate_pairs(structure, settings)
    _check_separation(structure, centers, points, distances, entry)
    order = np.lexsort((*images.T[::-1], points, distances, centers))
    centers, points, images, distances = (
        centers[order],
        points[order],
        images[order],
        distances[order],
    )
    counts = np.bincount(centers, minlength=n_atoms)
    if (counts == 0).any():
        lonely = int(np.argmin(counts))
        raise BadInputError(
            entry,
            f"atom {lonely} ({structure[lonely].species_string}) has no neighbour within "
            f"{settings.radius} angstrom (isolated atom); use a larger radius",
        )
    if settings.max_neighbors is not None:
        starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
        rank = np.arange(len(centers)) - starts[centers]
        keep = rank < settings.max_neighbors
        centers, points, images, distances = (
            centers[keep],
            points[keep],
            images[keep],
            distances[keep],
        )
    lattice = structure.lattice.matrix
    cart = structure.cart_coords
    vectors = cart[points] + images @ lattice - cart[centers]
    arrays = {
        "Z": np.asarray(structure.atomic_numbers, dtype=np.int64),
        "src": points.astype(np.int64),
        "dst": centers.astype(np.int64),
        "distance": distances.astype(np.float32),
        "vector": vectors.astype(np.float32),
        "volume": np.array([structure.volume], dtype=np.float64),
    }
    if "angle" in settings.parts:
        arrays["angle_src"], arrays["angle_dst"] = angle_pairs(
            arrays["dst"], distances, n_atoms, settings.angle_neighbors
        )
    return arrays


FIRST_RADIUS = 5.0
"""Radius (angstrom) of a first, cheaper search when only the ``max_neighbors`` nearest are kept
(a sphere of 5 angstrom holds a quarter of the pairs of one of 8)."""

FIRST_RADIUS_MARGIN = 1e-6
"""A neighbour must lie this far inside :data:`FIRST_RADIUS` to count as surely found."""


def _candidate_pairs(structure: Structure, settings: GraphSettings):
    """The pairs the edges are chosen from. With ``max_neighbors`` set, the pairs within
    :data:`FIRST_RADIUS` when every atom has at least ``max_neighbors`` of them strictly
    inside it: then each atom's nearest ``max_neighbors`` and every pair as short as the last
    of them are among these pairs, so the kept edges, their order and the angle pairs are the
    same as from the full ``radius``. Otherwise (open structures, a lonely atom, a short
    ``radius``) the pairs within ``radius``."""
    limit = settings.max_neighbors
    if limit is not None and settings.radius > FIRST_RADIUS:
        pairs = _all_pairs(structure, FIRST_RADIUS)
        centers, _, _, distances = pairs
        inside = centers[distances < FIRST_RADIUS - FIRST_RADIUS_MARGIN]
        if np.bincount(inside, minlength=len(structure)).min() >= limit:
            return pairs
    return _all_pairs(structure, settings.radius)


def _all_pairs(structure: Structure, radius: float):
    """Every (centre, neighbour image) pair within ``radius`` but an atom with itself. pymatgen's
    ``exclude_self`` drops pairs by distance, which would hide two atoms on the same spot; here
    only an atom paired with its own unshifted position is dropped."""
    centers, points, images, distances = structure.get_neighbor_list(r=radius, exclude_self=False)
    itself = (centers == points) & ~images.any(axis=1)
    return centers[~itself], points[~itself], images[~itself], distances[~itself]


def _check_separation(structure, centers, points, distances, entry: str) -> None:
    """Two atoms closer than :data:`MIN_DISTANCE` are bad input naming both sites."""
    if len(distances) == 0 or distances.min() >= MIN_DISTANCE:
        return
    pair = int(np.argmin(distances))
    first, second = sorted((int(centers[pair]), int(points[pair])))
    raise BadInputError(
        entry,
        f"sites {first} ({structure[first].species_string}) and {second} "
        f"({structure[second].species_string}) are {distances[pair]:.4f} angstrom apart, closer "
        f"than {MIN_DISTANCE} angstrom (overlapping atoms)",
    )


SHELL_TOLERANCE = 1e-3
"""Bonds whose lengths differ by less than this (angstrom) belong to the same shell."""


def angle_pairs(
    dst: np.ndarray, distance: np.ndarray, n_atoms: int, limit: int
) -> tuple[np.ndarray, np.ndarray]:
    """Ordered pairs ``(a, b)``, ``a != b``, among the nearest bonds of every atom: its first
    ``limit`` bonds plus any bond as short as the ``limit``-th (within :data:`SHELL_TOLERANCE`),
    so that a degenerate shell is kept whole and the pairs do not depend on the atoms' order.

    Bonds are numbered as in :func:`neighbor_arrays`: grouped by centre atom (``dst``), nearest
    first. Returns two int64 ``(A,)`` arrays of bond indices.
    """
    degree = np.bincount(dst, minlength=n_atoms)
    starts = np.concatenate(([0], np.cumsum(degree)[:-1]))
    last = starts + np.minimum(degree, limit) - 1
    within = distance <= distance[last][dst] + SHELL_TOLERANCE
    used = np.bincount(dst[within], minlength=n_atoms)
    width = int(used.max())
    first, second = np.meshgrid(np.arange(width), np.arange(width), indexing="ij")
    off_diagonal = first != second
    first, second = first[off_diagonal], second[off_diagonal]
    valid = (first[None, :] < used[:, None]) & (second[None, :] < used[:, None])
    source = (starts[:, None] + first[None, :])[valid]
    target = (starts[:, None] + second[None, :])[valid]
    return source.astype(np.int64), target.astype(np.int64)


def structure_fingerprint(structure: Structure) -> bytes:
    """Digest of everything the builder reads from a structure (lattice, species, positions)."""
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(structure.lattice.matrix, dtype=np.float64).tobytes())
    digest.update(np.asarray(structure.atomic_numbers, dtype=np.int64).tobytes())
    digest.update(np.ascontiguousarray(structure.frac_coords, dtype=np.float64).tobytes())
    return digest.digest()
