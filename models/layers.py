"""Building blocks shared by the variants: element lookup, distance expansion."""

from __future__ import annotations

import torch
from torch import nn

from zoo.elements import ElementTable


def element_feature_tensor(table: ElementTable) -> torch.Tensor:
    """float32 ``(MAX_Z + 1, F)``, indexed by atomic number; rows of unknown elements are NaN."""
    dense, known = table.dense()
    features = torch.from_numpy(dense)
    features[torch.from_numpy(~known)] = float("nan")
    return features


class ElementFeatures(nn.Module):
    """Fixed element feature lookup: atomic numbers ``(N,)`` -> features ``(N, F)``.

    The table is a buffer, so it is saved with the model's weights.
    """

    def __init__(self, table: torch.Tensor):
        super().__init__()
        self.register_buffer("table", table.clone().float())

    @property
    def known(self) -> torch.Tensor:
        """bool ``(MAX_Z + 1,)``: which atomic numbers have features."""
        return ~torch.isnan(self.table).any(dim=1)

    def forward(self, atomic_numbers: torch.Tensor) -> torch.Tensor:
        features = self.table[atomic_numbers]
        if torch.isnan(features).any():
            missing = sorted(set(atomic_numbers[torch.isnan(features).any(1)].tolist()))
            raise ValueError(f"no element features for atomic numbers {missing}")
        return features


EXPONENT_FLOOR = -80.0
"""Gaussians are evaluated no lower than ``exp(-80)`` (2e-35, zero for every purpose): float32
``exp`` of a more negative number lands in the subnormal range or underflows, which the
vectorised CPU kernel handles 6-14x slower (measured: ``exp`` of 2 M numbers in [-400, 0],
17 ms; in [-80, 0], 1.2 ms). Most terms of an expansion are such numbers (a distance far from
a centre)."""


class GaussianExpansion(nn.Module):
    """Distances ``(E,)`` -> ``(E, K)`` Gaussians ``exp(-(d - mu_k)^2 / width^2)`` (each at
    least ``exp(EXPONENT_FLOOR)``).

    Centres ``mu_k`` run from ``dmin`` to ``dmax`` inclusive in steps of ``step`` (41 centres for
    CGCNN's 0, 0.2, ..., 8 angstrom); the width equals ``step`` unless given.
    """

    def __init__(self, dmin: float, dmax: float, step: float, width: float | None = None):
        super().__init__()
        count = int(round((dmax - dmin) / step)) + 1
        self.register_buffer("centers", dmin + step * torch.arange(count, dtype=torch.float32))
        self.width = float(width if width is not None else step)

    @property
    def size(self) -> int:
        return len(self.centers)

    def forward(self, distance: torch.Tensor) -> torch.Tensor:
        exponent = -((distance[:, None] - self.centers) ** 2) / self.width**2
        return torch.exp(exponent.clamp(min=EXPONENT_FLOOR))
