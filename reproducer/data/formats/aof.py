"""AOF files: replay their commands into a target; export keys as an AOF of rebuild commands.

An AOF is a stream of RESP commands. Import parses it with libvalkey's reader and sends each command to
the target (routed by its key when the target is a cluster; ``SELECT`` switches database; ``MULTI`` and
``EXEC`` are dropped, the commands between them are kept). A multi-part AOF directory (Valkey 7+:
manifest, base, incr files) is read in manifest order; a base in RDB form is loaded through
:mod:`reproducer.data.formats.rdb`. Export writes, per key, the commands that rebuild it and a
``PEXPIREAT`` for its absolute expiry.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import libvalkey

from reproducer.data import rebuild
from reproducer.data.endpoint import Endpoint
from reproducer.data.formats import rdb
from reproducer.data.formats.entries import Entry, EntryWriter, read_entries
from reproducer.data.resp import command
from reproducer.errors import InputError

Progress = Callable[[int], None]
_SKIPPED = {b"MULTI", b"EXEC"}


def export(
    source: Endpoint,
    path: Path,
    *,
    dbs: tuple[int, ...] | None = None,
    match: str | None = None,
    progress: Progress | None = None,
) -> int:
    """Write every key of ``source`` to ``path`` as rebuild commands; returns the number of keys."""
    count, current_db = 0, -1
    with path.open("wb") as handle:
        for entry in read_entries(source, dbs=dbs, match=match):
            if entry.db != current_db:
                handle.write(command("SELECT", entry.db))
                current_db = entry.db
            handle.write(b"".join(command(*args) for args in commands_for(entry)))
            count += 1
            if progress and count % 1000 == 0:
                progress(count)
    return count


def commands_for(entry: Entry) -> list[list[Any]]:
    """The commands that rebuild one entry on an empty server."""
    key, value = entry.key, entry.value
    chunks = [value.items[i : i + rebuild.CHUNK] for i in range(0, len(value.items), rebuild.CHUNK)]
    builders: dict[str, Callable[[list[Any]], list[Any]]] = {
        "hash": lambda c: ["HSET", key, *(x for pair in c for x in pair)],
        "set": lambda c: ["SADD", key, *c],
        "zset": lambda c: ["ZADD", key, *(x for m, s in c for x in (repr(float(s)), m))],
        "list": lambda c: ["RPUSH", key, *c],
    }
    if value.type == "string":
        commands: list[list[Any]] = [["SET", key, value.items]]
    elif value.type == "stream":
        commands = _stream_commands(key, value)
    else:
        commands = [builders[value.type](chunk) for chunk in chunks]
    if entry.expire_at_ms is not None:
        commands.append(["PEXPIREAT", key, entry.expire_at_ms])
    return commands


def _stream_commands(key: bytes, value: rebuild.Value) -> list[list[Any]]:
    meta = value.stream_meta
    commands: list[list[Any]] = [["XADD", key, entry_id, *flat] for entry_id, flat in value.items]
    if not value.items:
        commands += [
            ["XGROUP", "CREATE", key, "__reproducer_tmp", "0", "MKSTREAM"],
            ["XGROUP", "DESTROY", key, "__reproducer_tmp"],
        ]
    commands.append(
        ["XSETID", key, meta["last_id"], "ENTRIESADDED", meta["entries_added"], "MAXDELETEDID", meta["max_deleted_id"]]
    )
    for group in meta.get("groups", []):
        read = ["ENTRIESREAD", group["entries_read"]] if group["entries_read"] is not None else []
        commands.append(["XGROUP", "CREATE", key, group["name"], group["last_delivered_id"], *read])
    return commands


def load(
    path: Path, target: Endpoint, *, replace: bool = True, progress: Progress | None = None
) -> tuple[int, int, int]:
    """Replay ``path`` (an AOF file or a multi-part AOF directory) into ``target``; returns (commands, 0, 0)."""
    files = _aof_files(path)
    writer = EntryWriter(target, replace=replace)
    sent = 0
    try:
        for kind, file in files:
            if kind == "rdb":
                sent += rdb.load(file, target, replace=replace)[0]
                continue
            sent += _replay(file, writer, progress)
    finally:
        writer.close()
    return sent, 0, 0


def _replay(path: Path, writer: EntryWriter, progress: Progress | None) -> int:
    db, sent = 0, 0
    for args in _commands(path):
        name = bytes(args[0]).upper()
        if name in _SKIPPED:
            continue
        if name == b"SELECT":
            db = int(args[1])
            continue
        writer.send_raw(args[1] if len(args) > 1 else None, db, args)
        sent += 1
        if progress and sent % 1000 == 0:
            progress(sent)
    return sent


def _commands(path: Path) -> Iterator[list[bytes]]:
    reader = libvalkey.Reader()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            reader.feed(chunk)
            while (item := reader.gets()) is not False:
                if not isinstance(item, list):
                    raise InputError(
                        f"{path} is not an AOF file (found {item!r})", hint="pass an AOF file or directory"
                    )
                yield item
    if reader.has_data():
        raise InputError(
            f"{path} ends in the middle of a command (truncated AOF)",
            hint="valkey-check-aof --fix can truncate it to the last complete command",
        )


def _aof_files(path: Path) -> list[tuple[str, Path]]:
    if path.is_file():
        return [("aof", path)]
    manifests = sorted(path.glob("*.manifest")) if path.is_dir() else []
    if not manifests:
        raise InputError(f"{path} is neither an AOF file nor an AOF directory with a manifest", hint="check the path")
    files = []
    for line in manifests[0].read_text().splitlines():
        fields = dict(zip(line.split()[::2], line.split()[1::2], strict=False))
        name = path / fields["file"]
        files.append(("rdb" if name.suffix == ".rdb" else "aof", name))
    return files
