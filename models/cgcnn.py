"""CGCNN (Xie & Grossman, Phys. Rev. Lett. 120, 145301 (2018)), as the same function.

Forward pass, for a batch of crystal graphs (see :mod:`zoo.keys`):

1. atom features ``(N, 92)`` from the element table -> linear embedding ``(N, F)``;
2. bond distances ``(E,)`` -> Gaussian expansion ``(E, G)`` (G = 41 for 0..8 angstrom, step 0.2);
3. ``n_conv`` gated convolutions: for each bond ``j -> i``,
   ``z_ij = BN1(W [v_i, v_j, u_ij] + b)`` ``(E, 2F)``, split into ``(gate, core)``,
   ``v_i <- softplus(v_i + BN2(sum_j sigmoid(gate) * softplus(core)))``;
4. mean pooling over each crystal's atoms ``(B, F)``;
5. ``softplus -> Linear(F, H) -> softplus``, ``n_h - 1`` more ``Linear(H, H) -> softplus``,
   ``Linear(H, n_outputs)``.

The linear map of ``[v_i, v_j, u_ij]`` is evaluated as ``W_i v_i`` per atom plus ``W_j v_j`` per
atom plus ``W_u u_ij`` per bond: the same function, with the big matrix product done once per
atom instead of once per bond. Layer names follow the original code (``embedding``,
``convs.k.fc_full``, ``convs.k.bn1``...; the head's ``conv_to_fc``/``fc_out`` live in
``heads.heads.0``), so original checkpoints map one to one.

The other variants (:mod:`models.variants`) subclass :class:`CGCNN` and replace
:meth:`CGCNN.encode`; every variant shares the heads (one shared or one per target) and the
multitask loss weighting configured here.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

import zoo._backend  # noqa: F401
from zoo import keys
from zoo.models.heads import Heads, LossWeights
from zoo.models.layers import ElementFeatures, GaussianExpansion
from zoo.models.registry import register_model


class CGCNNConfig(BaseModel):
    """Hyperparameters of CGCNN. Defaults are those of the original ``main.py``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    atom_fea_len: int = Field(64, ge=1, description="hidden atom feature size F")
    n_conv: int = Field(3, ge=1, description="number of gated convolutions")
    h_fea_len: int = Field(128, ge=1, description="hidden size H after pooling")
    n_h: int = Field(1, ge=1, description="number of hidden layers after pooling")
    gaussian_dmin: float = Field(0.0, ge=0, description="first Gaussian centre, angstrom")
    gaussian_dmax: float = Field(8.0, gt=0, description="last Gaussian centre, angstrom")
    gaussian_step: float = Field(0.2, gt=0, description="centre spacing and width, angstrom")
    dropout: float = Field(0.0, ge=0, lt=1, description="dropout before the output layer")
    per_target_heads: bool = Field(False, description="one head per target (multitask)")
    loss_weighting: Literal["fixed", "learned"] = Field(
        "fixed", description="fixed weights or learned homoscedastic uncertainty weighting"
    )
    loss_weights: tuple[float, ...] | None = Field(
        None, description="fixed weight per target (default 1 each)"
    )


def edge_sums(
    center: torch.Tensor, neighbor: torch.Tensor, senders: torch.Tensor, receivers: torch.Tensor
) -> torch.Tensor:
    """``center[i] + neighbor[j]`` for every edge ``j -> i``: ``(n_edges, W)`` from two
    ``(n_nodes, W)`` node terms and the edges' ``(n_edges,)`` senders and receivers."""
    return center.index_select(0, receivers).add_(neighbor.index_select(0, senders))


