"""Graphs of many structures, built in parallel and cached on disk.

On disk a store is one batched heterograph written with ``dgl.save_graphs`` plus a JSON sidecar
holding the cache key, the input positions of the entries and the checksum of the graph file.
The cache key covers the builder version, the graph settings and a fingerprint of every
structure (lattice, species, positions), so changing any of them builds anew; a graph file
whose checksum or content does not match its sidecar is treated as corrupt and rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
from pathlib import Path

from zoo.errors import BadInputError, SkipReport
from zoo.files import atomic_write, remove_stale_partials
from zoo.graphs.neighbors import neighbor_arrays, structure_fingerprint
from zoo.graphs.settings import GraphSettings
from zoo.graphs.store import GraphStore
from zoo.processes import map_forked
from zoo.progress import CountBar

PARALLEL_THRESHOLD = 500
"""Fewer structures than this are built in the calling process (process start-up costs more)."""


def default_cache_dir() -> Path:
    """``$ZOO_CACHE_DIR`` or ``~/.cache/zoo/graphs``."""
    return Path(os.environ.get("ZOO_CACHE_DIR", Path.home() / ".cache" / "zoo" / "graphs"))


def _build_one(job):
    entry, structure, settings = job
    try:
        return neighbor_arrays(structure, settings, entry)
    except BadInputError as error:
        return error
    except Exception as error:  # whatever one structure does, it stops only itself
        return BadInputError(entry, f"graph building failed ({type(error).__name__}: {error})")


def build_arrays(
    ids: list[str],
    structures: list,
    settings: GraphSettings,
    workers: int = 1,
    progress: bool = True,
) -> list:
    """Neighbour arrays (or the :class:`BadInputError` of that entry) for every structure."""
    jobs = [(entry, structure, settings) for entry, structure in zip(ids, structures, strict=True)]
    bar = dict(total=len(jobs), desc="building graphs", unit="crystals", disable=not progress)
    if workers <= 1 or len(jobs) < PARALLEL_THRESHOLD:
        return [_build_one(job) for job in CountBar(jobs, **bar)]
    if "fork" not in multiprocessing.get_all_start_methods():
        size = max(16, len(jobs) // (workers * 16))
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            return list(CountBar(pool.imap(_build_one, jobs, chunksize=size), **bar))
    # fork: workers inherit the imported modules and the structures (no pickling of inputs);
    # they run only numpy and pymatgen code.
    with CountBar(**bar) as counter:
        return map_forked(_build_one, jobs, workers, done=lambda result: counter.update(1))


CACHE_FORMAT = 2
"""Layout of the cache index (2: entries by input position, not by id)."""


def cache_key(structures: list, settings: GraphSettings) -> str:
    """Digest of the settings and of every structure in order. The key does not cover ids: a
    cached graph belongs to a *position* in the input, and the caller's ids are put back on
    load, so that the same structures under other, permuted or renamed ids still meet their own
    labels."""
    digest = hashlib.sha256(f"{CACHE_FORMAT}:{settings.key()}".encode())
    for structure in structures:
        digest.update(structure_fingerprint(structure))
    return digest.hexdigest()


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def build_store(
    ids: list[str],
    structures: list,
    settings: GraphSettings,
    *,
    workers: int = 1,
    cache_dir: Path | None | bool = None,
    skip_bad: bool = False,
    progress: bool = True,
) -> tuple[GraphStore, SkipReport]:
    """Graphs for ``structures``, from the cache when it holds them, else built and cached.

    Args:
        cache_dir: folder of the cache; None for :func:`default_cache_dir`; False for no cache.
        skip_bad: leave out structures the builder rejects (reported) instead of raising.

    Returns:
        The store (only the entries that could be built, in input order) and the skip report.
    """
    skipped = SkipReport()
    cache = None if cache_dir is False else Path(cache_dir or default_cache_dir())
    key = cache_key(structures, settings) if cache else ""
    if cache:
        remove_stale_partials(cache)
        loaded = _load_cached(cache, key, ids, settings)
        if loaded is not None:
            store, skipped_items = loaded
            if skipped_items and not skip_bad:
                entry, reason = skipped_items[0]
                raise BadInputError(entry, reason)
            skipped.items.extend(skipped_items)
            return store, skipped
    results = build_arrays(ids, structures, settings, workers=workers, progress=progress)
    good_ids, good_arrays = [], []
    for entry, result in zip(ids, results, strict=True):
        if isinstance(result, BadInputError):
            if not skip_bad:
                raise result
            skipped.add(result)
        else:
            good_ids.append(entry)
            good_arrays.append(result)
    if not good_ids:
        raise ValueError(f"no structure could be turned into a graph ({skipped.summary()})")
    store = GraphStore.from_arrays(good_ids, good_arrays, settings)
    if cache:
        _save_cached(cache, key, store, ids, skipped)
    return store, skipped


def _paths(cache: Path, key: str) -> tuple[Path, Path]:
    return cache / f"graphs-{key[:24]}.bin", cache / f"graphs-{key[:24]}.json"


def _load_cached(cache: Path, key: str, ids: list[str], settings: GraphSettings):
    """The cached store with the caller's ``ids`` put on it by input position, and the skipped
    entries as ``(id, reason)``; None when there is no usable cache entry."""
    graph_path, index_path = _paths(cache, key)
    if not (graph_path.exists() and index_path.exists()):
        return None
    try:
        index = json.loads(index_path.read_text())
        if index["key"] != key or index["sha256"] != _file_digest(graph_path):
            raise ValueError("checksum or key mismatch")
        if index["count"] != len(ids):
            raise ValueError(f"index is of {index['count']} structures, not {len(ids)}")
        kept = [ids[position] for position in index["kept"]]
        store = GraphStore.load(graph_path, kept, settings)
        return store, [(ids[position], reason) for position, reason in index["skipped"]]
    except Exception as error:  # any damage means: rebuild
        print(f"graph cache {graph_path.name} is stale or corrupt ({error}); rebuilding")
        return None


def _save_cached(
    cache: Path, key: str, store: GraphStore, ids: list[str], skipped: SkipReport
) -> None:
    """Write the graphs, then their index, each with :func:`zoo.files.atomic_write`, so that
    two processes building the same graphs at once (``--parallel`` benchmark runs, two
    ``zoo train`` started together) never read or move each other's half-written files. The
    index records input positions (``kept``, ``skipped``), never ids (see :func:`cache_key`)."""
    cache.mkdir(parents=True, exist_ok=True)
    graph_path, index_path = _paths(cache, key)
    position = {entry: i for i, entry in enumerate(ids)}
    with atomic_write(graph_path) as partial:
        store.save(partial)
        digest = _file_digest(partial)
    index = {
        "key": key,
        "sha256": digest,
        "settings": store.settings.model_dump(),
        "count": len(ids),
        "kept": [position[entry] for entry in store.ids],
        "skipped": [[position[entry], reason] for entry, reason in skipped.items],
    }
    with atomic_write(index_path) as partial:
        partial.write_text(json.dumps(index))
