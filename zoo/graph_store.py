"""All crystal graphs of a data set in flat arrays, built in parallel and cached on disk.

The store keeps per-graph offsets into concatenated node and edge arrays (CSR style), so that a
minibatch of any graphs becomes one DGL heterograph in a single call (:meth:`GraphStore.batch`),
which is much faster than building one DGL graph per crystal and calling ``dgl.batch``.

On disk a store is one batched heterograph written with ``dgl.save_graphs`` plus a JSON sidecar
holding the cache key, the entry ids and the checksum of the graph file. The cache key covers the
builder version, the graph settings and a fingerprint of every structure (lattice, species,
positions), so changing any of them builds anew; a graph file whose checksum or content does not
match its sidecar is treated as corrupt and rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

import zoo._backend  # noqa: F401
from zoo import keys
from zoo.errors import BadInputError, SkipReport
from zoo.files import atomic_write, remove_stale_partials
from zoo.graphs import GraphSettings, neighbor_arrays, structure_fingerprint

PARALLEL_THRESHOLD = 500
"""Fewer structures than this are built in the calling process (process start-up costs more)."""


def default_cache_dir() -> Path:
    """``$ZOO_CACHE_DIR`` or ``~/.cache/zoo/graphs``."""
    return Path(os.environ.get("ZOO_CACHE_DIR", Path.home() / ".cache" / "zoo" / "graphs"))


@dataclass
class GraphStore:
    """Graphs of ``n`` crystals with ``N`` atoms, ``E`` bonds and ``A`` bond pairs in all.

    Attributes:
        ids: entry ids, length ``n``.
        atomic_numbers: int64 ``(N,)``.
        src, dst: int64 ``(E,)`` atom indices local to their own crystal.
        distance: float32 ``(E,)``; vector: float32 ``(E, 3)``.
        volume: float64 ``(n,)`` cell volumes in cubic angstrom.
        node_offsets, edge_offsets: int64 ``(n + 1,)`` where each crystal's atoms / bonds start.
        settings: how the graphs were built.
        angle_src, angle_dst: int64 ``(A,)`` bond indices local to their crystal (``angle``
            part only, else None); angle_offsets: int64 ``(n + 1,)``.
    """

    ids: list[str]
    atomic_numbers: torch.Tensor
    src: torch.Tensor
    dst: torch.Tensor
    distance: torch.Tensor
    vector: torch.Tensor
    volume: torch.Tensor
    node_offsets: torch.Tensor
    edge_offsets: torch.Tensor
    settings: GraphSettings
    angle_src: torch.Tensor | None = None
    angle_dst: torch.Tensor | None = None
    angle_offsets: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def has_angles(self) -> bool:
        return self.angle_offsets is not None

    @property
    def num_nodes(self) -> torch.Tensor:
        """int64 ``(n,)`` atoms per crystal."""
        return self.node_offsets[1:] - self.node_offsets[:-1]

    @property
    def num_edges(self) -> torch.Tensor:
        """int64 ``(n,)`` bonds per crystal."""
        return self.edge_offsets[1:] - self.edge_offsets[:-1]

    @property
    def num_angles(self) -> torch.Tensor:
        """int64 ``(n,)`` bond pairs per crystal (zeros without the angle part)."""
        if not self.has_angles:
            return torch.zeros(len(self), dtype=torch.int64)
        return self.angle_offsets[1:] - self.angle_offsets[:-1]

    def subset(self, indices) -> GraphStore:
        """A store with the crystals at ``indices`` (in that order)."""
        indices = torch.as_tensor(np.asarray(indices, dtype=np.int64))
        node_index = _ranges(self.node_offsets, indices)
        edge_index = _ranges(self.edge_offsets, indices)
        angles = {}
        if self.has_angles:
            angle_index = _ranges(self.angle_offsets, indices)
            angles = dict(
                angle_src=self.angle_src[angle_index],
                angle_dst=self.angle_dst[angle_index],
                angle_offsets=_offsets(self.num_angles[indices]),
            )
        return GraphStore(
            ids=[self.ids[i] for i in indices.tolist()],
            atomic_numbers=self.atomic_numbers[node_index],
            src=self.src[edge_index],
            dst=self.dst[edge_index],
            distance=self.distance[edge_index],
            vector=self.vector[edge_index],
            volume=self.volume[indices],
            node_offsets=_offsets(self.num_nodes[indices]),
            edge_offsets=_offsets(self.num_edges[indices]),
            settings=self.settings,
            **angles,
        )

    def batch(self, indices):
        """One batched DGL heterograph holding the crystals at ``indices``, in that order, with
        the parts of ``settings`` (see :mod:`zoo.keys`)."""
        import dgl

        part = self.subset(indices)
        count = len(part)
        num_nodes, num_edges = part.num_nodes, part.num_edges
        shift = torch.repeat_interleave(part.node_offsets[:-1], num_edges)
        relations = {keys.BOND: (part.src + shift, part.dst + shift)}
        sizes = {keys.ATOM: int(num_nodes.sum())}
        batch_nodes = {keys.ATOM: num_nodes}
        batch_edges = {keys.BOND: num_edges}
        parts = self.settings.parts
        if "crystal" in parts:
            atoms = torch.arange(sizes[keys.ATOM])
            owner = torch.repeat_interleave(torch.arange(count), num_nodes)
            relations[keys.ATOM_IN_CRYSTAL] = (atoms, owner)
            relations[keys.CRYSTAL_HAS_ATOM] = (owner, atoms)
            sizes[keys.CRYSTAL] = count
            batch_nodes[keys.CRYSTAL] = torch.ones(count, dtype=torch.int64)
            batch_edges[keys.ATOM_IN_CRYSTAL] = num_nodes
            batch_edges[keys.CRYSTAL_HAS_ATOM] = num_nodes
        if "angle" in parts:
            bond_shift = torch.repeat_interleave(part.edge_offsets[:-1], part.num_angles)
            relations[keys.ANGLE] = (part.angle_src + bond_shift, part.angle_dst + bond_shift)
            sizes[keys.BOND_NODE] = int(num_edges.sum())
            batch_nodes[keys.BOND_NODE] = num_edges
            batch_edges[keys.ANGLE] = part.num_angles
        graph = dgl.heterograph(relations, num_nodes_dict=sizes)
        graph.nodes[keys.ATOM].data[keys.ATOMIC_NUMBER] = part.atomic_numbers
        graph.edges[keys.BOND].data[keys.DISTANCE] = part.distance
        graph.edges[keys.BOND].data[keys.BOND_VECTOR] = part.vector
        if "crystal" in parts:
            graph.nodes[keys.CRYSTAL].data[keys.VOLUME] = part.volume.float()
        graph.set_batch_num_nodes(batch_nodes)
        graph.set_batch_num_edges(batch_edges)
        return graph

    @classmethod
    def from_arrays(cls, ids: list[str], arrays: list[dict], settings: GraphSettings) -> GraphStore:
        def cat(name, dtype):
            return torch.from_numpy(np.concatenate([a[name] for a in arrays]).astype(dtype))

        angles = {}
        if "angle" in settings.parts:
            angles = dict(
                angle_src=cat("angle_src", np.int64),
                angle_dst=cat("angle_dst", np.int64),
                angle_offsets=_offsets(torch.tensor([len(a["angle_src"]) for a in arrays])),
            )
        return cls(
            ids=list(ids),
            atomic_numbers=cat("Z", np.int64),
            src=cat("src", np.int64),
            dst=cat("dst", np.int64),
            distance=cat("distance", np.float32),
            vector=torch.from_numpy(
                np.concatenate([a["vector"] for a in arrays]).reshape(-1, 3).astype(np.float32)
            ),
            volume=cat("volume", np.float64),
            node_offsets=_offsets(torch.tensor([len(a["Z"]) for a in arrays])),
            edge_offsets=_offsets(torch.tensor([len(a["src"]) for a in arrays])),
            settings=settings,
            **angles,
        )

    def save(self, path: Path) -> None:
        """Write as one batched heterograph with ``dgl.save_graphs`` (crystal-local indices)."""
        import dgl

        relations = {keys.BOND: (self.src, self.dst)}
        sizes = {keys.ATOM: len(self.atomic_numbers)}
        labels = {
            "node_offsets": self.node_offsets,
            "edge_offsets": self.edge_offsets,
            "volume": self.volume,
        }
        if self.has_angles:
            relations[keys.ANGLE] = (self.angle_src, self.angle_dst)
            sizes[keys.BOND_NODE] = len(self.src)
            labels["angle_offsets"] = self.angle_offsets
        graph = dgl.heterograph(relations, num_nodes_dict=sizes)
        graph.nodes[keys.ATOM].data[keys.ATOMIC_NUMBER] = self.atomic_numbers
        graph.edges[keys.BOND].data[keys.DISTANCE] = self.distance
        graph.edges[keys.BOND].data[keys.BOND_VECTOR] = self.vector
        dgl.save_graphs(str(path), [graph], labels)

    @classmethod
    def load(cls, path: Path, ids: list[str], settings: GraphSettings) -> GraphStore:
        import dgl

        graphs, labels = dgl.load_graphs(str(path))
        (graph,) = graphs
        src, dst = graph.edges(etype=keys.BOND)
        angles = {}
        if "angle" in settings.parts:
            angle_src, angle_dst = graph.edges(etype=keys.ANGLE)
            angles = dict(
                angle_src=angle_src, angle_dst=angle_dst, angle_offsets=labels["angle_offsets"]
            )
        store = cls(
            ids=list(ids),
            atomic_numbers=graph.nodes[keys.ATOM].data[keys.ATOMIC_NUMBER],
            src=src,
            dst=dst,
            distance=graph.edges[keys.BOND].data[keys.DISTANCE],
            vector=graph.edges[keys.BOND].data[keys.BOND_VECTOR],
            volume=labels["volume"],
            node_offsets=labels["node_offsets"],
            edge_offsets=labels["edge_offsets"],
            settings=settings,
            **angles,
        )
        if len(store.node_offsets) != len(ids) + 1 or int(store.edge_offsets[-1]) != len(src):
            raise ValueError("graph file does not match its index")
        return store


def _offsets(counts: torch.Tensor) -> torch.Tensor:
    return torch.cat([torch.zeros(1, dtype=torch.int64), torch.cumsum(counts, 0)])


def _ranges(offsets: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """Concatenated ``arange(offsets[i], offsets[i + 1])`` for each i in ``indices``."""
    starts = offsets[indices]
    counts = offsets[indices + 1] - starts
    within = torch.arange(int(counts.sum())) - torch.repeat_interleave(
        _offsets(counts)[:-1], counts
    )
    return torch.repeat_interleave(starts, counts) + within


def _build_one(job):
    entry, structure, settings = job
    try:
        return neighbor_arrays(structure, settings, entry)
    except BadInputError as error:
        return error
    except Exception as error:  # whatever one structure does, it stops only itself
        return BadInputError(entry, f"graph building failed ({type(error).__name__}: {error})")


_FORKED_JOBS: list = []
"""Jobs of the running parallel build; forked workers read them from the parent's memory."""


