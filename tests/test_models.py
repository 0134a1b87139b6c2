"""Contract tests, parametrised over every registered variant (``list_models()``)."""

import numpy as np
import pytest
import torch
from pymatgen.core import Lattice, Structure

from tests.conftest import rocksalt
from zoo.bundle import bundle_from_model, load_bundle
from zoo.elements import generate_element_table
from zoo.graphs import GraphSettings, build_store
from zoo.losses import per_target_losses
from zoo.models import count_parameters, create_model, get_model_entry, list_models, register_model
from zoo.models.cgcnn import ConvLayer
from zoo.predictor import predict_structures
from zoo.transforms import TargetTransform


def settings_for(name):
    return GraphSettings(parts=get_model_entry(name).graph_parts)


def predict(name, model, structures, grad=False):
    store, _ = build_store(
        [str(i) for i in range(len(structures))],
        structures,
        settings_for(name),
        cache_dir=False,
        progress=False,
    )
    with torch.set_grad_enabled(grad):
        return model(store.batch(range(len(structures))))


# every registered variant with its defaults, and the options that change its architecture
CONFIGURATIONS = [(name, {}) for name in list_models()] + [("cgcnn-angle", {"bond_updates": True})]


@pytest.fixture(
    params=CONFIGURATIONS,
    ids=[name + "".join(f"-{key}" for key in config) for name, config in CONFIGURATIONS],
)
def variant(request):
    name, config = request.param
    torch.manual_seed(0)
    model = create_model(name, n_outputs=2, **config)
    # non-trivial batch-norm statistics, so eval mode is not the identity
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm1d):
            module.running_mean.normal_(0, 0.3)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.normal_(0, 0.3)
    return name, model.eval()


def test_registry_basics():
    assert {"cgcnn", "cgcnn-mt", "cgcnn-angle", "cgcnn-global"} <= set(list_models())
    assert list_models("cgcnn-a*") == ["cgcnn-angle", "cgcnn-angle-global"]
    assert list_models("nothing*") == []
    entry = get_model_entry("cgcnn")
    assert entry.graph_parts == ("bond",) and "Xie" in entry.paper
    assert get_model_entry("cgcnn-angle").graph_parts == ("bond", "angle")
    assert get_model_entry("cgcnn-global").graph_parts == ("bond", "crystal")
    assert get_model_entry("cgcnn-angle-global").graph_parts == ("bond", "angle", "crystal")
    with pytest.raises(ValueError, match="already registered"):
        register_model("cgcnn", config=entry.config_class, description="x", paper="y")(object)
    with pytest.raises(ValueError, match="bogus"):
        create_model("cgcnn", bogus=1)
    with pytest.raises(KeyError, match="no model named"):
        create_model("nonexistent")


def test_forward_on_batch_of_different_sizes(variant, demo):
    name, model = variant
    structures = [demo.structures[0], rocksalt(), demo.structures[5] * (1, 1, 2)]
    out = predict(name, model, structures)
    assert out.shape == (3, 2)
    assert torch.isfinite(out).all()
    singles = torch.cat([predict(name, model, [s]) for s in structures])
    assert torch.allclose(out, singles, atol=1e-5)  # crystals in a batch do not interact


def test_every_parameter_gets_a_gradient(variant, demo):
    name, model = variant
    model.train()
    store, _ = build_store(
        demo.ids[:8], demo.structures[:8], settings_for(name), cache_dir=False, progress=False
    )
    truth = torch.randn(8, 2)
    pred = model(store.batch(range(8)))
    model.combine_losses(*per_target_losses(pred, truth, "mse")).backward()
    for parameter_name, parameter in model.named_parameters():
        assert parameter.grad is not None, parameter_name
        assert parameter.grad.abs().sum() > 0, parameter_name
    assert count_parameters(model) > 0


def textbook_gated_edges(self, graph, node_fea, edge_fea):
    """CGCNN's edge map as written in the paper: ``BN1(W [v_i, v_j, u_ij] + b)`` on the
    concatenation, one edge at a time (no split matrix product, no folded batch norm)."""
    src, dst = graph.edges(etype=self.relation)
    linear = self.bn1(self.fc_full(torch.cat([node_fea[dst], node_fea[src], edge_fea], dim=1)))
    return linear.chunk(2, dim=1)


