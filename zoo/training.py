"""The one training function. ``zoo train`` and the Optuna objective both call :func:`train`.

Pipeline: data set -> split -> graph store (cached) -> target transform fitted on the training
split -> model from the registry -> epochs (masked loss on normalised log10 targets, validation
MAE in log10 GPa for early stopping, checkpoint after every epoch) -> best epoch's weights ->
metrics for every split in log10 GPa and GPa, predictions, plots, model bundle -> MLflow.

An interrupted run (Ctrl-C, SIGTERM, a crash) keeps its last checkpoint; ``train(...,
resume=DIR)`` continues from it in the same MLflow run and ends with the same weights as an
uninterrupted run with the same seed.
"""

from __future__ import annotations

import json
import math
import signal
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml
from tqdm import tqdm

from models import count_parameters, create_model
from models.layers import element_feature_tensor
from zoo import plots, tracking
from zoo.bundle import BUNDLE_SUFFIX, bundle_from_model
from zoo.compare import PREDICTIONS_FILE
from zoo.config import TrainConfig, flatten
from zoo.dataset import Dataset
from zoo.elements import generate_element_table, read_element_table
from zoo.errors import SkipReport
from zoo.files import atomic_write
from zoo.graph_store import GraphStore
from zoo.losses import backward_multitask
from zoo.metrics import modulus_metrics
from zoo.predict import predict_normalised, usable_graphs
from zoo.readers import read_dataset
from zoo.splits import SPLITS, Split, random_split, read_split_file
from zoo.transforms import TargetTransform

CHECKPOINT = "last.pt"
CONFIG_FILE = "config.yaml"
EPOCH_PREFIX = "epoch/"
"""MLflow name prefix of per-epoch curves (``epoch/val_shear_mae_log10``), kept apart from the
final metrics of the best epoch's model (``val_shear_mae_log10``)."""


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
    history: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    skipped: SkipReport = field(default_factory=SkipReport)


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
    config: TrainConfig, dataset: Dataset | None = None, progress=True
) -> PreparedData:
    """Read, check, split and turn into graphs everything a run needs."""
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
    if data.split_file:
        split = read_split_file(data.split_file, store.ids)
    else:
        split = random_split(len(store), data.split_fractions, data.split_seed)
    if len(split.train) < 2 or len(split.val) < 1:
        raise ValueError(f"split has {split.sizes()} entries: too few to train and validate")
    if config.fit_on == "train+val":
        split = Split(np.sort(np.concatenate([split.train, split.val])), split.val[:0], split.test)
    if not config.evaluate_test:
        split = Split(split.train, split.val, split.test[:0])
    return PreparedData(store, targets, split, table, skipped, dataset.source)


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
    """While training, Ctrl-C (SIGINT) and ``kill`` (SIGTERM) only set a flag, which the loop
    checks between batches and turns into KeyboardInterrupt there. A stop therefore never lands
    inside a checkpoint write or an MLflow call (an interrupted MLflow write would keep its
    database lock and make the clean shutdown fail). Yields a dict whose ``"signal"`` is the
    received signal number or None."""
    request = {"signal": None}

    def handler(signum, frame):
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


def _stop_if_requested(request: dict) -> None:
    if request["signal"] is not None:
        raise KeyboardInterrupt(f"signal {request['signal']}")


def _save_checkpoint(path: Path, state: dict) -> None:
    with atomic_write(path) as partial:
        torch.save(state, partial)


def _new_output_dir(config: TrainConfig) -> Path:
    name = config.run_name or (
        f"{config.model}-{'-'.join(config.targets)}-{datetime.now():%Y%m%d-%H%M%S}"
    )
    path = Path(config.output_dir) / name
    suffix = 1
    while path.exists():
        suffix += 1
        path = Path(config.output_dir) / f"{name}-{suffix}"
    path.mkdir(parents=True)
    return path


