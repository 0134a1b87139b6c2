"""Target transform stored with every model: GPa <-> log10(GPa) <-> normalised."""

from __future__ import annotations

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict

from zoo.dataset import TARGETS, UNITS


class TargetTransform(BaseModel):
    """Per-target ``normalised = (log10(GPa) - mean) / std``; ``mean``/``std`` are fitted on the
    training split only.

    Attributes:
        targets: target names in output order (``T`` of them).
        mean, std: per target, in log10(GPa).
        units: units of the modulus (GPa).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    targets: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    units: str = UNITS

    @classmethod
    def fit(cls, targets: list[str], gpa: np.ndarray) -> TargetTransform:
        """Fit on float64 ``(n, T)`` moduli in GPa (NaN = missing, ignored)."""
        unknown = [t for t in targets if t not in TARGETS]
        if unknown:
            raise ValueError(f"unknown targets {unknown}; known: {', '.join(TARGETS)}")
        logs = np.log10(gpa)
        means, stds = [], []
        for column, name in enumerate(targets):
            values = logs[:, column][np.isfinite(logs[:, column])]
            if len(values) < 2:
                raise ValueError(f"too few training values for target {name!r} ({len(values)})")
            means.append(float(values.mean()))
            stds.append(float(values.std(ddof=1)) or 1.0)
        return cls(targets=tuple(targets), mean=tuple(means), std=tuple(stds))

    def _stats(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean = torch.tensor(self.mean, dtype=like.dtype, device=like.device)
        std = torch.tensor(self.std, dtype=like.dtype, device=like.device)
        return mean, std

    def normalise(self, gpa: torch.Tensor) -> torch.Tensor:
        """``(B, T)`` GPa -> normalised (NaN stays NaN)."""
        mean, std = self._stats(gpa)
        return (torch.log10(gpa) - mean) / std

    def to_log10(self, normalised: torch.Tensor) -> torch.Tensor:
        """``(B, T)`` model output -> log10(GPa)."""
        mean, std = self._stats(normalised)
        return normalised * std + mean

    def to_gpa(self, normalised: torch.Tensor) -> torch.Tensor:
        """``(B, T)`` model output -> GPa."""
        return 10.0 ** self.to_log10(normalised)
