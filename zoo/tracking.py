"""MLflow glue: where runs go and how they are named.

By default runs are tracked in ``sqlite:///<cwd>/mlruns/mlflow.db``; MLflow keeps each
experiment's artifacts beside it, under ``<cwd>/mlruns/<experiment id>/``.
``MLFLOW_TRACKING_URI`` overrides the store.
"""

from __future__ import annotations

import os
from pathlib import Path

MLRUNS = Path("mlruns")


def tracking_uri() -> str:
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    folder = MLRUNS.resolve()
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'mlflow.db'}"


def setup(experiment: str) -> str:
    """Point MLflow at the store and return the id of ``experiment`` (created if new)."""
    import logging

    import mlflow

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    mlflow.set_tracking_uri(tracking_uri())
    found = mlflow.get_experiment_by_name(experiment)
    if found is not None:
        return found.experiment_id
    return mlflow.create_experiment(experiment)