def train(
    config: TrainConfig | None = None,
    *,
    dataset: Dataset | None = None,
    resume: str | Path | None = None,
    on_epoch: Callable[[int, dict], None] | None = None,
    track: bool = True,
    progress: bool = True,
    mlflow_parent_run_id: str | None = None,
    tags: dict[str, str] | None = None,
    log=print,
) -> TrainResult:
    """Train one model; see the module docstring.

    Args:
        config: resolved or partial config (None: defaults). Ignored when resuming (the run's
            saved config is used).
        dataset: data already in memory (otherwise ``config.data.path`` is read).
        resume: output folder of an interrupted run to continue.
        on_epoch: called after each epoch with ``(epoch, metrics)``; may raise to stop the run
            (e.g. an Optuna pruner).
        track: log to MLflow.
        mlflow_parent_run_id: make the MLflow run a child of this run (tuning studies).
        tags: extra MLflow run tags (e.g. the Optuna trial number).

    With ``config.fit_on == "train+val"`` there is no validation split: every epoch's score is
    the running training MAE and the last epoch's model is kept.
    """
    if resume is not None:
        output_dir = Path(resume)
        config = TrainConfig.model_validate(yaml.safe_load((output_dir / CONFIG_FILE).read_text()))
        checkpoint = torch.load(output_dir / CHECKPOINT, map_location="cpu", weights_only=False)
    else:
        config = config or TrainConfig()
        output_dir = _new_output_dir(config)
        (output_dir / CONFIG_FILE).write_text(config.to_yaml())
        checkpoint = None
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    np.random.seed(config.seed)

    data = prepare_data(config, dataset, progress=progress)
    if len(data.skipped):
        log(data.skipped.summary())
        data.skipped.to_csv(output_dir / "skipped.csv")
    split, store, targets_gpa = data.split, data.store, data.targets_gpa
    transform = TargetTransform.fit(config.targets, targets_gpa[split.train])
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
    evaluated = averaged.module if averaged is not None else model
    optimizer = make_optimizer(config, model)
    steps_per_epoch = math.ceil(len(split.train) / config.batch_size)
    scheduler = make_scheduler(config, optimizer, steps_per_epoch)
    shuffler = torch.Generator().manual_seed(config.seed)
    normalised = transform.normalise(torch.from_numpy(targets_gpa).float())
    train_store = store.subset(split.train)
    train_targets = normalised[torch.from_numpy(split.train)]

    history: list[dict] = []
    best = {"score": math.inf, "epoch": 0, "state": None}
    start_epoch, run_id = 1, None
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        shuffler.set_state(checkpoint["shuffler"])
        if averaged is not None:
            averaged.load_state_dict(checkpoint["averaged"])
        torch.set_rng_state(checkpoint["torch_rng"])
        history, best = checkpoint["history"], checkpoint["best"]
        start_epoch, run_id = checkpoint["epoch"] + 1, checkpoint["run_id"]
        log(f"resuming {output_dir} at epoch {start_epoch}")

    mlflow = None
    if track:
        import mlflow

        experiment_id = tracking.setup(config.experiment)
        run_tags = {
            "zoo.model": config.model,
            "zoo.targets": ",".join(config.targets),
            "zoo.data": data.source,
            "zoo.output_dir": str(output_dir.resolve()),
        }
        if mlflow_parent_run_id:
            run_tags["mlflow.parentRunId"] = mlflow_parent_run_id
        run_tags.update(tags or {})
        if run_id is None:
            run = mlflow.start_run(
                experiment_id=experiment_id, run_name=output_dir.name, tags=run_tags
            )
            run_id = run.info.run_id
            mlflow.log_params(
                {
                    k: json.dumps(v) if isinstance(v, (list, dict)) else v
                    for k, v in flatten(config.model_dump(mode="json")).items()
                }
            )
            mlflow.log_params(
                {
                    "n_parameters": count_parameters(model),
                    **{f"n_{s}": n for s, n in split.sizes().items()},
                    "n_skipped": len(data.skipped),
                }
            )
            mlflow.log_artifact(str(output_dir / CONFIG_FILE))
        else:
            mlflow.start_run(run_id=run_id)

    patience_left = config.patience
    if config.patience and history:
        patience_left = config.patience - (history[-1]["epoch"] - best["epoch"])
    validating = len(split.val) > 0  # False for a train+val refit
    scored = "val" if validating else "train"
    started = time.perf_counter()
    try:
        with _stop_requests() as stop:
            bar = tqdm(
                range(start_epoch, config.epochs + 1),
                desc="training",
                unit="epoch",
                disable=not progress,
                initial=start_epoch - 1,
                total=config.epochs,
            )
            for epoch in bar:
                epoch_start = time.perf_counter()
                model.train()
                order = torch.randperm(len(split.train), generator=shuffler)
                losses, abs_errors, counts = (
                    [],
                    torch.zeros(len(config.targets)),
                    torch.zeros(len(config.targets)),
                )
                for step in range(steps_per_epoch):
                    batch = order[step * config.batch_size : (step + 1) * config.batch_size]
                    if len(batch) < 2:  # batch norm needs two crystals
                        continue
                    truth = train_targets[batch]
                    optimizer.zero_grad()
                    pred, loss = backward_multitask(
                        model, train_store.batch(batch), truth, config.loss, config.task_gradients
                    )
                    optimizer.step()
                    scheduler.step()
                    if averaged is not None:
                        averaged.update_parameters(model)
                    losses.append(loss.item())
                    _stop_if_requested(stop)
                    with torch.no_grad():
                        mask = ~torch.isnan(truth)
                        diff = (pred.detach() - truth.nan_to_num()).abs() * mask
                        abs_errors += diff.sum(0) * torch.tensor(transform.std, dtype=torch.float32)
                        counts += mask.sum(0)
                if validating:
                    val_metrics, _ = evaluate(evaluated, store, split.val, transform, targets_gpa)
                row = {
                    "epoch": epoch,
                    "train_loss": float(np.mean(losses)),
                    "lr": optimizer.param_groups[0]["lr"],
                    "epoch_seconds": time.perf_counter() - epoch_start,
                }
                for column, target in enumerate(config.targets):
                    row[f"train_{target}_mae_log10"] = float(abs_errors[column] / counts[column])
                    if validating:
                        row[f"val_{target}_mae_log10"] = val_metrics[f"{target}_mae_log10"]
                score = target_score(
                    [row[f"{scored}_{t}_mae_log10"] for t in config.targets], config.target_score
                )
                row[f"{scored}_mae_log10"] = score
                history.append(row)
                if score < best["score"] or not validating:
                    best = {
                        "score": score,
                        "epoch": epoch,
                        "state": {k: v.clone() for k, v in evaluated.state_dict().items()},
                    }
                    patience_left = config.patience
                elif patience_left is not None:
                    patience_left -= 1
                _save_checkpoint(
                    output_dir / CHECKPOINT,
                    {
                        "epoch": epoch,
                        "model": model.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(),
                        "shuffler": shuffler.get_state(),
                        "torch_rng": torch.get_rng_state(),
                        "averaged": averaged.state_dict() if averaged is not None else None,
                        "history": history,
                        "best": best,
                        "run_id": run_id,
                    },
                )
                if mlflow:
                    mlflow.log_metrics(
                        {f"{EPOCH_PREFIX}{k}": v for k, v in row.items() if k != "epoch"},
                        step=epoch,
                    )
                postfix = {"loss": f"{row['train_loss']:.3f}", f"{scored}_mae": f"{score:.4f}"}
                if validating:
                    postfix["best"] = f"{best['score']:.4f}@{best['epoch']}"
                bar.set_postfix(postfix)
                _stop_if_requested(stop)
                if on_epoch is not None:
                    on_epoch(epoch, row)
                if patience_left is not None and patience_left <= 0:
                    log(
                        f"early stop at epoch {epoch}: no better validation MAE for "
                        f"{config.patience} epochs"
                    )
                    break
    except StopTraining as request:
        if mlflow:
            mlflow.set_tag("zoo.stopped", str(request))
            mlflow.end_run(status="FINISHED")
        raise
    except KeyboardInterrupt:
        if mlflow:
            mlflow.end_run(status="KILLED")
        log(
            f"interrupted; the last finished epoch is saved. Continue with: "
            f"zoo train --resume {output_dir}"
        )
        raise
    except BaseException:
        if mlflow:
            mlflow.end_run(status="FAILED")
        raise
    train_seconds = time.perf_counter() - started

    model.load_state_dict(best["state"])
    metrics: dict[str, float] = {
        "best_epoch": best["epoch"],
        "train_seconds": train_seconds,
        "epochs_run": len(history),
    }
    frames = []
    for name in SPLITS:
        indices = getattr(split, name)
        split_metrics, pred = evaluate(model, store, indices, transform, targets_gpa)
        metrics.update({f"{name}_{k}": v for k, v in split_metrics.items()})
        frame = pd.DataFrame({"id": [store.ids[i] for i in indices], "split": name})
        for column, target in enumerate(config.targets):
            frame[f"{target}_true_gpa"] = targets_gpa[indices, column]
            frame[f"{target}_pred_gpa"] = 10.0 ** pred[:, column]
        frames.append(frame)
    predictions = pd.concat(frames, ignore_index=True)
    predictions.to_csv(output_dir / PREDICTIONS_FILE, index=False)
    pd.DataFrame(history).to_csv(output_dir / "history.csv", index=False)
    pictures = [plots.learning_curve(history, config.targets, output_dir / "learning_curve.png")]
    for target in config.targets:
        test_mae = metrics.get(f"test_{target}_mae_gpa", float("nan"))
        pictures.append(
            plots.parity_plot(
                predictions,
                target,
                output_dir / f"parity_{target}.png",
                title=f"{config.model}: {target} modulus (test MAE {test_mae:.1f} GPa)",
            )
        )
    (output_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    bundle = bundle_from_model(
        model,
        config.model,
        config.graph,
        transform,
        data.element_table,
        train_config=config.model_dump(mode="json"),
        metrics=metrics,
    )
    bundle_path = bundle.save(output_dir / f"model{BUNDLE_SUFFIX}")
    if mlflow:
        mlflow.log_metrics(
            {
                k: float(v)
                for k, v in metrics.items()
                if isinstance(v, (int, float)) and math.isfinite(v)
            }
        )
        for path in [
            *pictures,
            output_dir / PREDICTIONS_FILE,
            output_dir / "history.csv",
            output_dir / "metrics.json",
        ]:
            mlflow.log_artifact(str(path))
        if (output_dir / "skipped.csv").exists():
            mlflow.log_artifact(str(output_dir / "skipped.csv"))
        mlflow.log_artifact(str(bundle_path), artifact_path="model")
        mlflow.end_run(status="FINISHED")
    return TrainResult(
        output_dir, bundle_path, run_id, metrics, history, best["epoch"], data.skipped
    )
