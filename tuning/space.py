"""Search spaces: readable YAML files, validated, turned into config overrides per trial.

A space file (see ``tuning/spaces/``) has a ``description``, ``fixed`` config keys that hold for
every trial, and ``params``: dotted config keys, each with a distribution::

    description: cgcnn on the shear modulus
    fixed:
      epochs: 150
    params:
      optim.lr: {type: float, low: 3.0e-4, high: 1.0e-2, log: true}
      batch_size: {type: categorical, choices: [32, 64, 128]}
      architecture.n_conv: {type: int, low: 2, high: 5}
      graph.radius: {type: float, low: 6.0, high: 8.0, step: 1.0}
      architecture.gaussian_dmax: {type: same_as, key: graph.radius}

``same_as`` copies another parameter's sampled value (the Gaussian centres must end within the
graph radius). Unknown fields are errors, and every key is checked against the training config
when the file is loaded (at the low and the high end of every range), so a typo fails before
the first trial.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

SPACES_DIR = Path(__file__).resolve().parent / "spaces"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _RangeParam(_Strict):
    """A numeric range ``[low, high]`` (``low < high``; a log range needs ``low > 0``)."""

    @model_validator(mode="after")
    def _ordered(self):
        if not self.low < self.high:
            raise ValueError(f"low {self.low} must be below high {self.high}")
        if self.log and self.low <= 0:
            raise ValueError("a log range needs low > 0")
        return self

    def ends(self) -> tuple:
        return self.low, self.high


class FloatParam(_RangeParam):
    type: Literal["float"]
    low: float
    high: float
    log: bool = False
    step: float | None = None

    def suggest(self, trial, name: str):
        return trial.suggest_float(name, self.low, self.high, log=self.log, step=self.step)


class IntParam(_RangeParam):
    type: Literal["int"]
    low: int
    high: int
    step: int = 1
    log: bool = False

    def suggest(self, trial, name: str):
        return trial.suggest_int(name, self.low, self.high, step=self.step, log=self.log)


class CategoricalParam(_Strict):
    """Choices are numbers, strings, booleans or lists of numbers (e.g. multitask loss weights;
    Optuna stores a list choice as its JSON text, :meth:`decode` turns it back)."""

    type: Literal["categorical"]
    choices: list[bool | int | float | str | None | list[float]] = Field(min_length=2)

    def _listed(self) -> bool:
        return any(isinstance(c, list) for c in self.choices)

    def suggest(self, trial, name: str):
        if self._listed():
            return self.decode(
                trial.suggest_categorical(name, [json.dumps(c) for c in self.choices])
            )
        return trial.suggest_categorical(name, self.choices)

    def decode(self, stored):
        return json.loads(stored) if self._listed() else stored

    def ends(self) -> tuple:
        return tuple(self.choices)


class SameAsParam(_Strict):
    type: Literal["same_as"]
    key: str


Param = Annotated[
    FloatParam | IntParam | CategoricalParam | SameAsParam, Field(discriminator="type")
]


class SearchSpace(_Strict):
    """A validated search space (see the module docstring)."""

    description: str
    fixed: dict[str, object] = Field(default_factory=dict)
    params: dict[str, Param] = Field(min_length=1)

    @model_validator(mode="after")
    def _references(self) -> SearchSpace:
        for name, param in self.params.items():
            if isinstance(param, SameAsParam):
                target = self.params.get(param.key)
                if target is None or isinstance(target, SameAsParam):
                    raise ValueError(f"{name}: same_as {param.key!r} is not a sampled parameter")
            if name in self.fixed:
                raise ValueError(f"{name} is both fixed and searched")
        return self

    def values_of(self, params: dict[str, object]) -> dict[str, object]:
        """Config overrides from a finished trial's stored parameters (fixed keys included)."""
        values = {}
        for name, param in self.params.items():
            if isinstance(param, CategoricalParam):
                values[name] = param.decode(params[name])
            elif not isinstance(param, SameAsParam):
                values[name] = params[name]
        for name, param in self.params.items():
            if isinstance(param, SameAsParam):
                values[name] = values[param.key]
        return {**self.fixed, **values}

    def sample(self, trial) -> dict[str, object]:
        """Dotted config overrides for one Optuna trial (fixed keys included)."""
        values: dict[str, object] = {}
        for name, param in self.params.items():
            if not isinstance(param, SameAsParam):
                values[name] = param.suggest(trial, name)
        for name, param in self.params.items():
            if isinstance(param, SameAsParam):
                values[name] = values[param.key]
        return {**self.fixed, **values}

    def corners(self) -> list[dict[str, object]]:
        """The all-low and all-high settings, to check every key against the config."""
        picks = []
        for end in (0, -1):
            values = {
                name: param.ends()[end]
                for name, param in self.params.items()
                if not isinstance(param, SameAsParam)
            }
            for name, param in self.params.items():
                if isinstance(param, SameAsParam):
                    values[name] = values[param.key]
            picks.append({**self.fixed, **values})
        return picks


def default_space_path(model: str, targets: list[str]) -> Path:
    """The bundled space for a variant and targets: ``<model>-<targets>.yaml``, else
    ``<model>.yaml``, in ``tuning/spaces/``."""
    for name in (f"{model}-{'-'.join(targets)}.yaml", f"{model}.yaml"):
        if (SPACES_DIR / name).exists():
            return SPACES_DIR / name
    known = ", ".join(sorted(p.name for p in SPACES_DIR.glob("*.yaml")))
    raise ValueError(
        f"no bundled search space for {model} on {','.join(targets)} (have: {known}); "
        "copy one and pass it with --space FILE"
    )


def load_space(path: str | Path, base: dict[str, object]) -> SearchSpace:
    """Read and validate a space file. ``base`` holds the config keys that every trial shares
    (model, targets, data...); the space is checked against them."""
    from zoo.config import load_config

    path = Path(path)
    raw = yaml.safe_load(path.read_text())
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: a search space file holds a mapping")
    try:
        space = SearchSpace.model_validate(raw)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from error
    for corner in space.corners():
        try:
            load_config(None, {**base, **corner})
        except ValueError as error:
            raise ValueError(
                f"{path}: a setting of this space is not a valid config: {error}"
            ) from error
    return space
