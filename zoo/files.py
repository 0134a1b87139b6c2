"""Files written so that a reader never sees half of one and two writers never collide."""

from __future__ import annotations

import os
import re
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_write(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``, named after it and unique to this writer, for
    the block to write. When the block ends normally the file replaces ``path`` in one step;
    when it raises, the file is removed and ``path`` is left as it was. Two processes writing
    the same ``path`` at once (two runs building the same cached graphs, two downloads of the
    same file) each write their own file, and the last to finish wins."""
    path = Path(path)
    partial = path.with_name(f"{path.name}.{os.getpid()}-{uuid.uuid4().hex[:12]}.part")
    try:
        yield partial
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


PARTIAL_PATTERN = re.compile(r"\.(\d+)-[0-9a-f]{12}\.part$")
"""How :func:`atomic_write` names a temporary file: ``<name>.<pid>-<12 hex>.part``."""


def remove_stale_partials(folder: str | Path) -> list[Path]:
    """Remove the temporary files of :func:`atomic_write` (and the temporary folders named the
    same way) in ``folder`` whose writer is gone (killed before it could clean up): its pid no
    longer runs, or the process that has the pid now started after the file was last written (a
    recycled pid). A live writer's file is left alone. Returns the removed paths."""
    import psutil

    removed = []
    for path in Path(folder).glob("*.part"):
        match = PARTIAL_PATTERN.search(path.name)
        if match is None:
            continue
        try:
            written = path.stat().st_mtime
            alive = psutil.Process(int(match.group(1))).create_time() <= written + 1.0
        except psutil.NoSuchProcess:
            alive = False
        except FileNotFoundError:
            continue
        if not alive:
            if path.is_dir():  # a folder made in one step (zoo.run_folder.start_run_folder)
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def check_output_file(path: str | Path) -> Path:
    """``path`` as a file to write, checked before any work: not a folder, and its folder is
    no file. Nothing is created. Raises ValueError naming the path."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a folder; give the file to write")
    parent = next((p for p in path.parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise ValueError(f"{parent} is a file, so {path} cannot be written")
    return path


def check_output_folder(path: str | Path) -> Path:
    """``path`` as a folder to write into, checked before any work: not a file (nor below
    one). Nothing is created. Raises ValueError naming the path."""
    path = Path(path)
    existing = next((p for p in (path, *path.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise ValueError(f"{existing} is a file; the output is a folder")
    return path
