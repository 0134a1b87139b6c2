"""What ``zoo tune`` was asked to do, as one plain value (it is sent to worker processes), and
the training config of each trial that follows from it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from zoo.tuning.space import SearchSpace, default_space_path, load_space


@dataclass
class StudySpec:
    """Everything ``zoo tune`` was asked to do (plain values: it is sent to worker processes)."""

    model: str = "cgcnn"
    targets: list[str] = field(default_factory=lambda: ["shear"])
    trials: int = 20
    data: str | None = None
    split: str | None = None
    study: str | None = None
    storage: str | None = None
    space: str | None = None
    pruner: str = "median"
    timeout: float | None = None
    jobs: int = 1
    threads: int | None = None
    seed: int = 0
    final: bool = False
    overrides: dict = field(default_factory=dict)
    output_dir: str = "runs/tune"
    worker: int = 0
    heartbeat: float = 60.0  # seconds between an RDB worker's heartbeats (3 missed: taken back)
    progress: bool = (
        True  # a progress bar over trials (off in --jobs children: their parent has it)
    )

    @property
    def study_name(self) -> str:
        return self.study or f"{self.model}-{'-'.join(self.targets)}"

    @property
    def experiment(self) -> str:
        return f"tune-{self.study_name}"

    def base_overrides(self) -> dict:
        """Config keys shared by every trial (before the space's fixed keys and samples)."""
        base = {
            "model": self.model,
            "targets": list(self.targets),
            "evaluate_test": False,
            "experiment": self.experiment,
            "output_dir": str(Path(self.output_dir) / self.study_name),
            "seed": self.seed,
        }
        if self.data:
            base["data.path"] = self.data
        if self.split:
            base["data.split_file"] = self.split
        if self.threads:
            base["threads"] = self.threads
        return base

    @property
    def data_label(self) -> str:
        return self.data or "built-in demo set"

    @property
    def split_label(self) -> str:
        return self.split or "seeded fractions"

    def space_path(self) -> Path:
        return Path(self.space) if self.space else default_space_path(self.model, self.targets)

    def load_space(self) -> SearchSpace:
        return load_space(self.space_path(), {**self.base_overrides(), **self.overrides})

    def trial_config(self, space_values: dict, **extra):
        """The training config of a trial: base, then the space, then the user's ``--set``."""
        from zoo.config import load_config

        return load_config(
            None, {**self.base_overrides(), **space_values, **self.overrides, **extra}
        )
