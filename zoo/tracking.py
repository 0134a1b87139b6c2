"""MLflow glue: where runs go and how they are named.

By default runs are tracked in ``sqlite:///<cwd>/mlruns/mlflow.db``; MLflow keeps each
experiment's artifacts beside it, under ``<cwd>/mlruns/<experiment id>/``.
``MLFLOW_TRACKING_URI`` overrides the store.
"""

from __future__ import annotations

import contextlib
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


def sqlite_path(uri: str) -> Path | None:
    """The file of a ``sqlite:///`` URI (None for other stores)."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri.removeprefix("sqlite:///").split("?", 1)[0])


def create_sqlite_once(path: Path, initialise) -> None:
    """Create the SQLite database ``path`` so that no process ever sees half of it: unless it
    exists, ``initialise(url)`` builds it in a temporary file that then replaces ``path`` in one
    step, in write-ahead-logging mode (readers such as ``zoo ui`` and writers do not block each
    other). MLflow creates its tables and then stamps their version in separate steps; a kill
    in between left a store that every later process refused ("table ... already exists").
    Call under :func:`first_use_lock`."""
    import sqlite3

    from zoo.files import atomic_write

    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as partial:
        initialise(f"sqlite:///{partial}")
        with sqlite3.connect(partial, timeout=SQLITE_TIMEOUT_SECONDS) as connection:
            connection.execute("PRAGMA journal_mode=WAL")
        for leftover in partial.parent.glob(f"{partial.name}-*"):  # -wal, -shm once closed
            leftover.unlink(missing_ok=True)


def _initialise_mlflow_store(url: str) -> None:
    from mlflow.store.tracking import DEFAULT_LOCAL_FILE_AND_ARTIFACT_PATH
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    store = SqlAlchemyStore(url, str(Path(DEFAULT_LOCAL_FILE_AND_ARTIFACT_PATH).resolve()))
    store.engine.dispose()


def ensure_store(uri: str) -> None:
    """A SQLite tracking store exists and is whole (:func:`create_sqlite_once`). A store whose
    creation was cut short (by an older zoo, or MLflow itself: its schema is not at MLflow's
    latest version and it holds no run and no registered model, so nothing is lost) is moved
    aside to ``mlflow.db.unfinished-<time>`` and made anew."""
    path = sqlite_path(uri)
    if path is None:
        return
    with first_use_lock(uri):
        if path.exists() and _unfinished(path):
            aside = path.with_name(f"{path.name}.unfinished-{int(time.time())}")
            for suffix in ("-journal", "-wal", "-shm"):  # its own, never the new store's
                sidecar = path.with_name(path.name + suffix)
                if sidecar.exists():
                    sidecar.rename(aside.with_name(aside.name + suffix))
            path.rename(aside)
            print(f"MLflow store {path} was never finished (a kill while it was created); "
                  f"moved to {aside.name} and made anew")  # fmt: skip
        create_sqlite_once(path, _initialise_mlflow_store)


def _unfinished(path: Path) -> bool:
    """True for a store that is not at MLflow's latest schema and holds nothing."""
    import sqlite3

    from mlflow.store.db.utils import _get_latest_schema_revision

    with sqlite3.connect(path, timeout=SQLITE_TIMEOUT_SECONDS) as connection:

        def count(query: str) -> int:
            try:
                return connection.execute(query).fetchone()[0]
            except sqlite3.OperationalError:  # no such table
                return 0

        try:
            (version,) = connection.execute("SELECT version_num FROM alembic_version").fetchone()
        except (sqlite3.OperationalError, TypeError):
            version = None
        if version == _get_latest_schema_revision():
            return False
        return (
            count("SELECT count(*) FROM runs") + count("SELECT count(*) FROM registered_models")
            == 0
        )


def quiet_logging() -> None:
    """MLflow's and its database migrations' INFO chatter off, and its artifact download bars
    (a registry model is downloaded before every prediction)."""
    import logging

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)


@contextmanager
def first_use_lock(uri: str):
    """Serialise the first contact of several processes with one SQLite database: its tables
    are created then. Other stores need no lock."""
    path = sqlite_path(uri)
    if path is None:
        yield
        return
    from filelock import FileLock

    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(f"{path}.lock"):
        yield


EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
MODEL_TRAINING_KIND = "custom_model_development"
"""The experiment kind that opens MLflow 3's UI in its model-training view (runs, metrics,
models), not its GenAI view (traces, prompts)."""


def setup(experiment: str) -> str:
    """Point MLflow at the store (created whole if new) and return the id of ``experiment``
    (created if new), tagged as a model-training experiment (:data:`MODEL_TRAINING_KIND`; an
    older experiment gets the tag too)."""
    import mlflow

    quiet_logging()
    uri = tracking_uri()
    ensure_store(uri)
    mlflow.set_tracking_uri(uri)
    with first_use_lock(uri):
        found = mlflow.get_experiment_by_name(experiment)
        if found is None:
            return mlflow.create_experiment(
                experiment, tags={EXPERIMENT_KIND_TAG: MODEL_TRAINING_KIND}
            )
        if found.tags.get(EXPERIMENT_KIND_TAG) != MODEL_TRAINING_KIND:
            mlflow.MlflowClient().set_experiment_tag(
                found.experiment_id, EXPERIMENT_KIND_TAG, MODEL_TRAINING_KIND
            )
        return found.experiment_id


