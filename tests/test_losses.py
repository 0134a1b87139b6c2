"""The backward pass of multitask training: plain sum and PCGrad on the crystal features."""

import numpy as np
import pytest
import torch

from zoo.graphs import GraphSettings, build_store
from zoo.losses import backward_multitask, project_conflicts
from zoo.models import create_model


def test_project_conflicts_by_hand():
    # crystal 0: (1, 0) and (-1, 1) conflict (dot -1): the first loses -1/2 of (-1, 1) and
    # becomes (0.5, 0.5); the second loses -1/1 of (1, 0) and becomes (0, 1).
    # crystal 1: (1, 2) and (3, 0) agree, unchanged. crystal 2: the second target is missing
    # (a zero row), nothing is projected on it.
    shear = torch.tensor([[1.0, 0.0], [1.0, 2.0], [2.0, -1.0]])
    bulk = torch.tensor([[-1.0, 1.0], [3.0, 0.0], [0.0, 0.0]])
    first, second = project_conflicts([shear, bulk])
    assert torch.equal(first, torch.tensor([[0.5, 0.5], [1.0, 2.0], [2.0, -1.0]]))
    assert torch.equal(second, torch.tensor([[0.0, 1.0], [3.0, 0.0], [0.0, 0.0]]))


@pytest.fixture(scope="module")
def batch(demo):
    store, _ = build_store(
        demo.ids, demo.structures, GraphSettings(parts=("bond",)), cache_dir=False, progress=False
    )
    graph = store.batch(range(len(demo.ids)))
    moduli = np.stack([demo.targets["shear"], demo.targets["bulk"]], axis=1)
    truth = torch.tensor(np.log10(moduli), dtype=torch.float32)
    truth = (truth - truth.mean(0)) / truth.std(0)
    truth[1, 1] = float("nan")  # one crystal without a bulk modulus
    return graph, truth


def gradients(model, graph, truth, mode):
    """Every parameter's gradient and the gradient that reached the pooled features."""
    torch.manual_seed(0)
    model.zero_grad()
    reached = {}
    encode = model.encode

    def recording_encode(g):
        features = encode(g)
        features.register_hook(lambda grad: reached.setdefault("features", grad))
        return features

    model.encode = recording_encode
    try:
        backward_multitask(model, graph, truth, "l1", mode)
    finally:
        del model.encode
    return [p.grad.clone() for p in model.parameters()], reached["features"]


def test_pcgrad_equals_the_plain_backward_for_one_target(batch):
    graph, truth = batch
    torch.manual_seed(0)
    model = create_model("cgcnn", n_outputs=1)
    plain, _ = gradients(model, graph, truth[:, :1], "sum")
    surgery, _ = gradients(model, graph, truth[:, :1], "pcgrad")
    assert all(torch.equal(a, b) for a, b in zip(plain, surgery, strict=True))


def test_pcgrad_removes_conflicts_on_the_crystal_features(batch):
    graph, truth = batch
    torch.manual_seed(0)
    model = create_model("cgcnn-mt", n_outputs=2)
    plain, plain_features = gradients(model, graph, truth, "sum")
    surgery, surgery_features = gradients(model, graph, truth, "pcgrad")
    # the per-target gradients on the features, taken the same way the surgery takes them
    features = model.encode(graph).detach().requires_grad_()
    from zoo.losses import per_target_losses

    losses, present = per_target_losses(model.heads(features), truth, "l1")
    rows = [
        torch.autograd.grad(
            model.combine_losses(losses, present * torch.eye(2)[t]), features, retain_graph=True
        )[0]
        for t in range(2)
    ]
    conflicts = (rows[0] * rows[1]).sum(dim=1) < 0
    assert conflicts.any() and not conflicts.all()  # the test exercises both cases
    assert torch.allclose(plain_features, rows[0] + rows[1], atol=1e-6)
    # after surgery the trunk's gradient agrees with each target's own on every crystal
    for row in rows:
        assert ((surgery_features * row).sum(dim=1) >= -1e-7).all()
    # crystals without a conflict get the plain gradient, the others do not
    assert torch.allclose(surgery_features[~conflicts], plain_features[~conflicts], atol=1e-6)
    assert not torch.allclose(surgery_features[conflicts], plain_features[conflicts], atol=1e-4)
    # heads and loss weights are not part of the surgery: their gradients are the plain ones
    names = [name for name, _ in model.named_parameters()]
    for name, a, b in zip(names, plain, surgery, strict=True):
        if name.startswith(("heads.", "loss_weights.")):
            assert torch.allclose(a, b, atol=1e-6), name
