"""Contract tests, parametrised over every registered variant."""

import numpy as np
import pytest
import torch
from pymatgen.core import Lattice, Structure

from models import count_parameters, create_model, get_model_entry, list_models, register_model
from tests.conftest import rocksalt
from zoo.graph_store import build_store
from zoo.graphs import GraphSettings


def predict(model, structures, settings=None):
    settings = settings or GraphSettings()
    store, _ = build_store(
        [str(i) for i in range(len(structures))],
        structures,
        settings,
        cache_dir=False,
        progress=False,
    )
    with torch.no_grad():
        return model(store.batch(range(len(structures))))


@pytest.fixture(params=list_models())
def model(request):
    torch.manual_seed(0)
    model = create_model(request.param, n_outputs=2)
    # non-trivial batch-norm statistics, so eval mode is not the identity
    model.train()
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm1d):
            module.running_mean.normal_(0, 0.3)
            module.running_var.uniform_(0.5, 2.0)
    return model.eval()


def test_registry_basics():
    assert "cgcnn" in list_models() and list_models("cg*") == ["cgcnn"]
    assert list_models("nothing*") == []
    entry = get_model_entry("cgcnn")
    assert entry.graph_parts == ("bond",) and "Xie" in entry.paper
    with pytest.raises(ValueError, match="already registered"):
        register_model("cgcnn", config=entry.config_class, description="x", paper="y")(object)
    with pytest.raises(ValueError, match="bogus"):
        create_model("cgcnn", bogus=1)
    with pytest.raises(KeyError, match="no model named"):
        create_model("nonexistent")


def test_forward_on_batch_of_different_sizes(model, demo):
    structures = [demo.structures[0], rocksalt(), demo.structures[5] * (1, 1, 2)]
    out = predict(model, structures)
    assert out.shape == (3, 2)
    assert torch.isfinite(out).all()
    singles = torch.cat([predict(model, [s]) for s in structures])
    assert torch.allclose(out, singles, atol=1e-5)  # crystals in a batch do not interact


def test_every_parameter_gets_a_gradient(model, demo):
    model.train()
    store, _ = build_store(
        demo.ids[:8], demo.structures[:8], GraphSettings(), cache_dir=False, progress=False
    )
    model(store.batch(range(8))).pow(2).sum().backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None, name
        assert parameter.grad.abs().sum() > 0, name
    assert count_parameters(model) > 0


def rotation(seed=1):
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    return q * np.sign(np.linalg.det(q))


def test_invariances(model, demo):
    base = [rocksalt(), *demo.structures[:5]]
    reference = predict(model, base)
    rotated = [
        Structure(Lattice(s.lattice.matrix @ rotation().T), s.species, s.frac_coords) for s in base
    ]
    translated = [Structure(s.lattice, s.species, s.frac_coords + [0.13, 0.71, 0.4]) for s in base]
    permuted = []
    for s in base:
        order = np.random.default_rng(2).permutation(len(s))
        permuted.append(Structure(s.lattice, [s.species[i] for i in order], s.frac_coords[order]))
    supercells = [s * (2, 2, 2) for s in base]
    for variant in (rotated, translated, permuted, supercells):
        assert torch.allclose(predict(model, variant), reference, atol=1e-5)
