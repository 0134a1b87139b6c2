"""How crystal graphs are built: the settings that are part of every cache key and every
saved model."""

from __future__ import annotations

import json

from pydantic import BaseModel, ConfigDict, Field, field_validator

from zoo import keys

BUILDER_VERSION = 4
"""Bumped whenever the builder's output for the same input and settings changes (3: atoms
closer than :data:`MIN_DISTANCE` are rejected; 4: neighbours tied at the ``max_neighbors`` cut
are chosen by periodic image after index, not in pymatgen's enumeration order)."""


class GraphSettings(BaseModel):
    """How crystal graphs are built. Part of every cache key and every saved model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    radius: float = Field(8.0, gt=0, description="neighbour search radius in angstrom")
    max_neighbors: int | None = Field(
        12, ge=1, description="keep this many nearest neighbours per atom (None: all in radius)"
    )
    parts: tuple[str, ...] = Field(("bond",), description="graph parts to build")
    angle_neighbors: int = Field(
        6,
        ge=2,
        description="angle part: pairs among this many nearest bonds of each atom "
        "(a degenerate shell at the cut is kept whole)",
    )

    @field_validator("parts")
    @classmethod
    def _known_parts(cls, parts: tuple[str, ...]) -> tuple[str, ...]:
        unknown = set(parts) - set(keys.GRAPH_PARTS)
        if unknown:
            raise ValueError(f"unknown graph parts {sorted(unknown)}; known: {keys.GRAPH_PARTS}")
        if "bond" not in parts:
            raise ValueError("every graph needs the 'bond' part")
        return tuple(sorted(set(parts)))

    def key(self) -> str:
        """Stable text of the settings, for cache keys."""
        return json.dumps({"builder": BUILDER_VERSION, **self.model_dump()}, sort_keys=True)
