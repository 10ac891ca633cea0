"""The snapshot reader's common case in C (``_rdbscan.c``); see ``snapshot._small_run``, which it mirrors."""

from typing import Any

def small_run(
    buffer: bytes | bytearray,
    position: int,
    db: int,
    expire: int,
    stamps: tuple[bytes, ...],
    limit: int,
    most: int,
    entry_type: type[Any],
    plain_type: type[bytes],
    /,
) -> tuple[list[Any], int, int]:
    """Up to ``most`` short keys in a row from ``position``: (entries, the position after them, their values' bytes)."""
