"""Names and shapes of everything stored on a crystal graph, in one place.

A crystal graph is a DGL heterograph. Graphs store only element indices and geometry;
expansions (Gaussian distances, element embeddings) are computed inside the models, so
changing them never invalidates cached graphs.

Shapes use ``N`` for atoms, ``E`` for bonds (directed neighbour pairs) of one graph or batch.
"""

ATOM = "atom"
"""Node type of the atoms in the unit cell."""

BOND = ("atom", "bond", "atom")
"""Relation of directed neighbour pairs: an edge ``j -> i`` means atom ``j`` (the source,
possibly in a periodic image) is one of the nearest neighbours of atom ``i`` (the destination).
Messages therefore flow from neighbours to the centre atom."""

ATOMIC_NUMBER = "Z"
"""Atom data, int64 ``(N,)``: atomic number of each atom."""

DISTANCE = "distance"
"""Bond data, float32 ``(E,)``: distance in angstrom between the centre and the neighbour."""

BOND_VECTOR = "vector"
"""Bond data, float32 ``(E, 3)``: Cartesian vector in angstrom from the centre atom to the
neighbour image (``r_j + image @ lattice - r_i``)."""

CRYSTAL = "crystal"
"""Node type of the crystal itself (part ``crystal``): one node per crystal."""

ATOM_IN_CRYSTAL = ("atom", "in", "crystal")
"""Relation from every atom to its crystal node (part ``crystal``)."""

CRYSTAL_HAS_ATOM = ("crystal", "has", "atom")
"""Relation from the crystal node to each of its atoms (part ``crystal``)."""

VOLUME = "volume"
"""Crystal data, float32 ``(B,)``: cell volume in cubic angstrom (part ``crystal``)."""

BOND_NODE = "bond"
"""Node type of the bond-angle line graph (part ``angle``): one node per (atom, bond, atom)
edge, in the same order, so bond-node ``k`` is bond edge ``k``."""

ANGLE = ("bond", "angle", "bond")
"""Relation of the line graph (part ``angle``): an edge ``a -> b`` joins two bonds of the same
centre atom (``dst[a] == dst[b]``, ``a != b``); the angle between them follows from the two bond
vectors, so only the pairs are stored. ``A`` denotes the number of such edges."""

GRAPH_PARTS = ("bond", "crystal", "angle")
"""Graph parts the builder can add; each variant declares the parts it reads, and the graph
cache is keyed by them."""
