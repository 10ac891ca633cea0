"""How a process that moves data sets up its heap: the cyclic garbage collector's pace, and freed memory kept."""

from __future__ import annotations

import contextlib
import ctypes
import gc

#: Net container allocations between two collections of the youngest generation (CPython's default is 700).
YOUNG_GENERATION_THRESHOLD = 100_000


def pace_collector_for_bulk_data() -> None:
    """Run the cyclic garbage collector about a hundred times less often, for the whole process.

    Copy and verify allocate a few tuples and objects per key, all acyclic, freed by reference counting; at the
    default pace a young collection runs every few hundred keys and takes about 5 % of the copier's CPU, to find
    no cycle. Cycles made elsewhere are still collected, later. The older generations keep their own ratios.
    Only a process's entry point calls this (the CLI, the worker pool's zygote): it changes the whole process.
    """
    _young, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_GENERATION_THRESHOLD, middle, old)


#: glibc's ``mallopt`` parameters (``malloc.h``).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
#: Freed memory at the top of the heap goes back to the kernel only past this much: two batches of 64 MiB.
TRIM_THRESHOLD = 128 * 1024 * 1024
#: Blocks of this size or more get their own mapping, given back when freed (glibc's largest dynamic threshold).
MMAP_THRESHOLD = 32 * 1024 * 1024


def keep_freed_memory() -> bool:
    """Keep memory freed by one batch for the next, for the whole process (glibc); False where it cannot.

    A batch frees its keys, payloads and encoded writes at once. With glibc's defaults the free space at the heap's
    top went back to the kernel, and the next batch took it again, a page fault a page: up to 37,000 faults in one
    worker of a 1M-key copy (2,600-2,900 with this). Memory is still bounded: by the batches held at once,
    plus at most ``TRIM_THRESHOLD`` kept free; a block of ``MMAP_THRESHOLD`` or more (a big value) is still given
    back when freed. Only a process's entry point calls this (the CLI, the worker pool's zygote).
    """
    with contextlib.suppress(OSError, AttributeError):  # not glibc (musl, macOS): its allocator's own policy
        mallopt = ctypes.CDLL(None).mallopt
        return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return False
