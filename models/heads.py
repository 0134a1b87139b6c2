"""Output heads and multitask loss weighting, shared by every variant."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Head(nn.Module):
    """CGCNN's head: ``softplus -> Linear(D, H) -> softplus``, ``n_h - 1`` more
    ``Linear(H, H) -> softplus``, dropout, ``Linear(H, n_out)``. ``(B, D) -> (B, n_out)``."""

    def __init__(self, in_dim: int, hidden: int, n_h: int, n_out: int, dropout: float):
        super().__init__()
        self.conv_to_fc = nn.Linear(in_dim, hidden)
        self.fcs = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(n_h - 1))
        self.dropout = nn.Dropout(dropout)
        self.fc_out = nn.Linear(hidden, n_out)

    def forward(self, crystal: torch.Tensor) -> torch.Tensor:
        hidden = F.softplus(self.conv_to_fc(F.softplus(crystal)))
        for fc in self.fcs:
            hidden = F.softplus(fc(hidden))
        return self.fc_out(self.dropout(hidden))


class Heads(nn.Module):
    """One head with ``T`` outputs (``per_target=False``, the original CGCNN) or one head per
    target (multitask). ``(B, D) -> (B, T)``."""

    def __init__(self, in_dim, hidden, n_h, n_targets, dropout, per_target: bool):
        super().__init__()
        count, width = (n_targets, 1) if per_target else (1, n_targets)
        self.heads = nn.ModuleList(Head(in_dim, hidden, n_h, width, dropout) for _ in range(count))

    def forward(self, crystal: torch.Tensor) -> torch.Tensor:
        return torch.cat([head(crystal) for head in self.heads], dim=1)


class LossWeights(nn.Module):
    """Combines per-target losses ``(T,)`` into one number.

    ``fixed``: ``sum_t w_t L_t``. ``learned``: homoscedastic uncertainty weighting (Kendall, Gal
    and Cipolla, CVPR 2018), ``sum_t exp(-s_t) L_t + s_t`` with a learned ``s_t`` per target.
    Targets absent from a batch (``present[t]`` False) contribute nothing.
    """

    def __init__(self, n_targets: int, mode: str, weights: tuple[float, ...] | None):
        super().__init__()
        if weights is not None and len(weights) != n_targets:
            raise ValueError(f"{len(weights)} loss weights for {n_targets} targets")
        self.mode = mode
        self.register_buffer(
            "weights", torch.tensor(weights if weights else [1.0] * n_targets, dtype=torch.float32)
        )
        if mode == "learned":
            self.log_variance = nn.Parameter(torch.zeros(n_targets))

    def forward(self, losses: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        if self.mode == "learned":
            terms = torch.exp(-self.log_variance) * losses + self.log_variance
        else:
            terms = self.weights * losses
        return (terms * present).sum()
