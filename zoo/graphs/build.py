"""Structure -> graph as the pipeline uses it: the checks every structure passes (structure
validity, element features), then the graphs (from the cache when it has them)."""

from __future__ import annotations

from pymatgen.core import Structure

from zoo.dataset import check_structure
from zoo.errors import BadInputError, SkipReport
from zoo.graphs.cache import build_store
from zoo.graphs.neighbors import neighbor_arrays
from zoo.graphs.settings import GraphSettings
from zoo.graphs.store import GraphStore


def build_graph(
    structure: Structure, settings: GraphSettings | None = None, entry: str = "structure"
):
    """One crystal graph (DGL heterograph with the parts of ``settings``) for ``structure``.

    Built through the same code path as training batches (:meth:`GraphStore.batch`)."""
    settings = settings or GraphSettings()
    store = GraphStore.from_arrays([entry], [neighbor_arrays(structure, settings, entry)], settings)
    return store.batch([0])


def check_elements(entry: str, atomic_numbers, known) -> BadInputError | None:
    """The error for an entry holding an element without features (``known``: bool
    ``(MAX_Z + 1,)`` by atomic number), or None."""
    missing = sorted({int(z) for z in atomic_numbers if z > len(known) - 1 or not known[z]})
    if not missing:
        return None
    from pymatgen.core import Element

    names = ", ".join(Element.from_Z(z).symbol for z in missing)
    return BadInputError(entry, f"no element features for {names}")


def usable_graphs(
    ids: list[str],
    structures: list,
    settings,
    known,
    *,
    skip_bad: bool,
    workers: int = 1,
    cache_dir=None,
    progress: bool = False,
) -> tuple[GraphStore | None, SkipReport]:
    """Graphs of the entries that pass :func:`zoo.dataset.check_structure` (structures may come
    from a reader or straight from the caller), whose elements all have features and whose
    graphs can be built.

    Bad entries raise their :class:`BadInputError`, or with ``skip_bad`` are left out and
    reported. The store is None when no entry passes the element check.
    """
    skipped = SkipReport()
    usable_ids, usable = [], []
    for entry, structure in zip(ids, structures, strict=True):
        try:
            check_structure(entry, structure)
            problem = check_elements(entry, structure.atomic_numbers, known)
        except BadInputError as error:
            problem = error
        if problem is None:
            usable_ids.append(entry)
            usable.append(structure)
        elif skip_bad:
            skipped.add(problem)
        else:
            raise problem
    if not usable:
        return None, skipped
    store, graph_skips = build_store(
        usable_ids,
        usable,
        settings,
        workers=workers,
        cache_dir=cache_dir,
        skip_bad=skip_bad,
        progress=progress,
    )
    skipped.items.extend(graph_skips.items)
    return store, skipped
