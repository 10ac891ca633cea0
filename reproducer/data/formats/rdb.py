"""RDB files: load one into a scratch valkey-server and copy from it; export by writing into one and saving.

The scratch server is this machine's Valkey (8: RDB version 11), so an exported file loads on Valkey 7.2
to 9 and Redis 7.2+. A file is checked before anything starts: its magic (``REDIS`` + 4 digits or
``VALKEY`` + 3), a version the scratch server reads, the EOF opcode and the CRC64 at the end. Keys go
from the scratch server to the target one at a time, rebuilt by type, in batches bounded by bytes.
"""

from __future__ import annotations

import functools
import re
import struct
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from reproducer.data.dumpfmt import crc64
from reproducer.data.endpoint import Endpoint, valkey_errors
from reproducer.data.formats.entries import (
    Conflict,
    EntryWriter,
    check_databases,
    check_target,
    conflict_of,
    move_keys,
    source_clients,
)
from reproducer.data.formats.scratch import ScratchServer
from reproducer.errors import InputError
from reproducer.procs import child_env

Progress = Callable[[int], None]
_HEADER = re.compile(rb"^(?:REDIS(\d{4})|VALKEY(\d{3}))")
#: Files larger than this are checksummed by valkey-server itself when it loads them (a pure-Python CRC64
#: runs at about 10 MB/s); its refusal is reported as fast, from its log.
CRC_CHECK_LIMIT = 64 << 20
_EOF = 0xFF


def export(
    source: Endpoint,
    path: Path,
    *,
    dbs: tuple[int, ...] | None = None,
    match: str | None = None,
    progress: Progress | None = None,
) -> int:
    """Write every key of ``source`` into a scratch server and save its RDB to ``path``; returns the count."""
    with ScratchServer() as scratch:
        writer, done = EntryWriter.local(scratch.client, "the scratch server"), 0
        try:
            for db, client in source_clients(source, dbs):
                count = 0
                with client, valkey_errors(f"reading {source} db {db}"):
                    for count in move_keys(client, db, writer, match=match):
                        if progress:
                            progress(done + count)
                    done += count
            writer.flush()
        finally:
            writer.close()
        scratch.save_to(path)
    return writer.written


def load(
    path: Path,
    target: Endpoint,
    *,
    conflict: Conflict | None = None,
    replace: bool | None = None,
    progress: Progress | None = None,
) -> tuple[int, int, int]:
    """Load ``path`` into a scratch server and write its keys to ``target``; returns (written, expired, skipped).

    ``replace`` is the older form of ``conflict`` (True: "replace", False: "skip").
    """
    policy = conflict_of(conflict, replace)
    check_file(path)
    check_target(target, policy)
    with ScratchServer(path) as scratch:
        check_databases(target, scratch.databases())
        writer = EntryWriter(target, conflict=policy)
        try:
            _copy_out(scratch, writer, progress)
        finally:
            writer.close()
    return writer.written, writer.expired, writer.skipped


def _copy_out(scratch: ScratchServer, writer: EntryWriter, progress: Progress | None) -> None:
    done = 0
    for db in scratch.databases():
        count = 0
        with scratch.client(db) as client, valkey_errors("reading the scratch server"):
            for count in move_keys(client, db, writer):
                if progress:
                    progress(done + count)
            done += count
    writer.flush()


def check_file(path: Path) -> None:
    """Refuse a file that is not a complete, undamaged RDB file of a version the scratch server reads."""
    if not path.is_file():
        raise InputError(f"RDB file {path} does not exist", hint="check the path")
    size = path.stat().st_size
    with path.open("rb") as handle:
        head = handle.read(9)
        match = _HEADER.match(head)
        if match is None:
            raise InputError(f"{path} is not an RDB file (no REDIS/VALKEY magic and version)", hint="pass an RDB dump")
        version = int(match.group(1) or match.group(2))
        _check_version(path, version)
        if version < 5:
            return
        if size < 18:
            raise InputError(f"{path} is truncated ({size} bytes)", hint="export the file again")
        handle.seek(size - 9)
        tail = handle.read(9)
        if tail[0] != _EOF:
            raise InputError(
                f"{path} is truncated: it does not end with the RDB end-of-file marker and checksum",
                hint="the copy was cut short: fetch or export the file again",
            )
        expected = struct.unpack("<Q", tail[1:])[0]
        if expected and size <= CRC_CHECK_LIMIT:
            handle.seek(0)
            _check_crc(path, handle, size - 8, expected)


def _check_crc(path: Path, handle: BinaryIO, length: int, expected: int) -> None:
    actual = 0
    while length > 0:
        chunk = handle.read(min(length, 1 << 20))
        actual, length = crc64(chunk, actual), length - len(chunk)
    if actual != expected:
        raise InputError(
            f"{path} is damaged: its CRC64 checksum is {actual:#018x}, the file says {expected:#018x}",
            hint="the file was altered or corrupted: fetch or export it again",
        )


def _check_version(path: Path, version: int) -> None:
    newest = scratch_rdb_version()
    if version <= 11 or (newest >= 80 and 80 <= version <= newest):
        return
    raise InputError(
        f"{path} is RDB version {version}, newer than this machine's valkey-server reads (RDB {newest})",
        hint="export it from the source with 'reproducer export' (JSONL or AOF), or install a newer valkey-server",
    )


@functools.cache
def scratch_rdb_version() -> int:
    """The newest RDB version the local valkey-server reads (11 up to Valkey 8, 80 from Valkey 9)."""
    try:
        argv = ["valkey-server", "--version"]
        out = subprocess.run(argv, capture_output=True, text=True, check=False, env=child_env()).stdout
    except OSError:
        return 11
    found = re.search(r"v=(\d+)\.", out)
    return 80 if found and int(found.group(1)) >= 9 else 11
