"""The DUMP payload footer: ``[type][value][2-byte LE RDB version][8-byte LE CRC64]``.

Valkey 7.2-8.1 and Redis 7.2 stamp version 11, Redis 7.0 10, Redis 7.4+ 12 and more, Valkey 9 80; a server
refuses payloads stamped above what it knows (``DUMP payload version or checksum are wrong``). A payload whose
object type an older version already knows is encoded the same way there, so :func:`downgrade` re-stamps it;
a type the older version does not know (a listpack set or a stream with consumer active times for RDB 10) has
to be rebuilt with type commands. See ``docs/reference/data-migration.md#converting-payloads``.
"""

from __future__ import annotations

import re
import struct

_POLY = 0x95AC9329AC4BC9B5  # Jones polynomial 0xad93d23594c935a9, bit-reflected
_TABLE = []
for _byte in range(256):
    _crc = _byte
    for _ in range(8):
        _crc = (_crc >> 1) ^ _POLY if _crc & 1 else _crc >> 1
    _TABLE.append(_crc)

#: The highest object type byte each RDB version can load (Redis rdb.h): RDB 9 ends at the stream listpacks
#: (15), RDB 10 adds listpack hashes and zsets, quicklist 2 and stream listpacks 2 (16-19), RDB 11 adds listpack
#: sets and stream listpacks 3 (20, 21).
MAX_TYPE = {9: 15, 10: 19, 11: 21}
#: Payload versions whose types keep their encoding in every older version of MAX_TYPE (tested both ways with
#: Valkey 8 and Redis 7.0); newer stamps (Redis 7.4+, Valkey 9) are never converted, only refused and rebuilt.
CONVERTIBLE_FROM = frozenset({10, 11})


class Plain(bytes):
    """A string's value (read with GET, or a plain string of a snapshot), not a DUMP payload: written with SET.

    No ``__dict__``: an instance (one per string key of a copy) is smaller and freed without a dict to clear.
    """

    __slots__ = ()


def crc64(data: bytes, crc: int = 0) -> int:
    """CRC-64/Jones as Valkey computes it for RDB files and DUMP payloads."""
    for byte in data:
        crc = _TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc


def rdb_version(payload: bytes) -> int:
    """The RDB version a DUMP payload is stamped with."""
    return int(struct.unpack_from("<H", payload, len(payload) - 10)[0])


def with_version(payload: bytes, version: int) -> bytes:
    """The same payload stamped with another RDB version, its CRC64 recomputed."""
    body = payload[:-10] + struct.pack("<H", version)
    return body + struct.pack("<Q", crc64(body))


def restamp(payload: bytes, version: int) -> bytes:
    """:func:`with_version` in constant time, whatever the payload's size.

    Only the 2 version bytes change, and CRC-64/Jones (no initial value, no final xor) is linear, so the new CRC
    is the old one xor the CRC of the changed bytes.

    A payload whose own CRC was wrong keeps a wrong CRC, so the target still refuses it.
    """
    old_version, old_crc = struct.unpack_from("<HQ", payload, len(payload) - 10)
    delta = struct.pack("<H", old_version ^ version)
    return payload[:-10] + struct.pack("<HQ", version, old_crc ^ crc64(delta))


def downgrade(payload: bytes, version: int | None) -> bytes | None:
    """``payload`` as a server of RDB ``version`` accepts it: as it is, re-stamped, or None (rebuild it by type).

    ``version`` None (unknown) keeps the payload as it is: the target refuses it or not, and a refusal is rebuilt.
    """
    stamp = rdb_version(payload)
    if version is None or stamp <= version:
        return payload
    if stamp not in CONVERTIBLE_FROM or version not in MAX_TYPE or payload[0] > MAX_TYPE[version]:
        return None
    return restamp(payload, version)


def body(payload: bytes) -> bytes:
    """The type and value of a payload without its version and CRC: equal bodies hold equal values."""
    return payload[:-10]


_VERSION_FIELD = re.compile(rb"^(valkey_version|redis_version):([^\r\n]*)", re.MULTILINE)


def version_of_server(info: bytes) -> int | None:
    """The RDB version a server writes, from its ``INFO server`` text; None when it cannot be told."""
    fields = {m.group(1): m.group(2).strip() for m in _VERSION_FIELD.finditer(info)}
    valkey = _major_minor(fields.get(b"valkey_version", b""))
    if valkey is not None:
        return 11 if valkey < (9, 0) else 80 if valkey < (9, 2) else None
    release = _major_minor(fields.get(b"redis_version", b""))  # Valkey 7.2 reports only this (7.2.x)
    if release is None or release < (5, 0) or release >= (8, 6):
        return None
    return 9 if release < (7, 0) else 10 if release < (7, 2) else 11 if release < (7, 4) else 12


def _major_minor(text: bytes) -> tuple[int, int] | None:
    match = re.fullmatch(rb"(\d{1,4})\.(\d{1,4})(\.\d{1,6})?", text)
    return (int(match.group(1)), int(match.group(2))) if match else None
