"""Matbench v0.1 files, exactly as matminer writes them, and their download.

A Matbench file is a (gzipped) JSON object ``{"index": [...], "columns": ["structure", TARGET],
"data": [[structure_dict, value], ...]}``. ``index`` is the row of the entry in the official
table; the Matbench id is ``mb-<task>-<row + 1 zero-padded to 5 digits>``. Targets are log10 of
the modulus in GPa.
"""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path

from zoo.dataset import Dataset
from zoo.files import atomic_write
from zoo.readers.jsonfiles import first_character, load_json
from zoo.readers.registry import Entry, ReadOptions, input_format, is_file_named, read_dataset
from zoo.readers.structures import parse_structure

MATBENCH_URL = "https://ml.materialsproject.org/projects/{task}.json.gz"
"""Canonical location matminer downloads the Matbench v0.1 files from."""

TASKS = {
    "matbench_log_gvrh": ("log10(G_VRH)", "shear", "log-gvrh"),
    "matbench_log_kvrh": ("log10(K_VRH)", "bulk", "log-kvrh"),
}
"""Task name -> (target column, zoo target, id stem)."""

COLUMN_TO_TARGET = {column: target for column, target, _ in TASKS.values()}


def default_cache_dir() -> Path:
    """Where downloaded data sets are kept: ``$ZOO_DATA_DIR`` or ``~/.cache/zoo/data``."""
    return Path(os.environ.get("ZOO_DATA_DIR", Path.home() / ".cache" / "zoo" / "data"))


def is_matbench_payload(payload: object) -> bool:
    return isinstance(payload, dict) and {"index", "columns", "data"} <= set(payload)


@input_format(
    "matbench",
    reads="matbench_log_{gvrh,kvrh}.json[.gz] as matminer writes them (index, columns, "
    "data; log10 GPa); ids mb-log-gvrh-00001 from the row",
    priority=30,
    matches=lambda path: is_file_named(".json", ".json.gz")(path) and first_character(path) == "{",
    streams=False,
)
def _open(path: Path, options: ReadOptions):
    """A Matbench file, read whole (one JSON object); moduli converted to GPa."""
    payload = load_json(path)
    if not is_matbench_payload(payload):
        raise ValueError(f"{path}: JSON is neither a Matbench file nor a list of records")
    columns = payload["columns"]
    if len(columns) != 2 or columns[0] != "structure" or columns[1] not in COLUMN_TO_TARGET:
        raise ValueError(
            f"{path}: expected columns ['structure', one of {sorted(COLUMN_TO_TARGET)}], "
            f"found {columns}"
        )
    target = COLUMN_TO_TARGET[columns[1]]
    stem = next(s for c, _, s in TASKS.values() if c == columns[1])
    entries = (
        Entry(
            f"mb-{stem}-{int(row) + 1:05d}",
            partial(parse_structure, structure),
            {target: None if log_value is None else _exp10(log_value)},
        )
        for row, (structure, log_value) in zip(payload["index"], payload["data"], strict=True)
    )
    return [target], entries


def _exp10(log_value) -> float:
    try:
        return 10.0 ** float(log_value)
    except (TypeError, ValueError, OverflowError):
        return float("nan")  # check_modulus reports it with the entry name


def read_matbench(path: str | Path, skip_bad: bool = False) -> Dataset:
    """Read a Matbench file (``.json`` or ``.json.gz``) written by matminer."""
    return read_dataset(path, skip_bad=skip_bad)


def download_matbench(task: str, cache_dir: str | Path | None = None, timeout: float = 20.0):
    """Path of the Matbench file for ``task``, downloading it into the cache if needed.

    Offline, this fails at once with a message that says where to put the file by hand.
    """
    import requests
    from tqdm import tqdm

    if task not in TASKS:
        raise ValueError(f"unknown Matbench task {task!r}; known: {', '.join(TASKS)}")
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    target = cache / f"{task}.json.gz"
    if target.exists():
        return target
    url = MATBENCH_URL.format(task=task)
    try:
        with requests.get(url, stream=True, timeout=timeout) as response:
            response.raise_for_status()
            cache.mkdir(parents=True, exist_ok=True)
            total = int(response.headers.get("content-length", 0)) or None
            with (
                atomic_write(target) as partial,
                open(partial, "wb") as handle,
                tqdm(total=total, unit="B", unit_scale=True, desc=f"download {task}") as bar,
            ):
                for chunk in response.iter_content(chunk_size=1 << 16):
                    handle.write(chunk)
                    bar.update(len(chunk))
    except requests.RequestException as error:
        raise RuntimeError(
            f"cannot download {url} ({error.__class__.__name__}). Without a network, download "
            f"the file elsewhere and put it at {target} (or set ZOO_DATA_DIR)."
        ) from error
    return target
