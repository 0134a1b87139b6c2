"""Run a server command so that it never outlives the process that started it.

``python -m zoo.ui_guard PARENT_PID COMMAND...`` runs COMMAND as its child in its own process
group (the launcher starts it in a new session) and stops that whole group (SIGTERM, then
SIGKILL after a grace period) when it is told to stop *or when its parent dies*, even by
SIGKILL: the kernel's parent-death signal (Linux ``prctl(PR_SET_PDEATHSIG)``) tells it. This is
how ``zoo ui`` makes sure the MLflow server and its workers stop with it.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time

GRACE_SECONDS = 5.0
PR_SET_PDEATHSIG = 1


def _stop_group(signum=None, frame=None) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(0, signal.SIGTERM)  # the guard ignores it: see main()
    deadline = time.time() + GRACE_SECONDS
    while time.time() < deadline:
        try:
            if os.waitpid(-1, os.WNOHANG) == (0, 0):
                time.sleep(0.1)
                continue
        except ChildProcessError:
            break
    with contextlib.suppress(ProcessLookupError):
        os.killpg(0, signal.SIGKILL)


def main(argv: list[str]) -> int:
    parent, command = int(argv[0]), argv[1:]
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    child = subprocess.Popen(command)
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, lambda *_: (_ignore_term(), _stop_group()))
    if os.getppid() != parent:  # the parent died before the death signal was armed
        _ignore_term()
        _stop_group()
    return child.wait()


def _ignore_term() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
