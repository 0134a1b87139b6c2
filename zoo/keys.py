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

GRAPH_PARTS = ("bond",)
"""Graph parts this builder version can add. Later variants add parts to the same heterograph
(a crystal node, a bond-angle line graph) and declare them by name."""
