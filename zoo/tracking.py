"""MLflow glue: where runs go and how they are named.

By default runs are tracked in ``sqlite:///<cwd>/mlruns/mlflow.db``; MLflow keeps each
experiment's artifacts beside it, under ``<cwd>/mlruns/<experiment id>/``.
``MLFLOW_TRACKING_URI`` overrides the store.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

MLRUNS = Path("mlruns")


SQLITE_TIMEOUT_SECONDS = 60
"""How long a writer waits for another process's lock on the SQLite store before failing."""


def tracking_uri() -> str:
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    folder = MLRUNS.resolve()
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'mlflow.db'}?timeout={SQLITE_TIMEOUT_SECONDS}"


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
