"""Files written so that a reader never sees half of one and two writers never collide."""

from __future__ import annotations

import os
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
