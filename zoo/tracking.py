"""MLflow glue: where runs go and how they are named.

By default runs are tracked in ``sqlite:///<cwd>/mlruns/mlflow.db``; MLflow keeps each
experiment's artifacts beside it, under ``<cwd>/mlruns/<experiment id>/``.
``MLFLOW_TRACKING_URI`` overrides the store.
"""

from __future__ import annotations

import math
import os
import time
from contextlib import contextmanager
from pathlib import Path

MLRUNS = Path("mlruns")


SQLITE_TIMEOUT_SECONDS = 60
"""How long a writer waits for another process's lock on the SQLite store before failing."""


def tracking_uri(create: bool = True) -> str:
    """``$MLFLOW_TRACKING_URI``, else the SQLite store ``./mlruns/mlflow.db`` (its folder is
    created unless ``create`` is False)."""
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    folder = MLRUNS.resolve()
    if create:
        folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'mlflow.db'}?timeout={SQLITE_TIMEOUT_SECONDS}"


def default_store_missing() -> bool:
    """True when no tracking URI is set and ``./mlruns/mlflow.db`` does not exist."""
    return not os.environ.get("MLFLOW_TRACKING_URI") and not (MLRUNS / "mlflow.db").exists()


def _enable_wal(uri: str) -> None:
    """Write-ahead logging on a SQLite store, so that readers (``zoo ui``, a second training or
    tuning process) do not block the process that logs, and vice versa. Persistent per file."""
    import sqlite3

    if not uri.startswith("sqlite:///"):
        return
    path = uri.removeprefix("sqlite:///").split("?", 1)[0]
    with sqlite3.connect(path, timeout=SQLITE_TIMEOUT_SECONDS) as connection:
        connection.execute("PRAGMA journal_mode=WAL")


def quiet_logging() -> None:
    """MLflow's and its database migrations' INFO chatter off."""
    import logging

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)


@contextmanager
def first_use_lock(uri: str):
    """Serialise the first contact of several processes with one SQLite store: MLflow creates
    and migrates the tables then, and two processes migrating at once fail ("duplicate column
    name"). Other stores need no lock."""
    if not uri.startswith("sqlite:///"):
        yield
        return
    import fcntl

    path = uri.removeprefix("sqlite:///").split("?", 1)[0] + ".lock"
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def setup(experiment: str) -> str:
    """Point MLflow at the store and return the id of ``experiment`` (created if new)."""
    import mlflow

    quiet_logging()
    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    with first_use_lock(uri):
        found = mlflow.get_experiment_by_name(experiment)
        if found is not None:
            return found.experiment_id
        experiment_id = mlflow.create_experiment(experiment)
        _enable_wal(uri)
    return experiment_id


OWNER_TAG = "zoo.owner"
OUTPUT_TAG = "zoo.output_dir"


def close_orphaned_runs(experiment_id: str) -> list[str]:
    """Mark KILLED every RUNNING run of the experiment whose owner process (tag
    :data:`OWNER_TAG`) is gone, and its run folder's record too. Returns their ids. Called
    whenever a run starts, so no run stays RUNNING after its process died once zoo runs again."""
    from mlflow import MlflowClient

    from zoo.processes import owner_is_gone
    from zoo.run_folder import mark_if_orphaned

    client = MlflowClient()
    closed = []
    for run in client.search_runs([experiment_id], "attributes.status = 'RUNNING'"):
        if owner_is_gone(run.data.tags.get(OWNER_TAG)):
            client.set_terminated(run.info.run_id, status="KILLED")
            closed.append(run.info.run_id)
            folder = run.data.tags.get(OUTPUT_TAG)
            if folder:
                mark_if_orphaned(Path(folder))
    return closed


