"""Matbench v0.1's protocol for the two elastic tasks: the task tables, the official folds and
the results file in the format the matbench package writes.

A task table is one or two Matbench files (``matbench_log_gvrh``, ``matbench_log_kvrh``, or a
subset of their rows in the same format, as matminer writes them). Every entry keeps its row in
the official table, so its test fold is the official one even when a file holds only some rows:
``KFold(5, shuffle=True, random_state=18012019)`` over the 10,987 rows in official order.
"""

from __future__ import annotations

import datetime
import gzip
import hashlib
import json
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from zoo.files import atomic_write
from zoo.readers.jsonfiles import load_json
from zoo.readers.matbench import COLUMN_TO_TARGET, TASKS, is_matbench_payload

OFFICIAL_ROWS = 10_987
"""Rows of the official ``matbench_log_gvrh`` and ``matbench_log_kvrh`` tables (same crystals,
same order)."""

FOLDS = 5
BENCHMARK_NAME = "matbench_v0.1"
MATBENCH_VERSION = "0.6"
"""The matbench package version whose results-file layout :func:`results_document` follows."""

TASK_OF_TARGET = {target: task for task, (_, target, _) in TASKS.items()}
"""zoo target -> Matbench task name."""


def task_names(task: str) -> list[str]:
    """``both`` -> the two elastic tasks; a task name -> itself (checked)."""
    if task == "both":
        return list(TASKS)
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; known: {', '.join([*TASKS, 'both'])}")
    return [task]


def mbid(task: str, row: int) -> str:
    """Matbench id of ``row`` (0-based) of ``task``: ``mb-log-gvrh-00001``."""
    return f"mb-{TASKS[task][2]}-{row + 1:05d}"


@dataclass
class TaskTable:
    """The entries of one or two Matbench elastic tasks, joined by row.

    Attributes:
        tasks: Matbench task names, e.g. ``["matbench_log_gvrh", "matbench_log_kvrh"]``.
        rows: int64 ``(n,)``, each entry's 0-based row in the official table, increasing.
        structures: ``n`` pymatgen structure dicts, as in the files.
        log_targets: zoo target (shear, bulk) -> float64 ``(n,)`` log10 of the modulus in GPa.
        sources: the files read.
    """

    tasks: list[str]
    rows: np.ndarray
    structures: list[dict]
    log_targets: dict[str, np.ndarray]
    sources: list[str]

    @property
    def targets(self) -> list[str]:
        return [TASKS[task][1] for task in self.tasks]

    @property
    def ids(self) -> list[str]:
        """Entry ids: the Matbench id for one task, ``mb-00001`` (the row) for both."""
        if len(self.tasks) == 1:
            return [mbid(self.tasks[0], int(row)) for row in self.rows]
        return [f"mb-{int(row) + 1:05d}" for row in self.rows]

    def folds(self) -> np.ndarray:
        """Official test fold of each entry, int64 ``(n,)`` in 0..4."""
        from zoo.splits import kfold_assignment

        return kfold_assignment(OFFICIAL_ROWS, FOLDS)[self.rows]

    def split_ids(self, fold: int, val_fraction: float) -> dict[str, list[str]]:
        """Ids per split for one fold: test = the official fold; of the rest a seeded
        ``val_fraction`` (seed 0, the same for every model of the fold) is the inner validation
        split and the others are trained on."""
        from zoo.splits import fold_split

        split = fold_split(self.folds(), fold, val_fraction, seed=0)
        ids = self.ids
        return {name: [ids[i] for i in getattr(split, name)] for name in ("train", "val", "test")}

    def dataset(self, skip_bad: bool = False):
        """The entries as a :class:`zoo.dataset.Dataset` (moduli in GPa); a structure that
        cannot be read is an error naming the entry, or skipped and reported."""
        from zoo.dataset import DatasetBuilder
        from zoo.readers.structures import parse_structure

        builder = DatasetBuilder(" + ".join(self.sources), self.targets, skip_bad=skip_bad)
        for position, entry in enumerate(self.ids):
            builder.add(
                entry,
                partial(parse_structure, self.structures[position]),
                {t: 10.0 ** self.log_targets[t][position] for t in self.targets},
            )
        return builder.build()


