"""Where studies live, and how trials of killed workers are taken back.

Storage URLs:

- none given: ``sqlite:///<cwd>/mlruns/optuna/<study>.db`` (one file per study, beside the
  MLflow store);
- ``journal:PATH``: Optuna's journal file (append-only, file-locked; good for several processes on
  one machine or on a shared file system);
- any SQLAlchemy URL (``sqlite:///...``, ``postgresql://user:pass@host/db``,
  ``mysql+pymysql://...``): an Optuna RDB storage; a server database is how workers on several
  machines share one study.

Every trial records its owner process (host, pid and the pid's start time, so a recycled pid is
not mistaken for the owner). When a worker is killed, its running trial is taken back in one of
two ways: on this host, the next ``zoo tune`` of the study sees that the owner is gone; on other
hosts, RDB storages run a heartbeat and Optuna fails trials whose heartbeat stopped. Either way
the trial is marked failed and re-queued with the same parameters and a pointer to the old
trial, whose run folder then *continues* from its last epoch (``zoo train --resume``): nothing
computed is lost and no trial is run twice.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial, TrialState

from zoo.processes import owner_is_gone

HEARTBEAT_SECONDS = 60
GRACE_FACTOR = 3
OWNER_ATTR = "zoo.owner"
RESUME_ATTR = "zoo.resume_of"
OUTPUT_ATTR = "zoo.output_dir"
INTERRUPTED_ATTR = "zoo.interrupted"


def default_storage_url(study_name: str) -> str:
    folder = Path("mlruns/optuna").resolve()
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / (study_name + '.db')}"


def open_storage(url: str | None, study_name: str, heartbeat: float = HEARTBEAT_SECONDS):
    """An Optuna storage for ``url`` (see the module docstring); RDB storages send a heartbeat
    every ``heartbeat`` seconds and a trial silent for three heartbeats is taken back."""
    url = url or default_storage_url(study_name)
    if url.startswith("journal:"):
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        path = Path(url.removeprefix("journal:")).resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    engine_kwargs = {}
    if url.startswith("sqlite:"):
        # several local workers write to one file: wait for the lock instead of failing
        engine_kwargs = {"connect_args": {"timeout": 60}}
    from zoo.tracking import create_sqlite_once, first_use_lock, sqlite_path

    def storage(at: str) -> optuna.storages.RDBStorage:
        return optuna.storages.RDBStorage(
            at,
            engine_kwargs=engine_kwargs,
            heartbeat_interval=max(1, round(heartbeat)),
            grace_period=max(2, round(GRACE_FACTOR * heartbeat)),
            heartbeat_stale_trial_callback=requeue,
        )

    with warnings.catch_warnings(), first_use_lock(url):  # tables are created on first use
        # the heartbeat is flagged experimental since Optuna 2.9
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if sqlite_path(url) is not None:  # created whole or not at all
            create_sqlite_once(sqlite_path(url), lambda at: storage(at).engine.dispose())
        return _first_of_racing_workers(lambda: storage(url))


def _first_of_racing_workers(make, attempts: int = 6):
    """``make()``, retried when it fails because another machine's worker was creating the
    same tables at that moment (a database server has no file lock to wait on)."""
    import random
    import time

    from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

    for attempt in range(attempts):
        try:
            return make()
        except (IntegrityError, ProgrammingError, OperationalError):
            if attempt == attempts - 1:
                raise
            time.sleep(0.5 + random.random())


def requeue(study: optuna.Study, trial: FrozenTrial) -> None:
    """Queue a trial that will continue the failed ``trial`` (same parameters, same run folder)."""
    if any(t.user_attrs.get(RESUME_ATTR) == trial.number for t in study.get_trials(deepcopy=False)):
        return
    study.enqueue_trial(
        trial.params,
        user_attrs={RESUME_ATTR: trial.number, OUTPUT_ATTR: trial.user_attrs.get(OUTPUT_ATTR)},
        skip_if_exists=False,
    )


def take_back_interrupted(study: optuna.Study) -> list[int]:
    """Fail the running trials whose owner process on this host is gone, and re-queue those and
    the trials that were interrupted (Ctrl-C, SIGTERM) so they continue. Returns their numbers."""
    taken = []
    storage = study._storage
    for trial in study.get_trials(deepcopy=False):
        token = trial.user_attrs.get(OWNER_ATTR)
        if trial.state == TrialState.RUNNING and token and owner_is_gone(token):
            try:
                storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)
            except optuna.exceptions.UpdateFinishedTrialError:
                continue  # another worker took it first
            taken.append(trial.number)
        elif trial.state == TrialState.FAIL and trial.user_attrs.get(INTERRUPTED_ATTR):
            taken.append(trial.number)
    by_number = {t.number: t for t in study.get_trials(deepcopy=False)}
    for number in taken:
        requeue(study, by_number[number])
    return taken
