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
unless the screen is started again (:func:`open_output` with ``restart``, which clears
everything of the earlier screen). One screen at a time holds the folder
(:func:`lock_output`); a chunk whose files cannot be read back (cut short outside zoo, a disk
error) is named and screened again, since a chunk can always be redone from the input.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from zoo.faults import failpoint
from zoo.files import atomic_write

MANIFEST = "manifest.json"
CHUNKS = "chunks"
TABLE, TABLE_CSV, ERRORS = "screen.parquet", "screen.csv", "errors.csv"
LOCK = ".zoo-screen.lock"
"""The lock file (filelock) a running screen holds; beside it ``.zoo-screen.lock.holder``."""
MANIFEST_FORMAT = 1
ERROR_COLUMNS = ["id", "stage", "reason"]
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


@contextmanager
def lock_output(out_dir: str | Path):
    """Hold ``out_dir`` for one screen (creating it): a second screen of the same folder,
    from this machine or another sharing the file system, stops at once with a one-line
    error naming the holder. The lock goes with the process, also when it is killed."""
    from filelock import FileLock, Timeout

    from zoo.processes import owner_token

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out} is a file; the screen's output is a folder")
    out.mkdir(parents=True, exist_ok=True)
    holder = out / f"{LOCK}.holder"
    lock = FileLock(out / LOCK)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        who = holder.read_text().strip() if holder.exists() else "another process"
        raise ValueError(
            f"{out} is being written by another zoo screen ({who}); wait for it to end or use "
            "another output folder"
        ) from None
    try:
        holder.write_text(f"{owner_token()}\n")
        yield out
    finally:
        lock.release()


def open_output(out_dir: str | Path, manifest: dict, restart: bool, log=print) -> set[int]:
    """Create or continue ``out_dir`` for ``manifest`` (under :func:`lock_output`); the numbers
    of the chunks already committed and readable. A different screen in the folder is an
    error naming what differs, unless ``restart``, which clears everything of the earlier
    screen first (chunks, table, errors, summary, card, plots)."""
    from zoo.files import remove_stale_partials

    out = Path(out_dir)
    found = out / MANIFEST
    if found.exists() and not restart:
        existing = read_manifest(found)
        differs = [key for key in COMPARED if existing.get(key) != manifest.get(key)]
        if differs:
            raise ValueError(
                f"{out} holds another screen (different {', '.join(differs)}); use another "
                "output folder, or --restart to discard it and start again"
            )
        remove_stale_partials(out)
        remove_stale_partials(out / CHUNKS)
        return readable_chunks(out, log)
    if restart:
        for item in out.iterdir():
            if item.name.startswith(LOCK):
                continue
            shutil.rmtree(item) if item.is_dir() else item.unlink()
    remove_stale_partials(out)
    (out / CHUNKS).mkdir(parents=True, exist_ok=True)
    write_json(found, {"format": MANIFEST_FORMAT, **manifest})
    return set()


def read_manifest(path: Path) -> dict:
    """The manifest; one that cannot be read is an error naming it and the way out."""
    try:
        value = json.loads(path.read_text())
        if not isinstance(value, dict):
            raise ValueError("not a JSON object")
    except ValueError as error:
        raise ValueError(
            f"{path}: unreadable manifest ({error}); nothing says which screen the folder "
            "holds: start it again with --restart"
        ) from None
    return value


def committed_chunks(out_dir: str | Path) -> set[int]:
    """Numbers of the chunks whose table is committed."""
    return {int(p.name.split(".")[0]) for p in (Path(out_dir) / CHUNKS).glob("*.parquet")}


def readable_chunks(out_dir: str | Path, log=print) -> set[int]:
    """The committed chunks whose table and errors read back whole; the files of any other
    are removed, said, and the chunk is screened again."""
    import pyarrow.parquet as pq

    folder = Path(out_dir) / CHUNKS
    readable = set()
    for number in sorted(committed_chunks(out_dir)):
        table, errors = folder / f"{number:05d}.parquet", folder / f"{number:05d}.errors.csv"
        try:
            pq.read_metadata(table)
            if list(pd.read_csv(errors, dtype=str, nrows=0).columns) != ERROR_COLUMNS:
                raise ValueError(f"columns are not {', '.join(ERROR_COLUMNS)}")
        except Exception as error:  # any way a file can be damaged
            reason = " ".join(str(error).split())[:160]
            log(f"chunk {number} cannot be read back ({reason}); it is screened again")
            table.unlink(missing_ok=True)
            errors.unlink(missing_ok=True)
            continue
        readable.add(number)
    return readable


def commit_chunk(out_dir: str | Path, number: int, table: pd.DataFrame, errors: pd.DataFrame):
    """Write one chunk: its errors, then its table (the commit)."""
    folder = Path(out_dir) / CHUNKS
    with atomic_write(folder / f"{number:05d}.errors.csv") as partial:
        errors.to_csv(partial, index=False)
    failpoint("chunk-part")
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
        merged = pd.concat([pd.DataFrame(columns=ERROR_COLUMNS), *frames])
        merged.to_csv(partial, index=False)
    return rows, merged


def write_json(path: Path, value) -> None:
    with atomic_write(path) as partial:
        Path(partial).write_text(json.dumps(value, indent=2, default=str) + "\n")