def read_task_file(path: str | Path) -> tuple[str, np.ndarray, list[dict], np.ndarray]:
    """One Matbench elastic file: its task, rows ``(n,)``, structure dicts and log10 targets."""
    payload = load_json(Path(path))
    if not is_matbench_payload(payload):
        raise ValueError(f"{path}: not a Matbench file (an object with index, columns, data)")
    columns = payload["columns"]
    if len(columns) != 2 or columns[0] != "structure" or columns[1] not in COLUMN_TO_TARGET:
        raise ValueError(f"{path}: columns {columns} are not those of an elastic Matbench task")
    task = TASK_OF_TARGET[COLUMN_TO_TARGET[columns[1]]]
    rows = np.asarray(payload["index"], dtype=np.int64)
    if len(rows) and (rows.min() < 0 or rows.max() >= OFFICIAL_ROWS):
        raise ValueError(f"{path}: row {int(rows.max())} is outside the official table")
    if len(np.unique(rows)) != len(rows):
        raise ValueError(f"{path}: a row appears twice in the index")
    order = np.argsort(rows, kind="stable")
    data = payload["data"]
    structures = [data[i][0] for i in order]
    values = np.array([np.nan if data[i][1] is None else data[i][1] for i in order], dtype=float)
    return task, rows[order], structures, values


def task_of_files(paths: list[str | Path]) -> str:
    """The task a benchmark of ``paths`` runs when none is named: the task of one file (read
    from its target column), else ``both``."""
    if len(paths) == 1:
        return read_task_file(paths[0])[0]
    return "both"


def read_task_table(task: str, paths: list[str | Path]) -> TaskTable:
    """The table of ``task`` (a task name or ``both``) from its file(s); for ``both`` the two
    files must hold the same rows with the same structures."""
    wanted = task_names(task)
    if len(paths) != len(wanted):
        raise ValueError(f"task {task} needs {len(wanted)} file(s), got {len(paths)}")
    read = {}
    for path in paths:
        name, rows, structures, values = read_task_file(path)
        if name not in wanted or name in read:
            raise ValueError(f"{path}: a {name} file, but task {task} needs {' and '.join(wanted)}")
        read[name] = (rows, structures, values, str(path))
    first = read[wanted[0]]
    for name in wanted[1:]:
        _check_same_rows(first, read[name])
    return TaskTable(
        tasks=wanted,
        rows=first[0],
        structures=first[1],
        log_targets={TASKS[name][1]: read[name][2] for name in wanted},
        sources=[read[name][3] for name in wanted],
    )


def _check_same_rows(first: tuple, other: tuple) -> None:
    """Two task files can be joined only if they hold the same rows and structures."""
    rows, structures, _, path = first
    other_rows, other_structures, _, other_path = other
    if not np.array_equal(rows, other_rows):
        only = sorted(set(rows.tolist()) ^ set(other_rows.tolist()))[:3]
        raise ValueError(
            f"{path} and {other_path} hold different rows (e.g. row(s) {only}); "
            "both tasks need the same entries"
        )
    for row, mine, theirs in zip(rows, structures, other_structures, strict=True):
        if mine != theirs:
            raise ValueError(f"row {int(row)} has different structures in {path} and {other_path}")