def test_inference_path_is_the_textbook_function(variant, demo, monkeypatch):
    """In eval mode without gradients the convolutions fold bn1 into the linear map, build
    the gate and core halves apart and gate in place; the outputs are those of the textbook
    form (with gradients on)."""
    name, model = variant
    structures = [rocksalt(), *demo.structures[:6]]
    fast = predict(name, model, structures)
    monkeypatch.setattr(ConvLayer, "gated_edges", textbook_gated_edges)
    reference = predict(name, model, structures, grad=True)
    assert reference.requires_grad
    assert torch.allclose(fast, reference.detach(), atol=1e-5)


def test_training_path_is_the_textbook_function(variant, demo):
    """In training mode (batch statistics, gradients) every convolution's gate and core are
    the textbook form's, values and gradients alike."""
    name, model = variant
    structures = [rocksalt(), *demo.structures[:6]]
    ids = [str(i) for i in range(len(structures))]
    store, _ = build_store(ids, structures, settings_for(name), cache_dir=False, progress=False)
    graph = store.batch(range(len(structures)))
    model.train()
    convolutions = [m for m in model.modules() if isinstance(m, ConvLayer)]
    for conv in convolutions:
        torch.manual_seed(3)
        node_fea = torch.randn(graph.num_nodes(conv.relation[0]), conv.atom_fea_len)
        node_fea.requires_grad_()
        edge_width = conv.fc_full.in_features - 2 * conv.atom_fea_len
        edge_fea = torch.randn(graph.num_edges(conv.relation), edge_width)
        fast = torch.cat(conv.gated_edges(graph, node_fea, edge_fea), dim=1)
        (fast_grad,) = torch.autograd.grad(fast.square().sum(), node_fea)
        textbook = torch.cat(textbook_gated_edges(conv, graph, node_fea, edge_fea), dim=1)
        (textbook_grad,) = torch.autograd.grad(textbook.square().sum(), node_fea)
        assert torch.allclose(fast, textbook, atol=1e-5)
        assert torch.allclose(fast_grad, textbook_grad, rtol=1e-4, atol=1e-4)
    assert convolutions


def rotation(seed=1):
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    return q * np.sign(np.linalg.det(q))


def test_invariances(variant, demo):
    name, model = variant
    base = [rocksalt(), *demo.structures[:5]]
    reference = predict(name, model, base)
    rotated = [
        Structure(Lattice(s.lattice.matrix @ rotation().T), s.species, s.frac_coords) for s in base
    ]
    translated = [Structure(s.lattice, s.species, s.frac_coords + [0.13, 0.71, 0.4]) for s in base]
    permuted = []
    for s in base:
        order = np.random.default_rng(2).permutation(len(s))
        permuted.append(Structure(s.lattice, [s.species[i] for i in order], s.frac_coords[order]))
    supercells = [s * (2, 2, 2) for s in base]
    for variant_structures in (rotated, translated, permuted, supercells):
        assert torch.allclose(predict(name, model, variant_structures), reference, atol=1e-5)


def test_save_load_gives_identical_outputs(variant, demo, tmp_path):
    name, model = variant
    transform = TargetTransform(targets=("shear", "bulk"), mean=(1.6, 2.0), std=(0.3, 0.35))
    bundle = bundle_from_model(model, name, settings_for(name), transform, generate_element_table())
    again = load_bundle(bundle.save(tmp_path / f"{name}.zoo.pt"))
    assert again.model_name == name and again.graph_settings.parts == settings_for(name).parts
    before = predict_structures(bundle, demo.ids[:10], demo.structures[:10])
    after = predict_structures(again, demo.ids[:10], demo.structures[:10])
    assert before.equals(after)
    assert after["bulk_gpa"].notna().all() and after["shear_gpa"].notna().all()


