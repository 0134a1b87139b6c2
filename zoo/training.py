"""The one training function. ``zoo train`` and the Optuna objective both call :func:`train`.

Pipeline: data set -> split -> graph store (cached) -> target transform fitted on the training
split -> model from the registry -> epochs (masked loss on normalised log10 targets, validation
MAE in log10 GPa for early stopping, checkpoint after every epoch) -> best epoch's weights ->
metrics for every split in log10 GPa and GPa, predictions, plots, model bundle -> MLflow.

A run lives in its folder (:mod:`zoo.run_folder`): config first, then a record of its status,
a checkpoint and ``history.csv`` after every epoch, the results at the end. A run stopped at
any instant (Ctrl-C, SIGTERM, SIGKILL, a crash) is continued by ``train(..., resume=DIR)``
(``zoo train --resume DIR``): from its last checkpoint, or from epoch 1 if it had none, in the
same folder and the same MLflow run, filling in whatever the kill kept from MLflow, and it ends
with the same weights and metrics as an uninterrupted run with the same seed. Resuming a
finished run returns its results.
"""

from __future__ import annotations

import json
import math
import signal
import time
import uuid
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml

from zoo import names, plots
from zoo.bundle import BUNDLE_SUFFIX, bundle_from_model
from zoo.compare import PREDICTIONS_FILE
from zoo.config import TrainConfig, flatten
from zoo.dataset import Dataset
from zoo.domain import training_domain
from zoo.elements import generate_element_table, read_element_table
from zoo.errors import SkipReport
from zoo.faults import failpoint
from zoo.files import atomic_write, remove_stale_partials
from zoo.graphs import GraphStore, usable_graphs
from zoo.losses import backward_multitask
from zoo.metrics import modulus_metrics
from zoo.models import count_parameters, create_model
from zoo.models.layers import element_feature_tensor
from zoo.predictor import predict_normalised
from zoo.progress import CountBar
from zoo.readers import read_dataset
from zoo.run_folder import (
    CHECKPOINT,
    CONFIG_FILE,
    FAILED,
    FINISHED,
    HISTORY_FILE,
    KILLED,
    METRICS_FILE,
    RUNNING,
    STOPPED,
    free_run_dir,
    read_record,
    start_run_folder,
    write_record,
    write_text,
)
from zoo.splits import (
    SPLITS,
    Split,
    assignment_of,
    random_split,
    read_split_file,
    split_from_assignment,
    write_assignment,
)
from zoo.tracking import (
    DESCRIPTION_TAG,
    FOLDER_ID_TAG,
    PARENT_TAG,
    RUN_NAME_TAG,
    NoRunLogger,
    RunLogger,
)
from zoo.transforms import TargetTransform

SKIPPED_FILE = "skipped.csv"
SPLIT_FILE = "split.csv"
"""A split given to :func:`train` in memory, kept in the run folder for a resume."""
EPOCH_PREFIX = names.EPOCH_PREFIX


class StopTraining(Exception):  # noqa: N818 (a request, not an error)
    """Raised by an ``on_epoch`` callback to end a run early on purpose (a pruned tuning trial).
    The MLflow run ends as FINISHED with the tag ``zoo.stopped`` = the message; no final
    metrics or bundle are produced; the exception propagates to the caller."""


@dataclass
class TrainResult:
    """What a finished run produced."""

    output_dir: Path
    bundle_path: Path
    run_id: str | None
    metrics: dict[str, float]
    targets: list[str]
    history: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    skipped: SkipReport = field(default_factory=SkipReport)

    @classmethod
    def from_folder(cls, output_dir: Path) -> TrainResult:
        """The result of a run that finished earlier, from its files."""
        metrics = json.loads((output_dir / METRICS_FILE).read_text())
        history = pd.read_csv(output_dir / HISTORY_FILE).to_dict("records")
        skipped = SkipReport()
        if (output_dir / SKIPPED_FILE).exists():
            table = pd.read_csv(output_dir / SKIPPED_FILE, dtype=str, keep_default_na=False)
            skipped.items.extend(zip(table["id"], table["reason"], strict=True))
        config = yaml.safe_load((output_dir / CONFIG_FILE).read_text())
        return cls(
            output_dir,
            output_dir / f"model{BUNDLE_SUFFIX}",
            read_record(output_dir).get("run_id"),
            metrics,
            list(config["targets"]),
            history,
            int(metrics[names.BEST_EPOCH]),
            skipped,
        )


