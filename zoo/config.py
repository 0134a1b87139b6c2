"""Typed, validated training configuration. Unknown keys are errors everywhere.

A config is resolved (defaults filled in, the variant's hyperparameters validated by its own
config class, the graph parts set from what the variant needs) before training, and the resolved
config is saved with every run and every model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from zoo.dataset import TARGETS
from zoo.graphs import GraphSettings


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataConfig(_Strict):
    path: str | None = Field(None, description="data file or folder; None: built-in demo set")
    id_key: str | None = Field(None, description="id column of JSON records")
    target_keys: dict[str, str] | None = Field(None, description="target -> column/info key")
    cgcnn_log10: bool = Field(False, description="id_prop.csv values are log10(GPa)")
    split_file: str | None = Field(None, description="CSV of id -> train/val/test")
    split_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    split_seed: int = 0
    skip_bad: bool = Field(False, description="skip (and report) bad entries instead of failing")
    strict: bool = Field(
        False,
        description="ids of the split file that the data does not hold are an error "
        "(otherwise they are reported and ignored)",
    )
    workers: int = Field(1, ge=1, description="processes for graph building")
    cache_dir: str | None = Field(None, description="graph cache folder (default ~/.cache/zoo)")


class OptimConfig(_Strict):
    name: Literal["adamw", "adam", "sgd"] = "adamw"
    lr: float = Field(3e-3, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD only")


class ScheduleConfig(_Strict):
    name: Literal["onecycle", "cosine", "step", "constant"] = "onecycle"
    milestones: list[int] = Field(default_factory=list, description="step: epochs of decay")
    gamma: float = Field(0.1, gt=0, description="step: factor at each milestone")
    warmup_fraction: float = Field(0.1, ge=0, lt=1, description="onecycle: rising part")


class TrainConfig(_Strict):
    """Everything that decides a training run."""

    model: str = "cgcnn"
    architecture: dict = Field(default_factory=dict, description="the variant's hyperparameters")
    targets: list[str] = Field(default_factory=lambda: ["shear"])
    data: DataConfig = Field(default_factory=DataConfig)
    graph: GraphSettings = Field(default_factory=GraphSettings)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    loss: Literal["mse", "l1", "huber"] = "l1"
    task_gradients: Literal["sum", "pcgrad"] = Field(
        "sum",
        description="multitask runs: how the targets' gradients reach the shared trunk; sum "
        "(backpropagate the weighted loss) or pcgrad (per crystal, the part of each target's "
        "gradient on the pooled features that opposes another's is removed)",
    )
    target_score: Literal["mean", "geometric_mean"] = Field(
        "mean",
        description="multitask runs: how the targets' validation MAEs (log10 GPa) make the one "
        "score that picks the best epoch and that a tuning study minimises; mean (the "
        "arithmetic mean, where the larger shear error weighs more) or geometric_mean (each "
        "target's relative change counts the same)",
    )
    epochs: int = Field(150, ge=1)
    batch_size: int = Field(64, ge=2)
    patience: int | None = Field(
        None,
        ge=1,
        description="early stop after this many epochs "
        "without a better validation MAE (None: never)",
    )
    ema_decay: float | None = Field(
        0.999,
        gt=0,
        lt=1,
        description="evaluate and keep an exponential moving average of the weights, decay "
        "min(ema_decay, (1 + t) / (10 + t)) after t steps (None: the raw weights)",
    )
    fit_on: Literal["train", "train+val"] = Field(
        "train",
        description="train+val: the final refit of a chosen configuration on the training and "
        "validation entries for exactly `epochs` epochs; nothing is validated and the last "
        "epoch's model is kept",
    )
    evaluate_test: bool = Field(
        True,
        description="evaluate the test split at the end (tuning trials set False, so the test "
        "split is never seen while choosing)",
    )
    seed: int = 0
    threads: int | None = Field(None, ge=1, description="torch threads (default: all cores)")
    element_table: str | None = Field(None, description="atom_init.json; None: generated")
    output_dir: str = "runs"
    run_name: str | None = None
    experiment: str = "zoo"

    @field_validator("targets")
    @classmethod
    def _known_targets(cls, targets: list[str]) -> list[str]:
        if not targets or len(set(targets)) != len(targets):
            raise ValueError("targets must be a non-empty list without repeats")
        unknown = [t for t in targets if t not in TARGETS]
        if unknown:
            raise ValueError(f"unknown targets {unknown}; known: {', '.join(TARGETS)}")
        return targets

    @model_validator(mode="after")
    def _refit_has_no_early_stop(self) -> TrainConfig:
        if self.fit_on == "train+val" and self.patience is not None:
            raise ValueError("fit_on train+val has no validation split: patience must be None")
        return self

    @model_validator(mode="after")
    def _resolve_model(self) -> TrainConfig:
        from zoo.models import get_model_entry, resolve_config

        entry = get_model_entry(self.model)
        self.architecture = resolve_config(self.model, self.architecture).model_dump()
        parts = tuple(sorted(set(self.graph.parts) | set(entry.graph_parts)))
        if parts != self.graph.parts:
            self.graph = self.graph.model_copy(update={"parts": parts})
        if self.architecture.get("gaussian_dmax", 0) > self.graph.radius + 1e-9:
            raise ValueError(
                f"gaussian_dmax {self.architecture['gaussian_dmax']} exceeds the graph radius "
                f"{self.graph.radius}"
            )
        return self

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


def load_config(path: str | Path | None, overrides: dict | None = None) -> TrainConfig:
    """Config from a YAML file (or defaults) with dotted-key overrides applied on top.

    ``overrides`` maps dotted keys to values, e.g. ``{"optim.lr": 0.01, "epochs": 5}``.
    """
    raw: dict = {}
    if path is not None:
        loaded = yaml.safe_load(Path(path).read_text())
        if loaded is not None and not isinstance(loaded, dict):
            raise ValueError(f"{path}: a config file holds a mapping")
        raw = loaded or {}
    for dotted, value in (overrides or {}).items():
        node = raw
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise ValueError(f"override {dotted}: {key} is not a section")
        node[leaf] = value
    return TrainConfig.model_validate(raw)


def flatten(config: dict, prefix: str = "") -> dict[str, object]:
    """Dotted-key view of a nested config (stable MLflow parameter names)."""
    flat: dict[str, object] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat
