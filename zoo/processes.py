"""Who owns a piece of work: a token naming this process that outlives it, so that a later
process can tell whether the owner of a run, a trial or a temporary file is still alive.

A token is ``host:pid:start`` with the process's start time (psutil), so a recycled pid is not
mistaken for the owner.
"""

from __future__ import annotations

import multiprocessing
import os
import socket
from collections.abc import Callable

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


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask: a container's or ``taskset``'s
    limit), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # no affinity on this platform
        return os.cpu_count() or 1


_FORKED: tuple = ()
"""The function and items of the running :func:`map_forked`, inherited by its workers."""


def map_forked(function: Callable, items: list, workers: int, done: Callable | None = None) -> list:
    """``[function(item) for item in items]``, in order, in ``workers`` forked processes: the
    workers inherit ``function`` and ``items`` (nothing is pickled on the way in, so closures,
    parsed objects and built models work); each result is pickled back, and ``done(result)``
    is called here as each arrives (a progress bar). Runs here, one by one, with one worker,
    or where processes cannot be forked."""
    global _FORKED
    done = done or (lambda result: None)
    if workers <= 1 or len(items) < 2 or "fork" not in multiprocessing.get_all_start_methods():
        return [_called(function, item, done) for item in items]
    size = max(1, len(items) // (workers * 8))
    ranges = [(start, min(start + size, len(items))) for start in range(0, len(items), size)]
    _FORKED = (function, items)
    results = []
    try:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            for part in pool.imap(_run_range, ranges):
                results += [_called(lambda r: r, result, done) for result in part]
        return results
    finally:
        _FORKED = ()


def _called(function: Callable, item, done: Callable):
    result = function(item)
    done(result)
    return result


def _run_range(bounds: tuple[int, int]) -> list:
    function, items = _FORKED
    return [function(item) for item in items[bounds[0] : bounds[1]]]
