"""Named fail points, for proving that a kill at any instant loses nothing.

``failpoint(name)`` does nothing unless the environment variable ``ZOO_FAILPOINT`` names it:
``ZOO_FAILPOINT=epoch-saved@3`` kills this process with SIGKILL (no clean-up, no ``finally``)
the third time it reaches ``epoch-saved``; without ``@N``, the first time. With ``:enospc``
(``chunk-part@2:enospc``) it raises the error a full disk gives instead of killing. The
fault-injection benchmark (``bench/bench_faults.py``) and the tests use them to land a kill
exactly inside the short windows that random instants rarely hit (between a checkpoint and
its MLflow call, during the model's registration). The points, in the order a run reaches them:

``folder-part``       a run folder and its config are written under a temporary name
``run-opened``        the MLflow run is open and recorded; no epoch has run
``checkpoint-part``   an epoch's checkpoint is written to its temporary file, not yet renamed
``epoch-saved``       checkpoint and history.csv written; the epoch is not in MLflow yet
``final-evaluated``   training is over, the final metrics are computed, nothing written
``final-logged``      every result file and MLflow record is written; the run is not closed
``trial-planned``     a tuning trial has named its run folder, which does not exist yet
``pyfunc-logged``     ``zoo tune --final``: the refit's pyfunc model is logged, its run reopened
``refit-registered``  ``zoo tune --final``: the refit is registered, the alias not yet moved
``fold-finished``     ``zoo benchmark``: a fold model is finished, the next not yet started
``chunk-part``        ``zoo screen``: a chunk's errors are written, its table (the commit) not yet
``chunk-committed``   ``zoo screen``: a chunk's table is committed, the next not yet written
``screen-merged``     ``zoo screen``: the chunks are merged into the table, no summary yet
``card-part``         ``zoo screen``: the card's plots are written, not yet ``card.json``
"""

from __future__ import annotations

import errno
import os
import signal

ENV = "ZOO_FAILPOINT"
_reached: dict[str, int] = {}


def failpoint(name: str) -> None:
    """SIGKILL this process if ``$ZOO_FAILPOINT`` names this point (see the module docstring)."""
    wanted = os.environ.get(ENV)
    if not wanted:
        return
    wanted, _, effect = wanted.partition(":")
    point, _, count = wanted.partition("@")
    if point != name:
        return
    _reached[name] = _reached.get(name, 0) + 1
    if _reached[name] != int(count or 1):
        return
    if effect == "enospc":
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), f"fail point {name}")
    os.kill(os.getpid(), signal.SIGKILL)
