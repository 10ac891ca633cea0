"""The page faults of a batch-like churn: many mid-sized blocks made, written, then all freed, again and again."""

from __future__ import annotations

import resource

#: Each round makes this many blocks of BLOCK bytes (under glibc's first mmap threshold: they come from the heap).
BLOCKS, BLOCK = 200, 100_000


def churn_faults(rounds: int = 10) -> int:
    """Minor page faults taken by ``rounds`` rounds after the first (which may fault in fresh memory once)."""
    _round()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(rounds):
        _round()
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


def _round() -> None:
    blocks = [b"x" * BLOCK for _ in range(BLOCKS)]  # written: every page is touched
    del blocks
