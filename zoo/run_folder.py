"""A training run's folder and its record, written so that a kill at any instant leaves a
folder that says what happened and that ``zoo train --resume`` continues.

Files (all written with :func:`zoo.files.atomic_write`):

- ``config.yaml``: the resolved config, written before anything else;
- ``run.json``: the record: ``status`` (RUNNING, FINISHED, FAILED, KILLED, STOPPED), the MLflow
  ``run_id`` (once there is one), the ``owner`` process (:mod:`zoo.processes`), the ``error``
  of a failed run and when the record was last ``updated``. A RUNNING record whose owner is
  gone was killed (SIGKILL, a lost machine): :func:`read_record` says so;
- ``last.pt``: the checkpoint after the last finished epoch (model, optimiser, history...);
- ``history.csv``: one row per finished epoch, rewritten after every epoch;
- at the end: ``metrics.json``, ``predictions.csv``, plots and the model bundle.
"""

from __future__ import annotations

import json
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

from zoo.faults import failpoint
from zoo.files import atomic_write, remove_stale_partials
from zoo.processes import owner_is_gone, owner_token

CONFIG_FILE = "config.yaml"
RECORD_FILE = "run.json"
CHECKPOINT = "last.pt"
HISTORY_FILE = "history.csv"
METRICS_FILE = "metrics.json"

RUNNING, FINISHED, FAILED, KILLED, STOPPED = "RUNNING", "FINISHED", "FAILED", "KILLED", "STOPPED"


def free_run_dir(output_dir: str | Path, name: str) -> Path:
    """``output_dir/name``, or ``name-2``, ``name-3``... if that is taken (nothing created)."""
    path = Path(output_dir) / name
    suffix = 1
    while path.exists():
        suffix += 1
        path = Path(output_dir) / f"{name}-{suffix}"
    return path


def start_run_folder(path: Path, config_yaml: str) -> Path:
    """The run folder with its config, made in one step: built under a temporary name beside
    it and renamed into place, so that a folder either does not exist or holds its config
    (a kill before that leaves nothing but a temporary folder, which a later call removes).
    Idempotent: an existing folder keeps its config (one without, made by hand, gets it)."""
    import uuid

    if (path / CONFIG_FILE).exists():
        return path
    if path.is_dir():
        write_text(path / CONFIG_FILE, config_yaml)
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_partials(path.parent)
    partial = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:12]}.part")
    partial.mkdir()
    write_text(partial / CONFIG_FILE, config_yaml)
    failpoint("folder-part")
    try:
        os.rename(partial, path)
    except OSError:  # another process made it first: theirs stands
        shutil.rmtree(partial, ignore_errors=True)
    return path


def write_text(path: Path, text: str) -> None:
    with atomic_write(path) as partial:
        partial.write_text(text)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _orphaned(record: dict) -> bool:
    """A RUNNING record whose owner process is gone (killed: SIGKILL, a lost machine)."""
    return record.get("status") == RUNNING and owner_is_gone(record.get("owner"))


def read_record(path: Path) -> dict:
    """The folder's record (an empty dict when there is none yet). A RUNNING record whose
    owner process is gone reads as KILLED."""
    try:
        record = json.loads((path / RECORD_FILE).read_text())
    except FileNotFoundError:
        return {}
    if _orphaned(record):
        record["status"] = KILLED
    return record


def write_record(path: Path, status: str, **fields) -> dict:
    """Update the record: ``status``, this process as owner, the time, and ``fields``."""
    record = read_record(path)
    record.update(
        fields,
        status=status,
        owner=owner_token(),
        updated=_now(),
    )
    if status != FAILED:
        record.pop("error", None)
    write_text(path / RECORD_FILE, json.dumps(record, indent=2))
    return record


def mark_if_orphaned(path: Path) -> bool:
    """Write KILLED into a folder whose RUNNING record's owner is gone; True if it did."""
    try:
        raw = json.loads((path / RECORD_FILE).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return False
    if not _orphaned(raw):
        return False
    raw.update(status=KILLED, updated=_now())
    write_text(path / RECORD_FILE, json.dumps(raw, indent=2))
    return True