class RunLogger:
    """Every MLflow call of one training run. :class:`NoRunLogger` is the same without MLflow.

    A run is found again by its folder (tag :data:`OUTPUT_TAG`), so a resumed run logs into the
    run it started, whenever the kill came; what a resume logs again (parameters, final
    metrics, epochs) is logged only where missing, so every record is there exactly once.
    """

    def __init__(self, experiment: str, output_dir: Path):
        from mlflow import MlflowClient

        self.experiment_id = setup(experiment)
        self.output_dir = str(Path(output_dir).resolve())
        self.client = MlflowClient()
        self.run_id: str | None = None
        close_orphaned_runs(self.experiment_id)

    def start(self, run_id: str | None, params: dict, tags: dict, artifacts: list[Path]) -> str:
        """Open (or reopen) the run and log ``params``, ``tags`` and ``artifacts``."""
        from mlflow.entities import Param, RunTag

        from zoo.processes import owner_token

        run_id = run_id or self._find_run()
        tags = {**tags, OUTPUT_TAG: self.output_dir, OWNER_TAG: owner_token()}
        if run_id is None:
            name = Path(self.output_dir).name
            run_id = self.client.create_run(self.experiment_id, run_name=name, tags=tags)
            run_id = run_id.info.run_id
        else:
            self.client.update_run(run_id, status="RUNNING")
        self.run_id = run_id
        self.client.log_batch(
            run_id,
            params=[Param(k, _param_text(v)) for k, v in params.items()],
            tags=[RunTag(k, str(v)) for k, v in tags.items()],
        )
        for path in artifacts:
            self.client.log_artifact(run_id, str(path))
        return run_id

    def _find_run(self) -> str | None:
        found = self.client.search_runs(
            [self.experiment_id], f"tags.`{OUTPUT_TAG}` = '{self.output_dir}'", max_results=1
        )
        return found[0].info.run_id if found else None

    def log_epoch(self, row: dict, prefix: str) -> None:
        self._log_metrics({f"{prefix}{k}": v for k, v in row.items() if k != "epoch"}, row["epoch"])

    def fill_epochs(self, history: list[dict], prefix: str) -> int:
        """Log the epochs of ``history`` that the run lacks (a kill between a checkpoint and its
        MLflow call); returns how many rows were logged."""
        logged: dict[str, set[int]] = {}
        filled = 0
        for row in history:
            missing = {}
            for key, value in row.items():
                if key == "epoch":
                    continue
                name = f"{prefix}{key}"
                if name not in logged:
                    history_of = self.client.get_metric_history(self.run_id, name)
                    logged[name] = {m.step for m in history_of}
                if row["epoch"] not in logged[name]:
                    missing[name] = value
            if missing:
                self._log_metrics(missing, row["epoch"])
                filled += 1
        return filled

    def log_final(self, metrics: dict, artifacts: list[Path], model_artifacts: list[Path]) -> None:
        """Final metrics (those not logged with the same value yet) and the run's files."""
        current = self.client.get_run(self.run_id).data.metrics
        finite = {
            k: float(v)
            for k, v in metrics.items()
            if isinstance(v, (int, float)) and math.isfinite(v) and current.get(k) != float(v)
        }
        self._log_metrics(finite, 0)
        for path in artifacts:
            self.client.log_artifact(self.run_id, str(path))
        for path in model_artifacts:
            self.client.log_artifact(self.run_id, str(path), artifact_path="model")

    def end(self, status: str, reason: str | None = None) -> None:
        """Close the run: FINISHED, KILLED or FAILED; ``reason`` becomes the tag zoo.stopped."""
        if reason:
            self.client.set_tag(self.run_id, "zoo.stopped", reason)
        self.client.set_terminated(self.run_id, status=status)

    def _log_metrics(self, values: dict, step: int) -> None:
        from mlflow.entities import Metric

        if not values:
            return
        stamp = int(time.time() * 1000)
        metrics = [Metric(k, float(v), stamp, step) for k, v in values.items()]
        for start in range(0, len(metrics), 900):  # MLflow takes at most 1000 per batch
            self.client.log_batch(self.run_id, metrics=metrics[start : start + 900])


class NoRunLogger:
    """The run logger of an untracked run: every call does nothing."""

    run_id = None

    def start(self, run_id, params, tags, artifacts):
        return None

    def log_epoch(self, row, prefix):
        pass

    def fill_epochs(self, history, prefix):
        return 0

    def log_final(self, metrics, artifacts, model_artifacts):
        pass

    def end(self, status, reason=None):
        pass


def _param_text(value) -> str:
    import json

    return json.dumps(value) if isinstance(value, (list, dict)) else str(value)
