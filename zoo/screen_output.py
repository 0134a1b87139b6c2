"""A screen's output folder, written so that a kill at any instant loses nothing.

::

    OUT_DIR/
      manifest.json            what is being screened: input fingerprint, models (spec, registry
                               version, file digest), chunk size, options, code version
      chunks/00012.errors.csv  one chunk's unusable entries (id, stage, reason), written first
      chunks/00012.parquet     one chunk's table; its existence is the chunk's commit
      screen.parquet, screen.csv, errors.csv, summary.json, card.json, card.md, *.png
                               the merged result, rebuilt from the chunks at the end

Every file is written with :func:`zoo.files.atomic_write`, so a chunk either is committed whole
or not at all; the same command continues with the first chunks not committed. A manifest that
does not match the command (another input, another model, another chunk size) is an error
unless the screen is started again (:func:`open_output` with ``restart``).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pandas as pd

from zoo.files import atomic_write

MANIFEST = "manifest.json"
CHUNKS = "chunks"
TABLE, TABLE_CSV, ERRORS = "screen.parquet", "screen.csv", "errors.csv"
MANIFEST_FORMAT = 1
COMPARED = ("input", "models", "chunk_size", "options")
"""Manifest fields that must match for a screen to continue."""


def file_digest(path: str | Path) -> str:
    """sha256 of a file's bytes (read in 1 MB blocks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def input_fingerprint(path: str | Path | None) -> str:
    """A file's sha256; for a folder, sha256 of every file's relative path, size and
    modification time (reading every structure twice would double the reading stage)."""
    if path is None:
        return "built-in demo set"
    path = Path(path)
    if path.is_file():
        return file_digest(path)
    digest = hashlib.sha256()
    for item in sorted(p for p in path.rglob("*") if p.is_file()):
        stat = item.stat()
        digest.update(f"{item.relative_to(path)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return "tree:" + digest.hexdigest()


def open_output(out_dir: str | Path, manifest: dict, restart: bool) -> set[int]:
    """Create or continue ``out_dir`` for ``manifest``; the numbers of the chunks already
    committed. A different screen in the folder is an error naming what differs, unless
    ``restart`` (which clears its chunks and results first)."""
    out = Path(out_dir)
    found = out / MANIFEST
    if found.exists() and not restart:
        existing = json.loads(found.read_text())
        differs = [key for key in COMPARED if existing.get(key) != manifest.get(key)]
        if differs:
            raise ValueError(
                f"{out} holds another screen (different {', '.join(differs)}); use another "
                "output folder, or --restart to discard it and start again"
            )
        return committed_chunks(out)
    if restart and out.exists():
        shutil.rmtree(out / CHUNKS, ignore_errors=True)
        for name in (TABLE, TABLE_CSV, ERRORS, MANIFEST):
            (out / name).unlink(missing_ok=True)
    (out / CHUNKS).mkdir(parents=True, exist_ok=True)
    write_json(found, {"format": MANIFEST_FORMAT, **manifest})
    return set()


def committed_chunks(out_dir: str | Path) -> set[int]:
    """Numbers of the chunks whose table is committed."""
    return {int(p.name.split(".")[0]) for p in (Path(out_dir) / CHUNKS).glob("*.parquet")}


def commit_chunk(out_dir: str | Path, number: int, table: pd.DataFrame, errors: pd.DataFrame):
    """Write one chunk: its errors, then its table (the commit)."""
    folder = Path(out_dir) / CHUNKS
    with atomic_write(folder / f"{number:05d}.errors.csv") as partial:
        errors.to_csv(partial, index=False)
    with atomic_write(folder / f"{number:05d}.parquet") as partial:
        table.to_parquet(partial, index=False)


def merge_chunks(out_dir: str | Path) -> tuple[int, pd.DataFrame]:
    """Merge the committed chunks, in chunk order, into ``screen.parquet``, ``screen.csv`` and
    ``errors.csv``, one chunk in memory at a time. Returns the table's row count and the
    merged errors (``id``, ``stage``, ``reason``)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = Path(out_dir)
    numbers = sorted(committed_chunks(out))
    rows = 0
    with atomic_write(out / TABLE) as table_part, atomic_write(out / TABLE_CSV) as csv_part:
        writer = None
        for position, number in enumerate(numbers):
            table = pq.read_table(out / CHUNKS / f"{number:05d}.parquet")
            if writer is None:
                writer = pq.ParquetWriter(table_part, table.schema)
            writer.write_table(table.cast(writer.schema))
            frame = table.to_pandas()
            frame.to_csv(csv_part, mode="a", header=position == 0, index=False)
            rows += len(frame)
        if writer is None:
            writer = pq.ParquetWriter(table_part, pa.schema([("id", pa.string())]))
            Path(csv_part).write_text("id\n")
        writer.close()
    with atomic_write(out / ERRORS) as partial:
        frames = [pd.read_csv(out / CHUNKS / f"{n:05d}.errors.csv", dtype=str) for n in numbers]
        merged = pd.concat([pd.DataFrame(columns=["id", "stage", "reason"]), *frames])
        merged.to_csv(partial, index=False)
    return rows, merged


def write_json(path: Path, value) -> None:
    with atomic_write(path) as partial:
        Path(partial).write_text(json.dumps(value, indent=2, default=str) + "\n")
