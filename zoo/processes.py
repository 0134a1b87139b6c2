"""Who owns a piece of work: a token naming this process that outlives it, so that a later
process can tell whether the owner of a run, a trial or a temporary file is still alive.

A token is ``host:pid:start`` with the process's start time (psutil), so a recycled pid is not
mistaken for the owner.
"""

from __future__ import annotations

import os
import socket

import psutil


def _start_time(pid: int) -> str | None:
    """Start time of ``pid`` (seconds since the epoch, as text), None if there is none."""
    try:
        return f"{psutil.Process(pid).create_time():.2f}"
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def host_name() -> str:
    """This machine's name in owner tokens: ``$ZOO_HOST``, else the host name (set ``ZOO_HOST``
    where several machines or containers share one host name)."""
    return os.environ.get("ZOO_HOST") or socket.gethostname()


def owner_token() -> str:
    """``host:pid:start`` of this process."""
    pid = os.getpid()
    return f"{host_name()}:{pid}:{_start_time(pid)}"


def owner_is_gone(token: str | None) -> bool:
    """True if ``token`` names a process on this host that no longer runs. False for a live
    owner, for other hosts (a heartbeat must decide there) and for a missing or unreadable
    token."""
    if not token or token.count(":") < 2:
        return False
    host, pid, start = token.rsplit(":", 2)
    if host != host_name():
        return False
    return _start_time(int(pid)) != start
