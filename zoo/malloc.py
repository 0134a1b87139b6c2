"""Keep freed memory for reuse: glibc ``malloc`` settings for long runs of batched inference.

By default glibc serves every allocation above 128 kB (raised on the fly up to 32 MB) with a
fresh ``mmap`` and returns it to the system when freed, and trims the heap's top whenever 128 kB
of it is free. A forward pass allocates and frees tens of tensors of (edges x features) floats
(24 MB for a batch of 256 crystals of the angle line graph), so every layer of every batch
page-faults its memory in again: a third of a ``cgcnn-angle-global`` forward pass in a
one-off profile (its end-to-end effect is in docs/benchmarks.md, issue 17). After
:func:`keep_freed_memory` freed blocks stay in the heap for the next batch. Peak memory is
unchanged (the same tensors live at the same time); the memory a process holds no longer
shrinks between batches.

glibc only (Linux); elsewhere it does nothing. Call it in processes that run many batches
(``zoo screen``'s workers, ``zoo predict``, training), not on import.
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
"""``mallopt`` parameter numbers (glibc's ``malloc.h``)."""

HEAP_LIMIT = 1 << 30
"""Allocations up to 1 GiB come from the heap; trimming starts above 1 GiB free at its top."""


def keep_freed_memory() -> bool:
    """Apply the settings to this process (its main arena). True if glibc accepted them."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):  # not glibc (macOS, musl without mallopt)
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, HEAP_LIMIT)) and bool(
        mallopt(M_TRIM_THRESHOLD, HEAP_LIMIT)
    )