@pytest.mark.parametrize("name", list_models())
def test_every_variant_takes_one_head_per_target(name, demo, tmp_path):
    torch.manual_seed(0)
    model = create_model(name, n_outputs=2, per_target_heads=True, loss_weighting="learned")
    assert len(model.heads.heads) == 2
    structures = [rocksalt(), *demo.structures[:3]]
    store, _ = build_store(
        ["0", "1", "2", "3"], structures, settings_for(name), cache_dir=False, progress=False
    )
    out = model.train()(store.batch(range(4)))
    assert out.shape == (4, 2) and torch.isfinite(out).all()
    out[:, 0].sum().backward()  # the shear output only
    shear_head, bulk_head = model.heads.heads
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in shear_head.parameters())
    # heads share only the trunk (autograd hands the bulk head zeros through the concatenation)
    assert all(p.grad is None or not p.grad.any() for p in bulk_head.parameters())
    trunk = [p for n, p in model.named_parameters() if not n.startswith(("heads.", "loss_"))]
    assert all(p.grad is not None for p in trunk)
    transform = TargetTransform(targets=("shear", "bulk"), mean=(1.6, 2.0), std=(0.3, 0.35))
    bundle = bundle_from_model(
        model.eval(), name, settings_for(name), transform, generate_element_table()
    )
    again = load_bundle(bundle.save(tmp_path / "heads.zoo.pt"))
    assert again.model_config["per_target_heads"] is True
    before = predict_structures(bundle, demo.ids[:6], demo.structures[:6])
    assert before.equals(predict_structures(again, demo.ids[:6], demo.structures[:6]))


def test_masked_loss_ignores_missing_targets():
    pred = torch.tensor([[0.0, 1.0], [2.0, 5.0], [4.0, -1.0]], requires_grad=True)
    truth = torch.tensor([[1.0, float("nan")], [2.0, 3.0], [float("nan"), float("nan")]])
    losses, present = per_target_losses(pred, truth, "l1")
    assert losses.tolist() == [0.5, 2.0]  # shear over rows 0-1, bulk over row 1 only
    assert present.tolist() == [1.0, 1.0]
    losses.sum().backward()
    assert pred.grad[2].abs().sum() == 0  # a row without targets teaches nothing
    assert pred.grad[0, 1] == 0  # nor does a missing bulk value
    only_shear = torch.tensor([[1.0, float("nan")], [3.0, float("nan")]])
    losses, present = per_target_losses(pred[:2], only_shear, "mse")
    assert present.tolist() == [1.0, 0.0] and losses[1] == 0


def test_learned_loss_weights_follow_homoscedastic_weighting():
    model = create_model("cgcnn-mt", n_outputs=2)
    with torch.no_grad():
        model.loss_weights.log_variance.copy_(torch.tensor([0.5, -1.0]))
    losses = torch.tensor([2.0, 3.0])
    expected = np.exp(-0.5) * 2.0 + 0.5 + np.exp(1.0) * 3.0 - 1.0
    assert model.combine_losses(losses, torch.ones(2)).item() == pytest.approx(expected)
    assert model.combine_losses(losses, torch.tensor([1.0, 0.0])).item() == pytest.approx(
        np.exp(-0.5) * 2.0 + 0.5
    )
    fixed = create_model("cgcnn", n_outputs=2, loss_weights=(1.0, 0.25))
    assert fixed.combine_losses(losses, torch.ones(2)).item() == pytest.approx(2.75)


def test_zoo_models_lists_every_variant(capsys):
    from zoo.cli import main

    assert main(["models"]) == 0
    printed = capsys.readouterr().out
    for name in list_models():
        entry = get_model_entry(name)
        assert f"{name}  (" in printed
        assert f"graph parts: {', '.join(entry.graph_parts)}" in printed
        assert entry.paper in printed


def test_gaussian_expansion_is_the_formula_floored_at_exp_minus_80():
    """CGCNN's 41 Gaussians (0..8 angstrom, step 0.2) of a few distances: the formula to
    float32 precision; terms far from their centre are exp(-80), not subnormal or zero."""
    from zoo.models.layers import GaussianExpansion

    expansion = GaussianExpansion(0.0, 8.0, 0.2)
    distance = torch.tensor([0.0, 1.37, 2.5, 7.99])
    values = expansion(distance).double()
    exact = torch.exp(-((distance.double()[:, None] - expansion.centers.double()) ** 2) / 0.04)
    assert expansion.size == 41 and values.shape == (4, 41)
    assert torch.allclose(values, exact.clamp(min=np.exp(-80.0)), rtol=1e-5, atol=0)
    assert values.min() == pytest.approx(np.exp(-80.0), rel=1e-5)
