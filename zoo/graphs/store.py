"""All crystal graphs of a data set in flat arrays (CSR style), and batching: any graphs of a
store become one DGL heterograph in a single call (:meth:`GraphStore.batch`), much faster than
building one DGL graph per crystal and calling ``dgl.batch``. ``import dgl`` stays in this
package and the layer code, so moving to another graph library stays local."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

import zoo._backend  # noqa: F401  (sets DGLBACKEND before dgl is imported)
from zoo import keys
from zoo.graphs.settings import GraphSettings


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

    def few_neighbors(self) -> np.ndarray:
        """bool ``(n,)``: crystals with an atom that has fewer than ``max_neighbors`` bonds
        (nothing within the radius filled its list: an open or very sparse structure); all
        False when the graphs keep every neighbour within the radius."""
        limit = self.settings.max_neighbors
        if limit is None or len(self) == 0:
            return np.zeros(len(self), dtype=bool)
        nodes, edges = self.node_offsets.numpy(), self.edge_offsets.numpy()
        crystal_of_edge = np.repeat(np.arange(len(self)), np.diff(edges))
        degree = np.bincount(self.dst.numpy() + nodes[crystal_of_edge], minlength=nodes[-1])
        return np.minimum.reduceat(degree, nodes[:-1]) < limit

    def atoms_and_volumes(self, indices) -> tuple[list[np.ndarray], np.ndarray]:
        """Atomic numbers (int64 ``(N_i,)`` each) and cell volumes (Å³, float64 ``(k,)``) of the
        crystals at ``indices`` (what :func:`zoo.domain.training_domain` reads)."""
        offsets = self.node_offsets.numpy()
        numbers = self.atomic_numbers.numpy()
        indices = np.asarray(indices, dtype=np.int64)
        atoms = [numbers[offsets[i] : offsets[i + 1]] for i in indices]
        return atoms, self.volume.numpy()[indices]

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