def regression_scores(true: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """The scores matbench records per fold (log10 GPa): mae, rmse, mape (entries with
    |true| > 1e-5), max_error; computed with scikit-learn."""
    from sklearn.metrics import max_error, mean_absolute_error, mean_squared_error

    keep = np.abs(true) > 1e-5
    return {
        "mae": float(mean_absolute_error(true, predicted)),
        "rmse": float(np.sqrt(mean_squared_error(true, predicted))),
        "mape": float(np.mean(np.abs((true[keep] - predicted[keep]) / true[keep]))),
        "max_error": float(max_error(true, predicted)),
    }


@dataclass
class FoldRecord:
    """One task's test predictions of one fold (log10 GPa), by Matbench id."""

    ids: list[str]
    true: np.ndarray
    predicted: np.ndarray
    std: np.ndarray | None = None
    parameters: dict | None = None


def _task_document(task: str, folds: dict[int, FoldRecord]) -> dict:
    results = {}
    for fold, record in sorted(folds.items()):
        uncertainty = None
        if record.std is not None:
            half = 1.959963984540054 * record.std  # the two-sided 95% interval matbench stores
            uncertainty = {
                entry: {"ci_lower": p - h, "ci_upper": p + h, "std": s}
                for entry, p, h, s in zip(
                    record.ids,
                    record.predicted.tolist(),
                    half.tolist(),
                    record.std.tolist(),
                    strict=True,
                )
            }
        results[f"fold_{fold}"] = {
            "data": dict(zip(record.ids, record.predicted.tolist(), strict=True)),
            "uncertainty": uncertainty,
            "parameters": record.parameters or {},
            "scores": regression_scores(record.true, record.predicted),
        }
    return {
        "@module": "matbench.task",
        "@class": "MatbenchTask",
        "dataset_name": task,
        "benchmark_name": BENCHMARK_NAME,
        "results": results,
    }


def _sorted_plain(value):
    """A nested value with every dict's keys sorted and tuples as lists (matbench's
    ``immutify_dictionary`` followed by ``json.dumps``)."""
    if isinstance(value, dict):
        return {key: _sorted_plain(value[key]) for key in sorted(value)}
    if isinstance(value, list | tuple):
        return list(value)
    return value


def document_hash(document: dict) -> str:
    """sha256 of the document without its hash, as matbench computes it."""
    body = {key: value for key, value in document.items() if key != "hash"}
    return hashlib.sha256(json.dumps(_sorted_plain(body)).encode("utf-8")).hexdigest()


def results_document(records: dict[str, dict[int, FoldRecord]], user_metadata: dict) -> dict:
    """A ``MatbenchBenchmark`` as the matbench package serialises it: per task and fold the
    test predictions by Matbench id, uncertainties, parameters and scores; then a hash."""
    document = {
        "@module": "matbench.bench",
        "@class": "MatbenchBenchmark",
        "version": MATBENCH_VERSION,
        "tasks": {task: _task_document(task, folds) for task, folds in records.items()},
        "user_metadata": user_metadata,
        "benchmark_name": BENCHMARK_NAME,
        "datestamp": datetime.datetime.now(datetime.UTC).strftime("%Y.%m.%d %H:%M.%S"),
    }
    document["hash"] = document_hash(document)
    return document


def write_results(path: str | Path, document: dict) -> Path:
    """Write ``results.json.gz`` (gzipped JSON) in one step."""
    path = Path(path)
    with atomic_write(path) as partial, gzip.open(partial, "wt", encoding="utf-8") as handle:
        json.dump(document, handle)
    return path


REQUIRED_KEYS = {"@module", "@class", "version", "benchmark_name", "tasks", "user_metadata",
                 "datestamp", "hash"}  # fmt: skip
TASK_KEYS = {"@module", "@class", "dataset_name", "results", "benchmark_name"}


def read_results(path: str | Path) -> dict:
    """A results file, checked the way ``MatbenchBenchmark.from_dict`` checks one: exactly
    the required keys, task names matching their entries, the benchmark name, the hash."""
    document = load_json(Path(path))
    if set(document) != REQUIRED_KEYS:
        raise ValueError(f"{path}: keys {sorted(document)} are not {sorted(REQUIRED_KEYS)}")
    for name, task in document["tasks"].items():
        if set(task) != TASK_KEYS or task["dataset_name"] != name:
            raise ValueError(f"{path}: task {name} is not a MatbenchTask record")
        if task["benchmark_name"] != document["benchmark_name"]:
            raise ValueError(f"{path}: task {name} belongs to another benchmark")
    if document_hash(document) != document["hash"]:
        raise ValueError(f"{path}: the hash does not match the content (was it edited?)")
    return document
