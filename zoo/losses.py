"""Training losses: each target's loss over the crystals that have it, and the backward pass
that takes the targets' gradients to the model (plain, or with gradient surgery)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def per_target_losses(
    pred: torch.Tensor, true: torch.Tensor, kind: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Loss of each target over the entries of ``(B, T)`` that have it (NaN = missing).

    Returns the losses ``(T,)`` (0 for a target absent from the batch) and which targets are
    present, bool ``(T,)``.
    """
    losses = []
    present = ~torch.isnan(true)
    for column in range(true.shape[1]):
        mask = present[:, column]
        if not mask.any():
            losses.append(pred.new_zeros(()))
            continue
        p, t = pred[mask, column], true[mask, column]
        if kind == "mse":
            losses.append(F.mse_loss(p, t))
        elif kind == "l1":
            losses.append(F.l1_loss(p, t))
        else:
            losses.append(F.huber_loss(p, t, delta=1.0))
    return torch.stack(losses), present.any(dim=0).float()


def backward_multitask(model, graph, truth: torch.Tensor, kind: str, task_gradients: str):
    """Forward and backward pass of one batch; returns the predictions ``(B, T)`` and the
    combined loss (a scalar). ``task_gradients`` is ``sum`` (backpropagate the weighted loss)
    or ``pcgrad`` (:func:`pcgrad_backward`; with one target the two are the same)."""
    if task_gradients == "pcgrad" and truth.shape[1] > 1:
        return pcgrad_backward(model, graph, truth, kind)
    pred = model(graph)
    loss = model.combine_losses(*per_target_losses(pred, truth, kind))
    loss.backward()
    return pred, loss


def pcgrad_backward(model, graph, truth: torch.Tensor, kind: str):
    """Backward pass with gradient surgery on the pooled crystal features ``(B, D)``.

    Each target's weighted loss gives a gradient ``(B, D)`` on the features of ``model.encode``;
    for every crystal whose rows of two targets point against each other (negative dot
    product), each row loses its component along the other's (PCGrad: Yu et al., NeurIPS 2020),
    and the trunk is backpropagated once with the sum. Taking the gradients on the shared
    features rather than on the trunk's weights (as Sener and Koltun's MGDA-UB does, NeurIPS
    2018) costs one extra pass through the heads only. Heads and loss weights get their
    ordinary gradients. Returns the predictions ``(B, T)`` and the combined loss.
    """
    crystal = model.encode(graph)
    features = crystal.detach().requires_grad_()
    pred = model.heads(features)
    losses, present = per_target_losses(pred, truth, kind)
    loss = model.combine_losses(losses, present)
    alone = torch.eye(len(losses), dtype=present.dtype)
    rows = []
    for target in range(len(losses)):
        term = model.combine_losses(losses, present * alone[target])
        (gradient,) = torch.autograd.grad(term, features, retain_graph=True, allow_unused=True)
        rows.append(torch.zeros_like(features) if gradient is None else gradient)
    loss.backward()
    crystal.backward(torch.stack(project_conflicts(rows)).sum(dim=0))
    return pred, loss


def project_conflicts(rows: list[torch.Tensor]) -> list[torch.Tensor]:
    """PCGrad per crystal: each target's gradient ``(B, D)`` minus, for every other target and
    crystal where the two rows conflict, its projection on the other's row. Rows of zeros (a
    target the crystal lacks) conflict with nothing."""
    projected = []
    for target, gradient in enumerate(rows):
        result = gradient.clone()
        for other, reference in enumerate(rows):
            if other == target:
                continue
            dot = (result * reference).sum(dim=1, keepdim=True)
            norm = (reference * reference).sum(dim=1, keepdim=True)
            conflict = (dot < 0) & (norm > 0)
            result = result - torch.where(conflict, dot / norm.clamp_min(1e-30), 0.0) * reference
        projected.append(result)
    return projected
