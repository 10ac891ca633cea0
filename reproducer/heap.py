"""How often the cyclic garbage collector runs in a process that moves data."""

from __future__ import annotations

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
