"""The snapshot reader's common case in C (``_speedups.c``); see ``snapshot._small_run``, which it mirrors."""

from collections.abc import Callable
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
) -> tuple[list[Any], int, int, int]:
    """Up to ``most`` short keys in a row from ``position``.

    (entries, the position after them, their values' bytes, the bytes past that position the next key needs when
    the buffer's end cuts it, else 0).
    """

def writes(
    items: list[tuple[bytes, int, bytes]],
    indexes: list[int],
    now: int,
    replace: bool,
    plain_type: type[bytes],
    direct_send: int,
    gather: int,
    /,
) -> list[bytes]:
    """The SET or RESTORE of each item (``copy._python_writes``' bytes), gathered into parts of about ``gather``."""

def snapshot_items(
    entries: list[Any], source_now: int, offset: int, /
) -> tuple[list[tuple[bytes, int, bytes]], int, int, list[bytes]]:
    """A batch's (key, deadline or 0, payload) items, keys expired, their bytes, keys over the bound."""

def route(items: list[tuple[bytes, int, bytes]], slot_owner: list[int], primaries: int, /) -> list[list[int]]:
    """The item indexes per primary index, by the slot of each item's key (``topology.key_slot``)."""

def describe(
    keys: list[bytes],
    replies: list[object],
    reads: dict[bytes, bytes],
    big: dict[bytes, int] | None,
    get: bytes,
    payload_types: dict[int, bytes],
    misread: object,
    big_marker: object,
    digest_from: int,
    footer: int,
    digest: Callable[[object, int], object],
    members: Callable[[object, list[bytes]], Any],
    reply_error: type,
    /,
) -> dict[bytes, Any]:
    """Each key's (type, pttl, value or digest, size) from a group's PTTL and value replies (``verify._described``)."""

def snapshot_described(
    entries: list[Any],
    source_now: int,
    get: bytes,
    plain_type: type[bytes],
    payload_types: dict[int, bytes],
    big_marker: object,
    digest_from: int,
    footer: int,
    digest: Callable[[object, int], object],
    /,
) -> tuple[list[bytes], dict[bytes, bytes], dict[bytes, int], dict[bytes, Any]]:
    """A snapshot batch's keys, reads, big keys and descriptions (``verify._python_snapshot_described``)."""

def describe_commands(
    keys: list[bytes], reads: dict[bytes, bytes], big: dict[bytes, int] | None, dump: bytes, type: bytes, /
) -> bytes:
    """PTTL and the value command of each key (``verify._python_describe_commands``' bytes)."""

def identical(
    keys: list[bytes],
    src_info: dict[bytes, Any],
    dst_info: dict[bytes, Any],
    slack: int,
    misread: object,
    big_marker: object,
    /,
) -> tuple[dict[bytes, int], list[bytes]]:
    """The keys identical on both sides counted by type, and the other keys (``verify._python_identical``)."""
