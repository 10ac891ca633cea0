"""RDB files: load one into a scratch valkey-server and copy from it; export by copying into one and saving.

The scratch server is this machine's Valkey (8: RDB version 11), so an exported file loads on Valkey 7.2
to 9 and Redis 7.2+; a file from a newer server (Valkey 9: RDB 80) is refused with a clear message.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from reproducer.data.copy import CopyOptions, copy
from reproducer.data.endpoint import Endpoint
from reproducer.data.formats.scratch import ScratchServer
from reproducer.errors import InputError

Progress = Callable[[int], None]


def export(
    source: Endpoint,
    path: Path,
    *,
    dbs: tuple[int, ...] | None = None,
    match: str | None = None,
    progress: Progress | None = None,
) -> int:
    """Copy ``source`` into a scratch server and save its RDB to ``path``; returns the number of keys."""
    with ScratchServer() as scratch:
        result = copy(
            source,
            scratch.endpoint,
            CopyOptions(dbs=dbs, match=match),
            (lambda stats, _total: progress(stats.scanned)) if progress else None,
        )
        scratch.save_to(path)
    return result.total.copied + result.total.rebuilt


def load(
    path: Path, target: Endpoint, *, replace: bool = True, progress: Progress | None = None
) -> tuple[int, int, int]:
    """Load ``path`` into a scratch server and copy it to ``target``; returns (written, expired, skipped)."""
    if not path.is_file():
        raise InputError(f"RDB file {path} does not exist", hint="check the path")
    if path.read_bytes()[:5] not in (b"REDIS", b"VALKE"):
        raise InputError(f"{path} is not an RDB file (no REDIS/VALKEY magic)", hint="pass an RDB dump file")
    with ScratchServer(path) as scratch:
        options = CopyOptions(conflict="replace" if replace else "skip")
        result = copy(
            scratch.endpoint, target, options, (lambda stats, _total: progress(stats.scanned)) if progress else None
        )
    return result.total.copied + result.total.rebuilt, result.total.expired, result.total.skipped