@dataclass
class PreparedData:
    """Graphs, moduli and split of the entries that survived reading and graph building."""

    store: GraphStore
    targets_gpa: np.ndarray  # float64 (n, T), NaN = missing
    split: Split
    element_table: object
    skipped: SkipReport
    source: str


def read_config_dataset(config: TrainConfig) -> Dataset:
    """The data set that ``config.data`` names (None: the built-in demo set)."""
    data = config.data
    return read_dataset(
        data.path,
        id_key=data.id_key,
        target_keys=data.target_keys,
        cgcnn_target=config.targets[0],
        cgcnn_log10=data.cgcnn_log10,
        skip_bad=data.skip_bad,
    )


def prepare_data(
    config: TrainConfig,
    dataset: Dataset | None = None,
    progress=True,
    log=print,
    split_ids: dict[str, list[str]] | None = None,
) -> PreparedData:
    """Read, check, split and turn into graphs everything a run needs. The split: the config's
    split file, else ``split_ids`` (``{"train": [ids], "val": [...], "test": [...]}``), else the
    config's seeded fractions."""
    data = config.data
    if dataset is None:
        dataset = read_config_dataset(config)
    skipped = SkipReport()
    skipped.items.extend(dataset.skipped.items)
    missing = [t for t in config.targets if t not in dataset.targets]
    if missing:
        raise ValueError(f"{dataset.source}: no values for target(s) {missing}")
    table = (
        read_element_table(config.element_table)
        if config.element_table
        else generate_element_table()
    )
    store, graph_skips = usable_graphs(
        dataset.ids,
        dataset.structures,
        config.graph,
        table.dense()[1],
        skip_bad=data.skip_bad,
        workers=data.workers,
        cache_dir=data.cache_dir or None,
        progress=progress,
    )
    skipped.items.extend(graph_skips.items)
    if store is None:
        raise ValueError(f"{dataset.source}: no usable entries ({skipped.summary()})")
    position = {entry: i for i, entry in enumerate(dataset.ids)}
    rows = [position[entry] for entry in store.ids]
    targets = np.stack([dataset.targets[t][rows] for t in config.targets], axis=1)
    has_value = np.isfinite(targets).any(axis=1)
    if not has_value.all():
        store = store.subset(np.flatnonzero(has_value))
        targets = targets[has_value]
    split = choose_split(config, store.ids, {entry for entry, _ in skipped.items}, split_ids, log)
    return PreparedData(store, targets, split, table, skipped, dataset.source)


def choose_split(
    config: TrainConfig, ids: list[str], skipped: set[str], split_ids, log=print
) -> Split:
    """The run's split of ``ids``: the config's split file, else ``split_ids``, else its seeded
    fractions; merged into train+val for a refit, without test when it is not evaluated."""
    data = config.data
    if data.split_file:
        split = read_split_file(data.split_file, ids, skipped=skipped, strict=data.strict, log=log)
    elif split_ids is not None:
        assignment = assignment_of(split_ids)
        split = split_from_assignment(
            assignment, ids, "the split given", skipped=skipped, strict=data.strict, log=log
        )
    else:
        split = random_split(len(ids), data.split_fractions, data.split_seed)
    if len(split.train) < 2 or len(split.val) < 1:
        raise ValueError(f"split has {split.sizes()} entries: too few to train and validate")
    if config.fit_on == "train+val":
        split = Split(np.sort(np.concatenate([split.train, split.val])), split.val[:0], split.test)
    if not config.evaluate_test:
        split = Split(split.train, split.val, split.test[:0])
    return split


def ema_with_warmup(decay: float):
    """Exponential moving average of the weights whose decay after ``t`` updates is
    ``min(decay, (1 + t) / (10 + t))``: the average follows the weights closely at first and
    settles at ``decay``, so that short runs (few steps per epoch) are averaged too."""

    @torch.no_grad()
    def update(averaged: list, current: list, num_averaged) -> None:
        steps = float(num_averaged)
        effective = min(decay, (1.0 + steps) / (10.0 + steps))
        if torch.is_floating_point(averaged[0]):
            torch._foreach_lerp_(averaged, current, 1.0 - effective)
        else:  # integer buffers (batch-norm counters) are taken as they are
            for mine, theirs in zip(averaged, current, strict=True):
                mine.copy_(theirs)

    return update


