"""The DUMP payload footer: ``[type][value][2-byte LE RDB version][8-byte LE CRC64]``.

Valkey 7.2-8.1 and Redis 7.2 stamp version 11, Redis 7.4+ 12 and more, Valkey 9 80; a server refuses
payloads stamped above what it knows (``DUMP payload version or checksum are wrong``).
"""

from __future__ import annotations

import struct

_POLY = 0x95AC9329AC4BC9B5  # Jones polynomial 0xad93d23594c935a9, bit-reflected
_TABLE = []
for _byte in range(256):
    _crc = _byte
    for _ in range(8):
        _crc = (_crc >> 1) ^ _POLY if _crc & 1 else _crc >> 1
    _TABLE.append(_crc)


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
