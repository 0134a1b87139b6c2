"""CGCNN variants on the same heterograph: multitask heads, bond angles, a global crystal state.

Each variant declares the graph parts it reads; the builder adds exactly those parts.
Every variant also accepts the multitask options of :class:`models.cgcnn.CGCNNConfig`
(``per_target_heads``, ``loss_weighting``), so any of them trains on shear and bulk together.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from zoo import keys
from zoo.models.cgcnn import CGCNN, CGCNNConfig, ConvLayer, mean_pool
from zoo.models.layers import GaussianExpansion
from zoo.models.registry import register_model


class CGCNNMultitaskConfig(CGCNNConfig):
    """CGCNN with one head per target and learned loss weights by default."""

    per_target_heads: bool = True
    loss_weighting: Literal["fixed", "learned"] = "learned"


@register_model(
    "cgcnn-mt",
    config=CGCNNMultitaskConfig,
    description="""Multitask CGCNN: one shared CGCNN trunk, one softplus MLP head per target
    (shear and bulk together with --target shear,bulk), a masked loss so an entry with only one
    modulus still trains that head, and loss weights that are fixed or learned by homoscedastic
    uncertainty weighting. Predicts both moduli in one pass.""",
    paper="Xie & Grossman, PRL 120, 145301 (2018); Kendall, Gal & Cipolla, CVPR 2018",
    graph_parts=("bond",),
)
class CGCNNMultitask(CGCNN):
    """CGCNN with per-target heads (see :class:`CGCNNMultitaskConfig`)."""


class CGCNNAngleConfig(CGCNNConfig):
    """CGCNN with bond features updated on the bond-angle line graph."""

    bond_fea_len: int = Field(32, ge=1, description="hidden bond feature size")
    angle_step: float = Field(0.1, gt=0, description="spacing of Gaussians over cos(angle)")
    bond_updates: bool = Field(
        False,
        description="after each atom convolution but the last, also update every bond from its "
        "two atoms (ALIGNN's edge-gated update); otherwise bonds see only distances and angles",
    )


@register_model(
    "cgcnn-angle",
    config=CGCNNAngleConfig,
    description="""CGCNN with bond angles in the manner of ALIGNN: bonds become nodes of a line
    graph whose edges join two bonds of the same atom and carry the Gaussian-expanded cosine of
    their angle. Each layer first updates the bond features with a gated convolution on the
    line graph, then the atoms with a gated convolution that reads those bond features (and,
    with bond_updates, the bonds again from their two atoms). Angles
    are formed among the 6 nearest bonds of each atom (graph setting angle_neighbors) to keep
    the line graph affordable on a CPU.""",
    paper="K. Choudhary and B. DeCost, npj Comput. Mater. 7, 185 (2021) (ALIGNN)",
    graph_parts=("bond", "angle"),
)
class CGCNNAngle(CGCNN):
    def __init__(self, config: CGCNNAngleConfig, element_features, n_outputs: int = 1):
        super().__init__(config, element_features, n_outputs)
        self.angle_expansion = GaussianExpansion(-1.0, 1.0, config.angle_step)
        self.bond_embedding = nn.Linear(self.expansion.size, config.bond_fea_len)
        self.bond_convs = nn.ModuleList(
            ConvLayer(config.bond_fea_len, self.angle_expansion.size, keys.ANGLE)
            for _ in range(config.n_conv)
        )
        self.bond_updates = nn.ModuleList(
            nn.Sequential(
                nn.Linear(2 * config.atom_fea_len, config.bond_fea_len),
                nn.BatchNorm1d(config.bond_fea_len),
            )
            for _ in range(config.n_conv - 1 if config.bond_updates else 0)
        )

    def bond_feature_size(self) -> int:
        return self.config.bond_fea_len

    def encode(self, graph) -> torch.Tensor:
        return mean_pool(graph, self.angle_layers(graph))

    def angle_layers(self, graph, after_layer=None) -> torch.Tensor:
        """Atom features ``(N, F)`` after the convolutions on both graphs. ``after_layer(layer,
        atom_fea)``, if given, maps the ``(N, F)`` atom features after each layer's atom
        convolution (``cgcnn-angle-global`` exchanges its crystal state there)."""
        import dgl.function as fn

        atom_fea = self.embed_atoms(graph)
        bond_fea = self.bond_embedding(self.expansion(graph.edges[keys.BOND].data[keys.DISTANCE]))
        vectors = graph.edges[keys.BOND].data[keys.BOND_VECTOR]  # (E, 3)
        with graph.local_scope():
            graph.nodes[keys.BOND_NODE].data["unit"] = F.normalize(vectors, dim=1)
            graph.apply_edges(fn.u_dot_v("unit", "unit", "cos"), etype=keys.ANGLE)
            cosine = graph.edges[keys.ANGLE].data["cos"].squeeze(1).clamp(-1.0, 1.0)  # (A,)
        angle_fea = self.angle_expansion(cosine)  # (A, K)
        layers = zip(self.bond_convs, self.convs, strict=True)
        for layer, (bond_conv, atom_conv) in enumerate(layers):
            bond_fea = bond_conv(graph, bond_fea, angle_fea)  # (E, G)
            gated = atom_conv.gated_edges(graph, atom_fea, bond_fea)  # 2 x (E, F)
            atom_fea = atom_conv.aggregate(graph, atom_fea, gated)  # (N, F)
            if after_layer is not None:
                atom_fea = after_layer(layer, atom_fea)
            if layer < len(self.bond_updates):
                update = self.bond_updates[layer](torch.cat(gated, dim=1))  # (E, G)
                bond_fea = F.softplus(bond_fea + update)
        return atom_fea


GLOBAL_INPUTS = ("volume_per_atom", "density")


class CGCNNGlobalConfig(CGCNNConfig):
    """CGCNN with a learned crystal state exchanged with the atoms after every convolution."""

    global_fea_len: int = Field(32, ge=1, description="size of the crystal state")
    global_inputs: tuple[str, ...] = Field(
        GLOBAL_INPUTS, description=f"crystal descriptors that start the state: {GLOBAL_INPUTS}"
    )


AMU_PER_CUBIC_ANGSTROM_IN_G_PER_CM3 = 1.66053906660
"""1 atomic mass unit per cubic angstrom, in g/cm^3."""


class GlobalStateMixin:
    """The crystal state of ``cgcnn-global``, for any variant whose config has the fields of
    :class:`CGCNNGlobalConfig` (list the mixin before the variant's model class): built after
    the variant's own layers, started by :meth:`start_state` and exchanged with the atoms after
    a convolution by :meth:`exchange_state`."""

    def __init__(self, config: CGCNNGlobalConfig, element_features, n_outputs: int = 1):
        super().__init__(config, element_features, n_outputs)
        unknown = set(config.global_inputs) - set(GLOBAL_INPUTS)
        if unknown:
            raise ValueError(f"unknown global inputs {sorted(unknown)}; known: {GLOBAL_INPUTS}")
        from ase.data import atomic_masses

        self.register_buffer(
            "masses", torch.tensor(atomic_masses[: len(element_features)], dtype=torch.float32)
        )
        width, state = config.atom_fea_len, config.global_fea_len
        if config.global_inputs:
            self.state_input = nn.Linear(len(config.global_inputs), state)
        else:
            self.state_start = nn.Parameter(torch.zeros(state))
        self.state_to_atoms = nn.ModuleList(nn.Linear(state, width) for _ in range(config.n_conv))
        self.state_updates = nn.ModuleList(
            nn.Linear(state + width, state) for _ in range(config.n_conv)
        )

    def crystal_feature_size(self) -> int:
        return self.config.atom_fea_len + self.config.global_fea_len

    def global_inputs(self, graph) -> torch.Tensor:
        """``(B, len(global_inputs))``: log volume per atom (A^3) and log density (g/cm^3)."""
        import dgl

        volume = graph.nodes[keys.CRYSTAL].data[keys.VOLUME]  # (B,)
        atoms = graph.batch_num_nodes(keys.ATOM).to(volume.dtype)  # (B,)
        with graph.local_scope():
            numbers = graph.nodes[keys.ATOM].data[keys.ATOMIC_NUMBER]
            graph.nodes[keys.ATOM].data["mass"] = self.masses[numbers]
            mass = dgl.readout_nodes(graph, "mass", op="sum", ntype=keys.ATOM)  # (B,)
        values = {
            "volume_per_atom": torch.log(volume / atoms),
            "density": torch.log(mass / volume * AMU_PER_CUBIC_ANGSTROM_IN_G_PER_CM3),
        }
        return torch.stack([values[name] for name in self.config.global_inputs], dim=1)

    def start_state(self, graph) -> torch.Tensor:
        """``(B, S)``: the state before the first convolution."""
        if self.config.global_inputs:
            return F.softplus(self.state_input(self.global_inputs(graph)))
        return self.state_start.expand(graph.num_nodes(keys.CRYSTAL), -1)

    def exchange_state(
        self, graph, layer: int, atom_fea: torch.Tensor, state: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """After convolution ``layer``: every atom ``(N, F)`` receives its crystal's state
        ``(B, S)``, then the state is updated from the mean of its atoms. Returns both."""
        import dgl.function as fn

        with graph.local_scope():
            graph.nodes[keys.CRYSTAL].data["push"] = self.state_to_atoms[layer](state)
            graph.update_all(
                fn.copy_u("push", "m"), fn.sum("m", "pushed"), etype=keys.CRYSTAL_HAS_ATOM
            )
            atom_fea = atom_fea + graph.nodes[keys.ATOM].data["pushed"]
            graph.nodes[keys.ATOM].data["h"] = atom_fea
            graph.update_all(
                fn.copy_u("h", "m"), fn.mean("m", "pooled"), etype=keys.ATOM_IN_CRYSTAL
            )
            pooled = graph.nodes[keys.CRYSTAL].data["pooled"]
        update = self.state_updates[layer](torch.cat([state, pooled], dim=1))
        return atom_fea, F.softplus(state + update)


@register_model(
    "cgcnn-global",
    config=CGCNNGlobalConfig,
    description="""CGCNN with a global crystal state in the manner of MEGNet: a crystal node
    joined to its atoms, (atom, in, crystal) and (crystal, has, atom), holds a learned state
    started from optional global inputs (log volume per atom, log density). After every
    convolution the state is updated from the mean of the atoms and fed back to every atom; the
    head reads the pooled atoms and the state together.""",
    paper="C. Chen, W. Ye, Y. Zuo, C. Zheng and S. P. Ong, Chem. Mater. 31, 3564 (2019) (MEGNet)",
    graph_parts=("bond", "crystal"),
)
class CGCNNGlobal(GlobalStateMixin, CGCNN):
    def encode(self, graph) -> torch.Tensor:
        atom_fea = self.embed_atoms(graph)
        bond_fea = self.expansion(graph.edges[keys.BOND].data[keys.DISTANCE])
        state = self.start_state(graph)
        for layer, conv in enumerate(self.convs):
            atom_fea = conv(graph, atom_fea, bond_fea)
            atom_fea, state = self.exchange_state(graph, layer, atom_fea, state)
        return torch.cat([mean_pool(graph, atom_fea), state], dim=1)


class CGCNNAngleGlobalConfig(CGCNNAngleConfig, CGCNNGlobalConfig):
    """``cgcnn-angle`` with the crystal state of ``cgcnn-global``."""


@register_model(
    "cgcnn-angle-global",
    config=CGCNNAngleGlobalConfig,
    description="""Both additions at once: the bond-angle line graph of cgcnn-angle and the
    crystal state of cgcnn-global. Each layer updates the bonds on the line graph, the atoms
    from their bonds, then exchanges the crystal state with the atoms; the head reads the
    pooled atoms and the state.""",
    paper="K. Choudhary and B. DeCost, npj Comput. Mater. 7, 185 (2021) (ALIGNN); C. Chen et "
    "al., Chem. Mater. 31, 3564 (2019) (MEGNet)",
    graph_parts=("bond", "angle", "crystal"),
)
class CGCNNAngleGlobal(GlobalStateMixin, CGCNNAngle):
    def encode(self, graph) -> torch.Tensor:
        state = self.start_state(graph)  # (B, S)

        def exchange(layer: int, atom_fea: torch.Tensor) -> torch.Tensor:
            nonlocal state
            atom_fea, state = self.exchange_state(graph, layer, atom_fea, state)
            return atom_fea

        atom_fea = self.angle_layers(graph, exchange)  # (N, F)
        return torch.cat([mean_pool(graph, atom_fea), state], dim=1)