def target_score(maes: list[float], rule: str) -> float:
    """One score from the per-target MAEs ``(T,)`` of an epoch: their mean or geometric mean."""
    if rule == "mean":
        return float(np.mean(maes))
    if rule == "geometric_mean":
        return float(np.exp(np.mean(np.log(maes))))
    raise ValueError(f"unknown target_score {rule!r}; known: mean, geometric_mean")


def make_optimizer(config: TrainConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    optim = config.optim
    if optim.name == "sgd":
        return torch.optim.SGD(
            model.parameters(),
            lr=optim.lr,
            momentum=optim.momentum,
            weight_decay=optim.weight_decay,
        )
    cls = torch.optim.AdamW if optim.name == "adamw" else torch.optim.Adam
    return cls(model.parameters(), lr=optim.lr, weight_decay=optim.weight_decay)


def make_scheduler(config: TrainConfig, optimizer, steps_per_epoch: int):
    """Scheduler stepped after every batch (so one-cycle and epoch schedules share a loop).
    A one-cycle run of fewer than 4 steps in all keeps the learning rate constant."""
    schedule, total = config.schedule, config.epochs * steps_per_epoch
    if schedule.name == "onecycle" and total >= 4:
        # the rising part needs at least two steps (fewer makes OneCycleLR divide by zero)
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer,
            max_lr=config.optim.lr,
            total_steps=total,
            pct_start=max(schedule.warmup_fraction, 2.0 / total),
        )
    if schedule.name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)
    if schedule.name == "step":
        milestones = [m * steps_per_epoch for m in schedule.milestones]
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones, schedule.gamma)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)


def evaluate(model, store, indices, transform, targets_gpa) -> tuple[dict, np.ndarray]:
    """Metrics per target (``<target>_<metric>_<unit>``) and predictions in log10, ``(n, T)``."""
    if len(indices) == 0:
        return {}, np.zeros((0, len(transform.targets)))
    output = predict_normalised(model, store, indices)
    pred = transform.to_log10(output.double()).numpy()
    true = np.log10(targets_gpa[indices])
    metrics = {}
    for column, target in enumerate(transform.targets):
        for name, value in modulus_metrics(true[:, column], pred[:, column]).items():
            metrics[f"{target}_{name}"] = value
    return metrics, pred


@contextmanager
def _stop_requests():
    """Ctrl-C (SIGINT) and ``kill`` (SIGTERM) while a run trains: before :func:`_defer` is
    called they raise KeyboardInterrupt at once (reading data, building graphs); after it they
    only set a flag, which the loop checks between batches and turns into KeyboardInterrupt
    there, so that a stop never lands inside a checkpoint write or an MLflow call (an
    interrupted MLflow write would keep its database lock). Yields the request dict."""
    request = {"signal": None, "defer": False}

    def handler(signum, frame):
        if not request["defer"]:
            raise KeyboardInterrupt(f"signal {signum}")
        request["signal"] = signum

    previous = {}
    try:
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, handler)
    except ValueError:  # not in the main thread (e.g. an Optuna worker thread): no handlers
        pass
    try:
        yield request
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def _defer(request: dict) -> None:
    _stop_if_requested(request)
    request["defer"] = True


def _stop_if_requested(request: dict) -> None:
    if request["signal"] is not None:
        raise KeyboardInterrupt(f"signal {request['signal']}")


def run_folder_for(config: TrainConfig) -> Path:
    """A free folder for a new run of ``config`` (``output_dir/run_name`` or a dated name);
    nothing is created."""
    name = (
        config.run_name
        or f"{config.model}-{'-'.join(config.targets)}-{time.strftime('%Y%m%d-%H%M%S')}"
    )
    return free_run_dir(config.output_dir, name)


def _open_folder(config: TrainConfig | None, resume) -> tuple[Path, TrainConfig, dict | None]:
    """The run's folder, its config and its checkpoint (None before the first epoch)."""
    if resume is None:
        config = config or TrainConfig()
        output_dir = start_run_folder(run_folder_for(config), config.to_yaml())
        return output_dir, config, None
    output_dir = Path(resume)
    if not (output_dir / CONFIG_FILE).exists():
        raise FileNotFoundError(f"{output_dir}: not a run folder (no {CONFIG_FILE})")
    remove_stale_partials(output_dir)
    config = TrainConfig.model_validate(yaml.safe_load((output_dir / CONFIG_FILE).read_text()))
    return output_dir, config, read_checkpoint(output_dir)