def _build_range(bounds: tuple[int, int]) -> list:
    return [_build_one(job) for job in _FORKED_JOBS[bounds[0] : bounds[1]]]


def build_arrays(
    ids: list[str],
    structures: list,
    settings: GraphSettings,
    workers: int = 1,
    progress: bool = True,
) -> list:
    """Neighbour arrays (or the :class:`BadInputError` of that entry) for every structure."""
    global _FORKED_JOBS
    jobs = [(entry, structure, settings) for entry, structure in zip(ids, structures, strict=True)]
    bar = dict(total=len(jobs), desc="building graphs", unit="crystal", disable=not progress)
    if workers <= 1 or len(jobs) < PARALLEL_THRESHOLD:
        return [_build_one(job) for job in tqdm(jobs, **bar)]
    size = max(16, len(jobs) // (workers * 16))
    if "fork" not in multiprocessing.get_all_start_methods():
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            return list(tqdm(pool.imap(_build_one, jobs, chunksize=size), **bar))
    # fork: workers inherit the imported modules and the structures (no pickling of inputs);
    # they run only numpy and pymatgen code.
    _FORKED_JOBS = jobs
    try:
        results: list = []
        ranges = [(start, min(start + size, len(jobs))) for start in range(0, len(jobs), size)]
        with multiprocessing.get_context("fork").Pool(workers) as pool, tqdm(**bar) as counter:
            for chunk in pool.imap(_build_range, ranges):
                results.extend(chunk)
                counter.update(len(chunk))
        return results
    finally:
        _FORKED_JOBS = []


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