PARENT_TAG = "mlflow.parentRunId"
"""The tag that nests a run under its parent in MLflow (a trial under its study)."""
OWNER_TAG = "zoo.owner"
OUTPUT_TAG = "zoo.output_dir"
FOLDER_ID_TAG = "zoo.folder_id"
"""A run folder's identity, made once with its record (a path can be reused after a delete)."""
RUN_NAME_TAG = "mlflow.runName"
DESCRIPTION_TAG = "mlflow.note.content"
"""MLflow shows this tag as the run's description."""


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


def open_parent_run(
    experiment: str,
    run_id: str | None,
    *,
    name: str,
    tags: dict[str, str],
    params: dict,
    texts: dict[str, str],
) -> str:
    """The parent run that nested runs name as ``mlflow.parentRunId`` (a tuning study, a
    benchmark's folds): reopened (RUNNING, this process its owner) when ``run_id`` is given,
    else created with ``tags``, ``params`` and text artifacts ``texts`` (file name -> text).
    It is closed by whoever summarises it (``MlflowClient().set_terminated``); if its process
    dies first, :func:`close_orphaned_runs` marks it KILLED."""
    from mlflow import MlflowClient
    from mlflow.entities import Param

    from zoo.processes import owner_token

    experiment_id = setup(experiment)
    close_orphaned_runs(experiment_id)
    client = MlflowClient()
    if run_id is not None:
        client.update_run(run_id, status="RUNNING")
        client.set_tag(run_id, OWNER_TAG, owner_token())
        return run_id
    name = unique_run_name(experiment_id, name)
    run = client.create_run(experiment_id, run_name=name, tags={**tags, OWNER_TAG: owner_token()})
    run_id = run.info.run_id
    client.log_batch(run_id, params=[Param(k, _param_text(v)) for k, v in params.items()])
    for file_name, text in texts.items():
        client.log_text(run_id, text, file_name)
    return run_id


def unique_run_name(experiment_id: str, name: str) -> str:
    """``name``, or ``name #2``, ``#3``, ... when runs of the experiment have it already, so
    that two runs never share a name (two processes naming a run in the same instant could
    still; zoo's parallel runs, tuning trials, have numbered names)."""
    from mlflow import MlflowClient
    from mlflow.entities import ViewType

    name = name or "run"
    prefix = name.split("'")[0]  # a quote cannot be escaped in a filter: search by the rest
    taken = {
        run.info.run_name
        for run in MlflowClient().search_runs(
            [experiment_id],
            f"attributes.run_name LIKE '{prefix}%'",
            run_view_type=ViewType.ALL,  # deleted runs keep their names too
            max_results=50_000,
        )
    }
    number = 1
    while (candidate := name if number == 1 else f"{name} #{number}") in taken:
        number += 1
    return candidate


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

        run_id = run_id or self._find_run(tags.get(FOLDER_ID_TAG))
        tags = {**tags, OUTPUT_TAG: self.output_dir, OWNER_TAG: owner_token()}
        if run_id is None:
            given = tags.get(RUN_NAME_TAG) or Path(self.output_dir).name
            name = unique_run_name(self.experiment_id, given)
            tags[RUN_NAME_TAG] = name
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

    def _find_run(self, folder_id: str | None) -> str | None:
        """The run of this folder: same path and, when given, the same folder id (so a new
        folder made where a deleted one was never adopts the old folder's run)."""
        query = f"tags.`{OUTPUT_TAG}` = '{self.output_dir}'"
        if folder_id:
            query += f" and tags.`{FOLDER_ID_TAG}` = '{folder_id}'"
        found = self.client.search_runs([self.experiment_id], query, max_results=1)
        return found[0].info.run_id if found else None

    def log_dataset(self, source: str, ids: list[str]) -> None:
        """The training data as the run's MLflow dataset input (context ``training``), so that
        the runs table's Dataset column names it: the file's name (or the built-in set's), its
        path as the source, and a digest of the entry ids trained on. Logged once per run."""
        import hashlib
        import warnings

        from mlflow.data.code_dataset_source import CodeDatasetSource
        from mlflow.data.dataset_source_registry import resolve_dataset_source
        from mlflow.data.meta_dataset import MetaDataset
        from mlflow.entities import DatasetInput, InputTag

        if self.client.get_run(self.run_id).inputs.dataset_inputs:
            return  # a resumed run has it already
        path = source.split(":")[0]
        origin = CodeDatasetSource({"zoo.data": source})  # the built-in set, data in memory
        if Path(path).exists():
            with warnings.catch_warnings():  # MLflow registers the local source twice
                warnings.simplefilter("ignore")
                with contextlib.suppress(Exception):  # no source type for it: the text stays
                    origin = resolve_dataset_source(str(Path(path).resolve()))
        digest = hashlib.sha256("\n".join(ids).encode()).hexdigest()[:16]
        dataset = MetaDataset(source=origin, name=Path(path).name or source, digest=digest)
        context = InputTag("mlflow.data.context", "training")
        self.client.log_inputs(
            self.run_id, datasets=[DatasetInput(dataset._to_mlflow_entity(), tags=[context])]
        )

    def describe(self, text: str) -> None:
        """The run's description (the note MLflow shows on the run page)."""
        self.client.set_tag(self.run_id, DESCRIPTION_TAG, text)

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

    def describe(self, text):
        pass

    def log_dataset(self, source, ids):
        pass

    def log_final(self, metrics, artifacts, model_artifacts):
        pass

    def end(self, status, reason=None):
        pass


def _param_text(value) -> str:
    import json

    return json.dumps(value) if isinstance(value, (list, dict)) else str(value)