def read_checkpoint(output_dir: Path) -> dict | None:
    """The folder's ``last.pt`` (None before the first epoch), loaded with
    ``torch.load(weights_only=True)``: a checkpoint holds tensors, numbers and strings only, so
    a crafted file cannot run code; one that holds anything else is a ValueError naming it."""
    import pickle

    path = Path(output_dir) / CHECKPOINT
    if not path.exists():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as error:
        reason = " ".join(str(error).split())[:200]
        raise ValueError(
            f"{path}: not loaded: a checkpoint holds tensors, numbers and strings only ({reason})"
        ) from error


@dataclass
class _Session:
    """The objects one run trains with."""

    model: torch.nn.Module
    averaged: torch.nn.Module | None
    optimizer: torch.optim.Optimizer
    scheduler: object
    shuffler: torch.Generator
    transform: TargetTransform
    train_store: GraphStore
    train_targets: torch.Tensor
    steps_per_epoch: int
    history: list = field(default_factory=list)
    best: dict = field(default_factory=lambda: {"score": math.inf, "epoch": 0, "state": None})
    train_seconds: float = 0.0
    complete: bool = False
    patience_left: int | None = None

    @property
    def evaluated(self) -> torch.nn.Module:
        """The model whose validation score counts: the weight average if there is one."""
        return self.averaged.module if self.averaged is not None else self.model

    def checkpoint(self, run_id: str | None) -> dict:
        return {
            "epoch": self.history[-1]["epoch"] if self.history else 0,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "shuffler": self.shuffler.get_state(),
            "torch_rng": torch.get_rng_state(),
            "averaged": self.averaged.state_dict() if self.averaged is not None else None,
            "history": self.history,
            "best": self.best,
            "train_seconds": self.train_seconds,
            "complete": self.complete,
            "patience_left": self.patience_left,
            "run_id": run_id,
        }

    def restore(self, checkpoint: dict) -> None:
        self.model.load_state_dict(checkpoint["model"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.scheduler.load_state_dict(checkpoint["scheduler"])
        self.shuffler.set_state(checkpoint["shuffler"])
        if self.averaged is not None:
            self.averaged.load_state_dict(checkpoint["averaged"])
        torch.set_rng_state(checkpoint["torch_rng"])
        self.history, self.best = checkpoint["history"], checkpoint["best"]
        self.train_seconds = checkpoint["train_seconds"]
        self.complete, self.patience_left = checkpoint["complete"], checkpoint["patience_left"]


def _new_session(config: TrainConfig, data: PreparedData) -> _Session:
    split = data.split
    transform = TargetTransform.fit(config.targets, data.targets_gpa[split.train])
    model = create_model(
        config.model,
        element_features=element_feature_tensor(data.element_table),
        n_outputs=len(config.targets),
        **config.architecture,
    )
    averaged = None
    if config.ema_decay:
        from torch.optim.swa_utils import AveragedModel

        averaged = AveragedModel(
            model, multi_avg_fn=ema_with_warmup(config.ema_decay), use_buffers=True
        )
    optimizer = make_optimizer(config, model)
    steps_per_epoch = math.ceil(len(split.train) / config.batch_size)
    normalised = transform.normalise(torch.from_numpy(data.targets_gpa).float())
    return _Session(
        model=model,
        averaged=averaged,
        optimizer=optimizer,
        scheduler=make_scheduler(config, optimizer, steps_per_epoch),
        shuffler=torch.Generator().manual_seed(config.seed),
        transform=transform,
        train_store=data.store.subset(split.train),
        train_targets=normalised[torch.from_numpy(split.train)],
        steps_per_epoch=steps_per_epoch,
        patience_left=config.patience,
    )


def train(
    config: TrainConfig | None = None,
    *,
    dataset: Dataset | None = None,
    resume: str | Path | None = None,
    split: dict[str, list[str]] | None = None,
    on_epoch: Callable[[int, dict], None] | None = None,
    on_start: Callable[[Path, str | None], None] | None = None,
    track: bool = True,
    progress: bool = True,
    mlflow_parent_run_id: str | None = None,
    tags: dict[str, str] | None = None,
    log_model: bool = True,
    log=print,
) -> TrainResult:
    """Train one model; see the module docstring.

    Args:
        config: resolved or partial config (None: defaults). Ignored when resuming (the run's
            saved config is used).
        dataset: data already in memory (otherwise ``config.data.path`` is read).
        resume: folder of a run to continue (or to start, if only its config is there yet).
        split: the split in memory, ids per split (``{"train": [...], "val": [...], "test":
            [...]}``), instead of the config's split file or fractions; kept in the run folder
            (``split.csv``) so that a resume uses it too.
        on_epoch: called after each epoch with ``(epoch, metrics)``; may raise to stop the run
            (e.g. an Optuna pruner).
        on_start: called with ``(output_dir, mlflow_run_id)`` once the run is open, before
            the first epoch.
        track: log to MLflow.
        mlflow_parent_run_id: make the MLflow run a child of this run (tuning studies).
        tags: extra MLflow run tags (e.g. the Optuna trial number).
        log_model: log the model as an MLflow pyfunc model too (a study's trials do not).

    With ``config.fit_on == "train+val"`` there is no validation split: every epoch's score is
    the running training MAE and the last epoch's model is kept.
    """
    assignment = assignment_of(split) if split is not None else None  # checked before a folder
    output_dir, config, checkpoint = _open_folder(config, resume)
    if assignment is not None and not (output_dir / SPLIT_FILE).exists():
        write_assignment(output_dir / SPLIT_FILE, assignment)
    record = read_record(output_dir)
    if record.get("status") == FINISHED:
        log(f"{output_dir} finished earlier; its results are returned as they are")
        return TrainResult.from_folder(output_dir)
    record = _detached_if_copy(output_dir, record, checkpoint, log)
    record = write_record(
        output_dir,
        RUNNING,
        run_id=record.get("run_id"),
        folder_id=record.get("folder_id") or uuid.uuid4().hex[:16],
        folder=str(output_dir.resolve()),
    )
    logger = RunLogger(config.experiment, output_dir) if track else NoRunLogger()
    run_tags = {**(tags or {})}
    if mlflow_parent_run_id:
        run_tags[PARENT_TAG] = mlflow_parent_run_id
    try:
        with _stop_requests() as stop:
            run = _RunContext(
                config, output_dir, logger, stop, on_epoch, on_start, progress, log, log_model
            )
            result = _run(run, checkpoint, record, dataset, run_tags)
    except StopTraining as request:
        _close(output_dir, logger, STOPPED, "FINISHED", reason=str(request))
        raise
    except KeyboardInterrupt:
        _close(output_dir, logger, KILLED, "KILLED")
        log(
            f"interrupted; finished epochs are kept. Continue with: zoo train --resume {output_dir}"
        )
        raise
    except BaseException as error:
        _close(output_dir, logger, FAILED, "FAILED", error=f"{type(error).__name__}: {error}")
        raise
    _close(output_dir, logger, FINISHED, "FINISHED")
    return result


def _detached_if_copy(output_dir: Path, record: dict, checkpoint, log) -> dict:
    """The folder's record, without the MLflow run and folder id of the folder it is a copy
    of (:func:`is_copy`; the checkpoint forgets that run too): a copy continues in a new run."""
    if not is_copy(output_dir, record):
        return record
    log(f"{output_dir} is a copy of the run folder {record['folder']}, whose MLflow run "
        "stays that folder's: this one continues in a new MLflow run")  # fmt: skip
    if checkpoint is not None:
        checkpoint["run_id"] = None
    return {key: value for key, value in record.items() if key not in ("run_id", "folder_id")}


def is_copy(output_dir: Path, record: dict) -> bool:
    """Whether the folder is a copy of another run folder: its record names the folder it was
    made in, and another folder stands there (a folder moved away from its old place is no
    copy, and keeps its MLflow run)."""
    import os

    origin = record.get("folder")
    if not origin or origin == str(output_dir.resolve()) or not Path(origin).is_dir():
        return False
    return not os.path.samefile(origin, output_dir)


def _close(output_dir: Path, logger, status: str, mlflow_status: str, **fields) -> None:
    """End the MLflow run (if one was opened) and write the folder's record."""
    if logger.run_id is not None:
        logger.end(mlflow_status, reason=fields.pop("reason", None))
    fields.pop("reason", None)
    write_record(output_dir, status, run_id=logger.run_id, **fields)


@dataclass
class _RunContext:
    """A run being trained: its config, folder and MLflow logger, the stop request and the
    caller's callbacks."""

    config: TrainConfig
    output_dir: Path
    logger: RunLogger | NoRunLogger
    stop: dict
    on_epoch: Callable[[int, dict], None] | None
    on_start: Callable[[Path, str | None], None] | None
    progress: bool
    log: Callable
    log_model: bool = True


def _run(run: _RunContext, checkpoint, record: dict, dataset, tags: dict) -> TrainResult:
    """Prepare, open the MLflow run, train the remaining epochs, finish."""
    config, output_dir, log = run.config, run.output_dir, run.log
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    np.random.seed(config.seed)
    split_ids = None
    if (output_dir / SPLIT_FILE).exists():
        table = pd.read_csv(output_dir / SPLIT_FILE, dtype=str, keep_default_na=False)
        split_ids = {name: list(table.loc[table["split"] == name, "id"]) for name in SPLITS}
    data = prepare_data(config, dataset, progress=run.progress, log=log, split_ids=split_ids)
    if len(data.skipped):
        log(data.skipped.summary())
        data.skipped.to_csv(output_dir / SKIPPED_FILE)
    _defer(run.stop)
    session = _new_session(config, data)
    if checkpoint is not None:
        session.restore(checkpoint)
        log(f"resuming {output_dir} at epoch {len(session.history) + 1}")
    run_id = run.logger.start(
        (checkpoint or {}).get("run_id") or record.get("run_id"),
        _run_params(config, session, data),
        {
            "zoo.model": config.model,
            "zoo.targets": ",".join(config.targets),
            "zoo.data": data.source,
            FOLDER_ID_TAG: record["folder_id"],
            RUN_NAME_TAG: run_label(config),
            DESCRIPTION_TAG: run_description(config, data),
            **tags,
        },
        [output_dir / CONFIG_FILE],
    )
    write_record(output_dir, RUNNING, run_id=run_id)
    run.logger.log_dataset(data.source, data.store.ids)
    failpoint("run-opened")
    run.logger.fill_epochs(session.history, EPOCH_PREFIX)
    if run.on_start is not None:
        run.on_start(output_dir, run_id)
    _train_epochs(run, data, session)
    _stop_if_requested(run.stop)
    return _finish(run, data, session)


def run_label(config: TrainConfig) -> str:
    """The MLflow run name, short enough for the first column of MLflow's runs table: the
    given run name, else what was trained, e.g. ``cgcnn shear · seed 0`` (the data is in the
    Dataset column). :meth:`RunLogger.start` makes it unique in its experiment."""
    return config.run_name or f"{config.model} {'+'.join(config.targets)} · seed {config.seed}"


def run_description(config: TrainConfig, data: PreparedData) -> str:
    sizes = data.split.sizes()
    return (
        f"{config.model} trained on {', '.join(config.targets)} from {data.source} "
        f"({sizes['train']} train / {sizes['val']} validation / {sizes['test']} test entries), "
        f"seed {config.seed}, {config.epochs} epochs, batch {config.batch_size}, "
        f"{config.optim.name} lr {config.optim.lr:g}."
    )


def headline_scores(config: TrainConfig, metrics: dict) -> dict[str, float]:
    """``val_mae_log10`` and ``test_mae_log10`` of the kept model: the per-target MAEs
    combined by ``config.target_score`` (the rule that picked the kept epoch)."""
    scores = {}
    for split in SPLITS:
        key = names.split_metric
        maes = [metrics.get(key(split, t, "mae", "log10"), np.nan) for t in config.targets]
        if np.isfinite(maes).all():
            scores[names.score(split)] = target_score(maes, config.target_score)
    return scores


def _outcome(config: TrainConfig, metrics: dict) -> str:
    """The end of the run description: kept epoch and headline MAEs per target."""
    parts = [f"Kept epoch {metrics[names.BEST_EPOCH]} of {metrics[names.EPOCHS_RUN]}."]
    for split in ("val", "test"):
        per_target = [
            f"{t} {metrics[names.split_metric(split, t, 'mae', 'log10')]:.4f}"
            for t in config.targets
            if np.isfinite(metrics.get(names.split_metric(split, t, "mae", "log10"), np.nan))
        ]
        if per_target:
            parts.append(f"{split} MAE (log10 GPa): {', '.join(per_target)}.")
    return " ".join(parts)


def _run_params(config: TrainConfig, session: _Session, data: PreparedData) -> dict:
    return {
        **flatten(config.model_dump(mode="json")),
        "n_parameters": count_parameters(session.model),
        **{f"n_{s}": n for s, n in data.split.sizes().items()},
        "n_skipped": len(data.skipped),
    }


def _train_epochs(run: _RunContext, data: PreparedData, session: _Session) -> None:
    """The epochs still to run; after each: checkpoint, history file, MLflow, callback."""
    config = run.config
    validating = len(data.split.val) > 0  # False for a train+val refit
    scored = "val" if validating else "train"
    start_epoch = len(session.history) + 1
    bar = CountBar(
        range(start_epoch, config.epochs + 1),
        desc="training",
        unit="epochs",
        disable=not run.progress or session.complete,
        initial=start_epoch - 1,
        total=config.epochs,
    )
    for epoch in bar:
        if session.complete:
            break
        started = time.perf_counter()
        row = {"epoch": epoch, **_train_one_epoch(config, session, run.stop)}
        if validating:
            val_metrics, _ = evaluate(
                session.evaluated, data.store, data.split.val, session.transform, data.targets_gpa
            )
            for target in config.targets:
                row[names.epoch_mae("val", target)] = val_metrics[
                    names.metric(target, "mae", "log10")
                ]
        score = target_score(
            [row[names.epoch_mae(scored, t)] for t in config.targets], config.target_score
        )
        row[names.score(scored)] = score
        row["epoch_seconds"] = time.perf_counter() - started
        _keep_best(session, row, score, validating, config.patience)
        session.train_seconds += row["epoch_seconds"]
        session.complete = epoch == config.epochs or (
            session.patience_left is not None and session.patience_left <= 0
        )
        _save_epoch(run.output_dir, session, run.logger)
        postfix = {"loss": f"{row['train_loss']:.3f}", f"{scored}_mae": f"{score:.4f}"}
        if validating:
            postfix["best"] = f"{session.best['score']:.4f}@{session.best['epoch']}"
        bar.set_postfix(postfix)
        _stop_if_requested(run.stop)
        if run.on_epoch is not None:
            run.on_epoch(epoch, row)
        if session.complete and epoch < config.epochs:
            run.log(
                f"early stop at epoch {epoch}: no better validation MAE for "
                f"{config.patience} epochs"
            )


def _train_one_epoch(config: TrainConfig, session: _Session, stop: dict) -> dict:
    """One pass over the training crystals; the row of the epoch's training figures."""
    session.model.train()
    targets = config.targets
    order = torch.randperm(len(session.train_targets), generator=session.shuffler)
    losses, abs_errors, counts = [], torch.zeros(len(targets)), torch.zeros(len(targets))
    scale = torch.tensor(session.transform.std, dtype=torch.float32)
    for step in range(session.steps_per_epoch):
        batch = order[step * config.batch_size : (step + 1) * config.batch_size]
        if len(batch) < 2:  # batch norm needs two crystals
            continue
        truth = session.train_targets[batch]
        session.optimizer.zero_grad()
        pred, loss = backward_multitask(
            session.model,
            session.train_store.batch(batch),
            truth,
            config.loss,
            config.task_gradients,
        )
        session.optimizer.step()
        session.scheduler.step()
        if session.averaged is not None:
            session.averaged.update_parameters(session.model)
        losses.append(loss.item())
        _stop_if_requested(stop)
        with torch.no_grad():
            mask = ~torch.isnan(truth)
            abs_errors += ((pred.detach() - truth.nan_to_num()).abs() * mask).sum(0) * scale
            counts += mask.sum(0)
    row = {"train_loss": float(np.mean(losses)), "lr": session.optimizer.param_groups[0]["lr"]}
    for column, target in enumerate(targets):
        row[names.epoch_mae("train", target)] = float(abs_errors[column] / counts[column])
    return row


def _keep_best(session: _Session, row: dict, score: float, validating: bool, patience) -> None:
    """Add the epoch to the history; keep its weights if its score is the best (always in a
    train+val refit, which keeps the last epoch) and count down the patience otherwise."""
    session.history.append(row)
    if score < session.best["score"] or not validating:
        state = {k: v.clone() for k, v in session.evaluated.state_dict().items()}
        session.best = {"score": score, "epoch": row["epoch"], "state": state}
        session.patience_left = patience
    elif session.patience_left is not None:
        session.patience_left -= 1


def _save_epoch(output_dir: Path, session: _Session, logger) -> None:
    """Checkpoint first, then the history file, then MLflow: a kill between them leaves the
    checkpoint ahead, and a resume fills in what MLflow lacks (:meth:`RunLogger.fill_epochs`)."""
    with atomic_write(output_dir / CHECKPOINT) as partial:
        torch.save(session.checkpoint(logger.run_id), partial)
        failpoint("checkpoint-part")
    _write_history(output_dir, session.history)
    failpoint("epoch-saved")
    logger.log_epoch(session.history[-1], EPOCH_PREFIX)


def _write_history(output_dir: Path, history: list[dict]) -> None:
    with atomic_write(output_dir / HISTORY_FILE) as partial:
        pd.DataFrame(history).to_csv(partial, index=False)


def _finish(run: _RunContext, data: PreparedData, session: _Session) -> TrainResult:
    """Best epoch's weights -> metrics and predictions of every split, plots, bundle, MLflow."""
    config, output_dir, logger = run.config, run.output_dir, run.logger
    model = session.model
    model.load_state_dict(session.best["state"])
    metrics: dict[str, float] = {
        names.BEST_EPOCH: session.best["epoch"],
        names.TRAIN_SECONDS: session.train_seconds,
        names.EPOCHS_RUN: len(session.history),
    }
    frames = []
    for name in SPLITS:
        indices = getattr(data.split, name)
        split_metrics, pred = evaluate(
            model, data.store, indices, session.transform, data.targets_gpa
        )
        metrics.update({f"{name}_{k}": v for k, v in split_metrics.items()})  # names.split_metric
        frame = pd.DataFrame({names.ID: [data.store.ids[i] for i in indices], names.SPLIT: name})
        for column, target in enumerate(config.targets):
            frame[names.true_gpa(target)] = data.targets_gpa[indices, column]
            frame[names.pred_gpa(target)] = 10.0 ** pred[:, column]
        frames.append(frame)
    predictions = pd.concat(frames, ignore_index=True)
    metrics.update(headline_scores(config, metrics))
    failpoint("final-evaluated")
    with atomic_write(output_dir / PREDICTIONS_FILE) as partial:
        predictions.to_csv(partial, index=False)
    _write_history(output_dir, session.history)
    pictures = _pictures(
        config, session.history, predictions, metrics, output_dir, session.best["epoch"]
    )
    write_text(output_dir / METRICS_FILE, json.dumps(metrics, indent=2))
    bundle = bundle_from_model(
        model,
        config.model,
        config.graph,
        session.transform,
        data.element_table,
        train_config=config.model_dump(mode="json"),
        metrics=metrics,
        training_domain=training_domain(
            *data.store.atoms_and_volumes(data.split.train), source=data.source
        ),
    )
    bundle_path = bundle.save(output_dir / f"model{BUNDLE_SUFFIX}")
    files = [*pictures, output_dir / PREDICTIONS_FILE, output_dir / HISTORY_FILE]
    files.append(output_dir / METRICS_FILE)
    if (output_dir / SKIPPED_FILE).exists():
        files.append(output_dir / SKIPPED_FILE)
    logger.log_final(metrics, files, [bundle_path])
    logger.describe(f"{run_description(config, data)} {_outcome(config, metrics)}")
    if logger.run_id and run.log_model:  # MLflow's Models column; zoo train --register reuses it
        from zoo.serving import pyfunc_of_run

        pyfunc_of_run(logger.run_id, bundle_path)
    failpoint("final-logged")
    return TrainResult(
        output_dir,
        bundle_path,
        logger.run_id,
        metrics,
        list(config.targets),
        session.history,
        session.best["epoch"],
        data.skipped,
    )


def _pictures(config, history, predictions, metrics, output_dir, kept_epoch) -> list[Path]:
    """Learning curve (kept epoch marked) and one parity plot per target, titled with the MAE
    of the last split the run has (test; validation for a tuning trial, which has none)."""
    curve = output_dir / "learning_curve.png"
    pictures = [plots.learning_curve(history, config.targets, curve, kept_epoch)]
    for target in config.targets:
        split = next(
            s
            for s in ("test", "val", "train")
            if np.isfinite(metrics.get(names.split_metric(s, target, "mae", "gpa"), np.nan))
        )
        mae = metrics[names.split_metric(split, target, "mae", "gpa")]
        what = {"test": "test", "val": "validation (no test split)", "train": "training"}[split]
        title = f"{config.model}: {target} modulus ({what} MAE {mae:.1f} GPa)"
        pictures.append(
            plots.parity_plot(predictions, target, output_dir / f"parity_{target}.png", title)
        )
    return pictures
