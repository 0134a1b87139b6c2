"""``zoo benchmark``: one zoo model through Matbench v0.1's protocol for the elastic tasks.

Per official fold, the model is trained on the other four folds (a seeded 10% of them is the
inner validation split that chooses the kept epoch; optionally an Optuna study on that split
chooses the hyperparameters) and predicts the test fold once. ``task=both`` trains a model with
one head per target (``architecture.per_target_heads``) once per fold on both tasks joined by
row, any other model once per task. Everything lives in one folder::

    <output_dir>/<name>/
        benchmark.yaml          the spec and the resolved training config (a rerun must match)
        state.json              MLflow parent runs, by group
        fold0/shear-bulk-seed0/ one ordinary run folder per fold, group and seed
        ...                     (then the report: see zoo.benchmark_report)

A rerun of the same command trains only what is missing: a finished fold run is read back, an
interrupted one continues from its last epoch (``zoo.training.train(resume=...)``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from zoo.files import atomic_write
from zoo.protocol import FOLDS, TaskTable, read_task_table, task_names

SPEC_FILE = "benchmark.yaml"
STATE_FILE = "state.json"
BENCHMARK_TAG = "zoo.benchmark"


class BenchmarkSpec(BaseModel):
    """What ``zoo benchmark`` was asked to do."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(None, description="variant (default: the config's, else cgcnn)")
    task: Literal["matbench_log_gvrh", "matbench_log_kvrh", "both"] = "both"
    data: list[str] = Field(
        default_factory=list, description="Matbench files (default: the official ones, cached)"
    )
    folds: list[int] = Field(default_factory=lambda: list(range(FOLDS)))
    config: str | None = Field(None, description="YAML training config")
    overrides: dict = Field(default_factory=dict, description="dotted config keys (--set)")
    tune_trials: int = Field(0, ge=0, description="Optuna trials per fold and group (0: none)")
    seeds: int = Field(1, ge=1, description="models per fold and group (seeds 0..K-1)")
    val_fraction: float = Field(0.1, gt=0.0, lt=1.0)
    output_dir: str = "runs/benchmark"
    name: str | None = None
    leaderboard: str | None = Field(
        None, description="folder of leaderboard_predictions_log_{gvrh,kvrh}.csv"
    )
    threads: int | None = Field(None, ge=1, description="torch threads (not part of identity)")

    @model_validator(mode="after")
    def _model_from_config(self) -> BenchmarkSpec:
        if self.model is None:
            written = yaml.safe_load(Path(self.config).read_text()) if self.config else None
            self.model = (written or {}).get("model", "cgcnn")
        return self

    def folder(self) -> Path:
        return Path(self.output_dir) / (self.name or f"{self.model}-{self.task}")

    def identity(self) -> dict:
        """What must match for a rerun to continue this benchmark (not where it is written)."""
        return normalised(
            self.model_dump(exclude={"output_dir", "name", "folds", "leaderboard", "threads"})
        )


def normalised(identity: dict) -> dict:
    """A spec identity with its paths absolute and without thread counts (neither changes
    what is computed)."""
    identity = dict(identity)
    identity["data"] = [str(Path(p).resolve()) for p in identity.get("data", [])]
    if identity.get("config"):
        identity["config"] = str(Path(identity["config"]).resolve())
    identity["overrides"] = {
        k: v for k, v in identity.get("overrides", {}).items() if k != "threads"
    }
    return identity


@dataclass(frozen=True)
class FoldRun:
    """One model to train: fold, seed, targets, its folder and its config."""

    fold: int
    seed: int
    targets: tuple[str, ...]
    folder: Path
    config: object  # zoo.config.TrainConfig

    @property
    def group(self) -> str:
        return "-".join(self.targets)


def training_config(spec: BenchmarkSpec, targets: list[str], **extra):
    """The training config of one benchmark model: the spec's config file and ``--set`` keys,
    the model, its targets and the test fold evaluated."""
    from zoo.config import load_config

    return load_config(
        spec.config,
        {
            **spec.overrides,
            "model": spec.model,
            "targets": list(targets),
            "fit_on": "train",
            "evaluate_test": True,
            "experiment": f"benchmark-{spec.folder().name}",
            "threads": spec.threads,
            **extra,
        },
    )


def target_groups(spec: BenchmarkSpec) -> list[tuple[str, ...]]:
    """The target sets trained per fold: both at once for a model with per-target heads on
    ``both``, else one per task."""
    from zoo.protocol import TASKS

    targets = [TASKS[task][1] for task in task_names(spec.task)]
    if len(targets) > 1 and training_config(spec, targets).architecture.get("per_target_heads"):
        return [tuple(targets)]
    return [(target,) for target in targets]


def plan(spec: BenchmarkSpec) -> list[FoldRun]:
    """Every model of the benchmark, fold by fold."""
    runs = []
    for fold in spec.folds:
        if fold not in range(FOLDS):
            raise ValueError(f"fold {fold} does not exist (Matbench has folds 0-{FOLDS - 1})")
        for targets in target_groups(spec):
            for seed in range(spec.seeds):
                name = f"{'-'.join(targets)}-seed{seed}"
                folder = spec.folder() / f"fold{fold}" / name
                config = training_config(
                    spec,
                    list(targets),
                    seed=seed,
                    output_dir=str(folder.parent),
                    run_name=f"fold{fold}-{name}",  # one name per fold run in MLflow
                )
                runs.append(FoldRun(fold, seed, targets, folder, config))
    return runs


def data_paths(spec: BenchmarkSpec) -> list[str]:
    """The spec's files, or the official Matbench files (downloaded once into the cache)."""
    if spec.data:
        return list(spec.data)
    from zoo.readers.matbench import download_matbench

    return [str(download_matbench(task)) for task in task_names(spec.task)]


def open_folder(spec: BenchmarkSpec) -> Path:
    """The benchmark's folder: created with its spec, or checked against the spec of the run
    it continues (another configuration in the same folder is an error)."""
    folder = spec.folder()
    saved = folder / SPEC_FILE
    record = {"spec": spec.identity(), "config": _plain_config(spec)}
    if saved.exists():
        earlier = yaml.safe_load(saved.read_text())
        earlier["spec"] = normalised(earlier.get("spec", {}))
        earlier.get("config", {}).pop("threads", None)
        if earlier != record:
            changed = sorted(
                key
                for key in {*earlier.get("spec", {}), *record["spec"]}
                if earlier.get("spec", {}).get(key) != record["spec"].get(key)
            ) or ["the training config"]
            raise ValueError(
                f"{folder} holds a benchmark with other settings ({', '.join(changed)}); "
                "rerun it as it was or choose another --name"
            )
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_write(saved) as partial:
        partial.write_text(yaml.safe_dump(record, sort_keys=False))
    return folder


def _plain_config(spec: BenchmarkSpec) -> dict:
    """The training config of the first group, without what may change between reruns."""
    groups = target_groups(spec)
    plain = yaml.safe_load(training_config(spec, list(groups[0])).to_yaml())
    plain.pop("threads", None)
    return plain


def parent_run(spec: BenchmarkSpec, table: TaskTable, targets: tuple[str, ...]) -> str:
    """The MLflow parent run of one group (task and configuration): reopened on a rerun."""
    from zoo import tracking

    state_path = spec.folder() / STATE_FILE
    state = json.loads(state_path.read_text()) if state_path.exists() else {}
    group = "-".join(targets)
    config = training_config(spec, list(targets))
    run_id = tracking.open_parent_run(
        config.experiment,
        state.get(group),
        name=f"benchmark-{spec.model}-{group}",
        tags={
            BENCHMARK_TAG: str(spec.folder()),
            "zoo.kind": "benchmark",
            "zoo.model": spec.model,
            "zoo.targets": ",".join(targets),
            "zoo.data": ", ".join(table.sources),
        },
        params={
            "task": spec.task,
            "folds": ",".join(map(str, spec.folds)),
            "seeds": spec.seeds,
            "entries": len(table.rows),
            "tune_trials": spec.tune_trials,
        },  # fmt: skip
        texts={"benchmark.yaml": (spec.folder() / SPEC_FILE).read_text()},
    )
    if state.get(group) != run_id:
        state[group] = run_id
        with atomic_write(state_path) as partial:
            partial.write_text(json.dumps(state, indent=1))
    return run_id


def train_fold(run: FoldRun, dataset, split: dict, parent_run_id: str, log=print):
    """Train (or continue, or read back) one fold model; returns its TrainResult."""
    from zoo.run_folder import start_run_folder
    from zoo.training import train

    if not run.folder.exists():
        start_run_folder(run.folder, run.config.to_yaml())
    return train(
        resume=run.folder,
        dataset=dataset,
        split=split,
        mlflow_parent_run_id=parent_run_id,
        tags={
            "zoo.kind": "benchmark-fold",
            "zoo.fold": str(run.fold),
            BENCHMARK_TAG: str(run.folder.parent.parent),
        },
        log=log,
    )


def run_benchmark(spec: BenchmarkSpec, log=print):
    """Train every fold model that is not finished yet, then write the report
    (:func:`zoo.benchmark_report.write_report`); returns the report's summary."""
    from zoo.faults import failpoint

    table = read_task_table(spec.task, data_paths(spec))
    folder = open_folder(spec)
    runs = plan(spec)
    dataset = table.dataset()
    if spec.tune_trials:
        from zoo.benchmark_tuning import tuned_runs

        runs = tuned_runs(spec, runs, table, dataset, log)
    parents = {targets: parent_run(spec, table, targets) for targets in target_groups(spec)}
    log(f"benchmark {folder}: {len(table.rows)} entries, {len(runs)} model(s) to have")
    for number, run in enumerate(runs, 1):
        log(f"[{number}/{len(runs)}] fold {run.fold}, {run.group}, seed {run.seed}: {run.folder}")
        split = table.split_ids(run.fold, spec.val_fraction)
        train_fold(run, dataset, split, parents[run.targets], log)
        failpoint("fold-finished")
    from zoo.benchmark_report import write_report

    return write_report(spec, table, runs, parents, log)