class ConvLayer(nn.Module):
    """CGCNN gated convolution on one relation whose source and destination node types agree:
    (atom, bond, atom) in CGCNN, (bond, angle, bond) on the line graph of ``cgcnn-angle``.

    Args of forward:
        graph: (batched) heterograph.
        node_fea: ``(n_nodes, F)`` features of the relation's node type.
        edge_fea: ``(n_edges, G)`` features of its edges.
    Returns ``(n_nodes, F)``.
    """

    def __init__(self, atom_fea_len: int, nbr_fea_len: int, relation=keys.BOND):
        super().__init__()
        self.atom_fea_len = atom_fea_len
        self.relation = relation
        self.fc_full = nn.Linear(2 * atom_fea_len + nbr_fea_len, 2 * atom_fea_len)
        self.bn1 = nn.BatchNorm1d(2 * atom_fea_len)
        self.bn2 = nn.BatchNorm1d(atom_fea_len)

    def edge_map(self) -> tuple[torch.Tensor, ...]:
        """``(W_center, W_neighbor, W_edge, bias)`` of ``W [v_i, v_j, u_ij] + b``, shapes
        ``(2F, F)``, ``(2F, F)``, ``(2F, G)``, ``(2F,)``. In eval mode ``bn1`` (then a fixed
        affine map) is folded in: the same function without a pass over every edge."""
        weight, bias = self.fc_full.weight, self.fc_full.bias
        if not self.training:
            norm = self.bn1
            scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)  # (2F,)
            weight = weight * scale[:, None]
            bias = (bias - norm.running_mean) * scale + norm.bias
        width = self.atom_fea_len
        return weight[:, :width], weight[:, width : 2 * width], weight[:, 2 * width :], bias

    def gated_edges(
        self, graph, node_fea: torch.Tensor, edge_fea: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The gate and the core, ``(n_edges, F)`` each: the two halves of the batch-normed
        ``W [v_i, v_j, u_ij] + b`` of every edge ``j -> i``, before the gate is applied
        (``cgcnn-angle`` also updates its bond features from them).

        Node terms are computed per node and gathered to the edges with ``index_select``
        rather than DGL's ``apply_edges(u_add_v)`` (the same sums bit for bit; on DGL 1.1.3's
        CPU kernels about 3x faster forward, 2x forward plus backward). In eval mode each half
        is built on its own, contiguous, with the bias added per node and the edge term
        accumulated in place: sigmoid and softplus on a column half of an ``(n_edges, 2F)``
        tensor run 2-3x slower. Timed by hand on a cgcnn-angle line graph of 95,762 edges,
        one thread; the end-to-end effect is in docs/benchmarks.md, issue 17."""
        center_weight, neighbor_weight, edge_weight, bias = self.edge_map()
        senders, receivers = graph.edges(etype=self.relation)  # (e,), (e,)
        if self.training:
            center = node_fea @ center_weight.T  # (n, 2F), term of the receiving node i
            neighbor = node_fea @ neighbor_weight.T  # (n, 2F), term of the sender j
            edge = torch.addmm(bias, edge_fea, edge_weight.T)  # (e, 2F)
            linear = edge_sums(center, neighbor, senders, receivers)
            return self.bn1(linear + edge).chunk(2, dim=1)
        halves = []
        for rows in (slice(0, self.atom_fea_len), slice(self.atom_fea_len, None)):
            center = torch.addmm(bias[rows], node_fea, center_weight[rows].T)  # (n, F)
            neighbor = node_fea @ neighbor_weight[rows].T  # (n, F)
            half = edge_sums(center, neighbor, senders, receivers)
            halves.append(half.addmm_(edge_fea, edge_weight[rows].T))  # (e, F)
        return halves[0], halves[1]

    def aggregate(
        self, graph, node_fea: torch.Tensor, gated: tuple[torch.Tensor, torch.Tensor]
    ) -> torch.Tensor:
        """Gate the edges (gate and core ``(n_edges, F)`` from :meth:`gated_edges`), sum them
        into their receiving nodes, add the residual: ``(n_nodes, F)``."""
        import dgl.function as fn

        gate, core = gated
        if torch.is_grad_enabled():
            message = torch.sigmoid(gate) * F.softplus(core)
        else:  # one (n_edges, F) temporary fewer
            message = torch.sigmoid(gate).mul_(F.softplus(core))
        with graph.local_scope():
            graph.edges[self.relation].data["message"] = message
            graph.update_all(fn.copy_e("message", "m"), fn.sum("m", "summed"), etype=self.relation)
            summed = graph.nodes[self.relation[0]].data["summed"]
        return F.softplus(node_fea + self.bn2(summed))

    def forward(self, graph, node_fea: torch.Tensor, edge_fea: torch.Tensor) -> torch.Tensor:
        return self.aggregate(graph, node_fea, self.gated_edges(graph, node_fea, edge_fea))


def mean_pool(graph, atom_fea: torch.Tensor) -> torch.Tensor:
    """Mean of ``(N, F)`` atom features over each crystal of the batch -> ``(B, F)``."""
    import dgl

    with graph.local_scope():
        graph.nodes[keys.ATOM].data["pooled"] = atom_fea
        return dgl.readout_nodes(graph, "pooled", op="mean", ntype=keys.ATOM)


@register_model(
    "cgcnn",
    config=CGCNNConfig,
    description="""Crystal Graph Convolutional Neural Network: element one-hot features, Gaussian
    expanded neighbour distances, gated graph convolutions with batch norm and residual softplus,
    mean pooling and a softplus MLP head. The baseline every other variant is compared with.""",
    paper="T. Xie and J. C. Grossman, Phys. Rev. Lett. 120, 145301 (2018)",
    graph_parts=("bond",),
)
class CGCNN(nn.Module):
    """CGCNN; ``forward(graph)`` maps a batch of ``B`` crystals to ``(B, n_outputs)``
    (normalised targets; the target transform lives with the saved model)."""

    def __init__(self, config: CGCNNConfig, element_features: torch.Tensor, n_outputs: int = 1):
        super().__init__()
        self.config = config
        self.n_outputs = n_outputs
        self.elements = ElementFeatures(element_features)
        self.expansion = GaussianExpansion(
            config.gaussian_dmin, config.gaussian_dmax, config.gaussian_step
        )
        width = config.atom_fea_len
        self.embedding = nn.Linear(element_features.shape[1], width)
        self.convs = nn.ModuleList(
            ConvLayer(width, self.bond_feature_size(), keys.BOND) for _ in range(config.n_conv)
        )
        self.heads = Heads(
            self.crystal_feature_size(),
            config.h_fea_len,
            config.n_h,
            n_outputs,
            config.dropout,
            config.per_target_heads,
        )
        self.loss_weights = LossWeights(n_outputs, config.loss_weighting, config.loss_weights)

    def bond_feature_size(self) -> int:
        """Width of the bond features the atom convolutions read."""
        return self.expansion.size

    def crystal_feature_size(self) -> int:
        """Width ``D`` of :meth:`encode`'s output."""
        return self.config.atom_fea_len

    def embed_atoms(self, graph) -> torch.Tensor:
        """``(N, F)`` embedded element features."""
        return self.embedding(self.elements(graph.nodes[keys.ATOM].data[keys.ATOMIC_NUMBER]))

    def encode(self, graph) -> torch.Tensor:
        """Crystal features ``(B, D)``: embedding, convolutions, mean pooling."""
        atom_fea = self.embed_atoms(graph)
        bond_fea = self.expansion(graph.edges[keys.BOND].data[keys.DISTANCE])
        for conv in self.convs:
            atom_fea = conv(graph, atom_fea, bond_fea)
        return mean_pool(graph, atom_fea)

    def forward(self, graph) -> torch.Tensor:
        return self.heads(self.encode(graph))

    def combine_losses(self, losses: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """Per-target losses ``(T,)`` (and which targets the batch holds) -> one loss."""
        return self.loss_weights(losses, present)
