"""Structure -> graph, the second stage of the pipeline, in one package:

==================  ======================================================================
module              what it does
==================  ======================================================================
``settings``        :class:`GraphSettings` (radius, neighbours, graph parts), builder version
``neighbors``       one structure -> neighbour arrays (numpy); overlapping atoms, isolated atoms
``store``           :class:`GraphStore`: many graphs in flat arrays; ``batch`` -> DGL graph
``cache``           :func:`build_store`: arrays of many structures in parallel, cached on disk
``build``           :func:`usable_graphs`: structure and element checks, then the store;
                    :func:`build_graph` for one structure
==================  ======================================================================

Each module imports only those above it. Names of graph fields: :mod:`zoo.keys`.
"""

from zoo.graphs.build import build_graph, check_elements, usable_graphs
from zoo.graphs.cache import build_arrays, build_store, cache_key, default_cache_dir
from zoo.graphs.neighbors import (
    MIN_DISTANCE,
    SHELL_TOLERANCE,
    angle_pairs,
    neighbor_arrays,
    structure_fingerprint,
)
from zoo.graphs.settings import BUILDER_VERSION, GraphSettings
from zoo.graphs.store import GraphStore

__all__ = [
    "BUILDER_VERSION",
    "MIN_DISTANCE",
    "SHELL_TOLERANCE",
    "GraphSettings",
    "GraphStore",
    "angle_pairs",
    "build_arrays",
    "build_graph",
    "build_store",
    "cache_key",
    "check_elements",
    "default_cache_dir",
    "neighbor_arrays",
    "structure_fingerprint",
    "usable_graphs",
]
