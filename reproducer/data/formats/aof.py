"""AOF files: replay their data commands into a target; export keys as an AOF of rebuild commands.

An AOF is a stream of RESP commands, and an untrusted one could hold anything a client may send, so
import replays **data commands only** (:data:`DATA_COMMANDS`: writes to keys, expiry, ``SELECT``;
``MULTI``/``EXEC`` are dropped and the commands between them kept). The whole file is read and checked
first: a command outside the list (``FLUSHALL``, ``CONFIG``, ``EVAL``, ...) or bytes that are not RESP
stop the import before anything is sent, naming the command's number and byte offset. A multi-part AOF
directory (Valkey 7+: manifest, base, incr files) is read in manifest order; a base in RDB form is
loaded through :mod:`reproducer.data.formats.rdb`.

Conflicts follow ``copy``: a non-empty target is refused unless ``replace`` (the first command touching
a key the target had deletes it first, so the file's version replaces it) or ``skip`` (commands on keys
the target had are dropped). Export writes, per key, the commands that rebuild it and a ``PEXPIREAT``.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reproducer.data import rebuild
from reproducer.data.endpoint import Endpoint, valkey_errors
from reproducer.data.formats import rdb
from reproducer.data.formats.entries import (
    Conflict,
    Entry,
    EntryWriter,
    check_databases,
    check_target,
    conflict_of,
    read_entries,
)
from reproducer.data.formats.redact import without_arguments
from reproducer.data.resp import command
from reproducer.errors import DataError, InputError, ReproducerError

Progress = Callable[[int], None]
_SKIPPED = {b"MULTI", b"EXEC"}
_MAX_BULK = 512 << 20
_MAX_LINE = 64

_ONE = (1, 1, 1)
_ALL = (1, -1, 1)
_TWO = (1, 2, 1)
_SINGLE_KEY = (
    b"SET SETEX PSETEX SETNX SETRANGE APPEND GETSET GETDEL GETEX INCR DECR INCRBY DECRBY INCRBYFLOAT "
    b"SETBIT BITFIELD PFADD EXPIRE PEXPIRE EXPIREAT PEXPIREAT PERSIST RESTORE HSET HMSET HSETNX HDEL "
    b"HINCRBY HINCRBYFLOAT SADD SREM SPOP ZADD ZREM ZINCRBY ZREMRANGEBYSCORE ZREMRANGEBYRANK "
    b"ZREMRANGEBYLEX ZPOPMIN ZPOPMAX LPUSH RPUSH LPUSHX RPUSHX LSET LREM LTRIM LINSERT LPOP RPOP XADD XDEL "
    b"XTRIM XSETID XACK XCLAIM XAUTOCLAIM GEOADD "
)
#: command → (first key, last key (-1: the last argument), step), as ``COMMAND INFO`` gives them.
DATA_COMMANDS: dict[bytes, tuple[int, int, int]] = {
    **dict.fromkeys(_SINGLE_KEY.split(), _ONE),
    b"XGROUP": (2, 2, 1),
    b"DEL": _ALL,
    b"UNLINK": _ALL,
    b"PFMERGE": _ALL,
    b"MSET": (1, -1, 2),
    b"MSETNX": (1, -1, 2),
    **dict.fromkeys([b"SMOVE", b"LMOVE", b"RPOPLPUSH", b"RENAME", b"RENAMENX", b"COPY"], _TWO),
}
_MULTI_KEY = {b"DEL", b"UNLINK", b"MSET", b"MSETNX"}
#: commands an AOF may hold that import refuses: named in messages (any other unknown name is not quoted)
_KNOWN_OTHERS = set(
    b"FLUSHALL FLUSHDB CONFIG EVAL EVALSHA EVAL_RO EVALSHA_RO FCALL FCALL_RO FUNCTION SCRIPT MODULE DEBUG "
    b"SHUTDOWN ACL REPLICAOF SLAVEOF CLIENT SAVE BGSAVE BGREWRITEAOF MIGRATE MOVE SWAPDB SORT SORT_RO "
    b"PUBLISH SPUBLISH SUBSCRIBE CLUSTER FAILOVER SYNC PSYNC MONITOR KEYS SCAN GET AUTH HELLO PING ECHO "
    b"OBJECT WAIT WAITAOF LATENCY SLOWLOG MEMORY COMMAND INFO DBSIZE LASTSAVE RESET QUIT".split()
)


def command_label(name: bytes) -> str:
    """A command name for a message: known names as such, anything else described, never quoted."""
    upper = name.upper()
    if upper in DATA_COMMANDS or upper in _KNOWN_OTHERS or upper in _SKIPPED or upper == b"SELECT":
        return upper.decode()
    return f"an unknown command of {len(name)} bytes"


@dataclass
class Command:
    """One command of an AOF file: its number (from 1), byte offset and arguments."""

    number: int
    offset: int
    args: list[bytes]

    @property
    def name(self) -> bytes:
        """The command name, upper case."""
        return self.args[0].upper()

    def where(self, path: Path) -> str:
        """``path: command N at byte X (NAME)``."""
        return f"{path}: command {self.number} at byte {self.offset} ({command_label(self.name)})"


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
            for args in commands_for(entry):
                handle.write(command(*args))
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


# ---- import ---------------------------------------------------------------------------------------------


def load(
    path: Path,
    target: Endpoint,
    *,
    conflict: Conflict | None = None,
    replace: bool | None = None,
    progress: Progress | None = None,
) -> tuple[int, int, int]:
    """Replay ``path`` (an AOF file or a multi-part AOF directory) into ``target``; returns (commands, 0, kept).

    ``replace`` is the older form of ``conflict`` (True: "replace", False: "skip").
    """
    policy = conflict_of(conflict, replace)
    files = _aof_files(path)
    dbs: set[int] = {0}
    total = sum(check(file, dbs) if kind == "aof" else _check_rdb_part(file, policy) for kind, file in files)
    check_target(target, policy)
    check_databases(target, dbs)
    replay = _Replay(EntryWriter(target, conflict=policy), policy, total, progress)
    try:
        for kind, file in files:
            if kind == "rdb":
                replay.sent += rdb.load(file, target, conflict=policy)[0]
            else:
                replay.run(file)
    finally:
        replay.writer.close()
    return replay.sent, 0, len(replay.kept)


def check(path: Path, dbs: set[int] | None = None) -> int:
    """Read the whole file and refuse anything but data commands; returns the number of commands.

    The databases it selects are added to ``dbs``.
    """
    count = 0
    for count, cmd in enumerate(_commands(path), 1):  # noqa: B007 - the count is the result
        _check_command(path, cmd)
        if dbs is not None and cmd.name == b"SELECT":
            dbs.add(int(cmd.args[1]))
    return count


def _check_command(path: Path, cmd: Command) -> None:
    name = cmd.name
    if name in _SKIPPED:
        return
    if name == b"SELECT":
        if len(cmd.args) != 2 or not cmd.args[1].isdigit() or int(cmd.args[1]) > 10_000:
            raise InputError(f"{cmd.where(path)}: bad database number; nothing was applied", hint=_HINT)
        return
    keys = DATA_COMMANDS.get(name)
    if keys is None:
        raise InputError(
            f"{cmd.where(path)}: {command_label(name)} is not a data command, import does not replay it; "
            "nothing was applied",
            hint=_HINT,
        )
    if len(cmd.args) <= keys[0]:
        raise InputError(f"{cmd.where(path)}: too few arguments; nothing was applied", hint=_HINT)


_HINT = (
    "import replays data commands only (writes to keys, expiry, SELECT, MULTI/EXEC): "
    "remove the others from the file, or export the source with 'reproducer export'"
)


def _check_rdb_part(path: Path, policy: Conflict) -> int:
    if policy != "refuse":
        raise InputError(
            f"{path} is an RDB base of a multi-part AOF: it can only be imported into an empty target",
            hint="import into an empty target (without --replace or --skip-existing)",
        )
    rdb.check_file(path)
    return 0


def key_args(cmd: Command) -> list[bytes]:
    """The key arguments of a data command."""
    first, last, step = DATA_COMMANDS.get(cmd.name, (0, 0, 1))
    if first == 0:
        return []
    end = len(cmd.args) if last == -1 else min(last + 1, len(cmd.args))
    return cmd.args[first:end:step]


@dataclass
class _Replay:
    """Sends checked commands in order, applying the conflict policy on the first touch of each key."""

    writer: EntryWriter
    policy: Conflict
    total: int
    progress: Progress | None
    sent: int = 0
    db: int = 0
    seen: set[tuple[int, bytes]] = field(default_factory=set)
    kept: set[tuple[int, bytes]] = field(default_factory=set)

    def run(self, path: Path) -> None:
        """Replay one checked AOF file."""
        for cmd in _commands(path):
            if cmd.name in _SKIPPED:
                continue
            if cmd.name == b"SELECT":
                self.db = int(cmd.args[1])
                continue
            try:
                self._send(cmd)
            except ReproducerError as exc:
                raise DataError(
                    f"{cmd.where(path)} failed: {without_arguments(exc.message)}; "
                    f"{self.sent} of {self.total} commands were applied (the target holds them)",
                    hint=exc.hint or "fix the file or the target, then import again with --replace",
                ) from None
            self.sent += 1
            if self.progress and self.sent % 1000 == 0:
                self.progress(self.sent)

    def _send(self, cmd: Command) -> None:
        keys = key_args(cmd)
        args = self._without_kept(cmd, keys) if self.policy != "refuse" else cmd.args
        if args is None:
            return
        client = self.writer.client(keys[0] if keys else b"", self.db)
        with valkey_errors(f"replaying on {self.writer.name}"):
            client.execute_command(*args)

    def _without_kept(self, cmd: Command, keys: list[bytes]) -> list[bytes] | None:
        for key in keys:
            self._first_touch(key)
        kept = [key for key in keys if (self.db, key) in self.kept]
        if not kept:
            return cmd.args
        if cmd.name not in _MULTI_KEY:
            return None
        step = DATA_COMMANDS[cmd.name][2]
        rest = [
            cmd.args[i : i + step] for i in range(1, len(cmd.args), step) if (self.db, cmd.args[i]) not in self.kept
        ]
        return [cmd.args[0], *(arg for group in rest for arg in group)] if rest else None

    def _first_touch(self, key: bytes) -> None:
        if (self.db, key) in self.seen:
            return
        self.seen.add((self.db, key))
        client = self.writer.client(key, self.db)
        with valkey_errors(f"reading {self.writer.name}"):
            if self.policy == "replace":
                client.delete(key)
            elif client.exists(key):
                self.kept.add((self.db, key))


# ---- RESP reader with byte offsets ------------------------------------------------------------------------


def _commands(path: Path) -> Iterator[Command]:
    with path.open("rb") as handle:
        if handle.peek(5)[:5] in (b"REDIS", b"VALKE"):
            raise InputError(f"{path} is an RDB file, not an AOF", hint="name it *.rdb or pass --format rdb")
        number = 0
        while head := handle.peek(1)[:1]:
            offset = handle.tell()
            if head == b"#":  # annotation line (Valkey 7+: #TS:...)
                handle.readline(1024)
                continue
            number += 1
            yield Command(number, offset, _read_command(path, handle))


def _read_command(path: Path, handle: io.BufferedReader) -> list[bytes]:
    count = _read_header(path, handle, b"*", "a command (*<count>)")
    if count < 1:
        raise _not_resp(path, handle.tell(), "a command with no arguments")
    args = []
    for _ in range(count):
        length = _read_header(path, handle, b"$", "an argument ($<length>)")
        if length > _MAX_BULK:
            raise _not_resp(path, handle.tell(), f"an argument of {length} bytes (more than 512 MB)")
        data = handle.read(length + 2)
        if len(data) < length + 2:
            raise _truncated(path)
        if data[-2:] != b"\r\n":
            raise _not_resp(path, handle.tell() - 2, "an argument longer than its declared length")
        args.append(data[:-2])
    return args


def _read_header(path: Path, handle: io.BufferedReader, marker: bytes, what: str) -> int:
    offset = handle.tell()
    line = handle.readline(_MAX_LINE)
    if not line:
        raise _truncated(path)
    if not line.endswith(b"\r\n"):
        if len(line) < _MAX_LINE and line[:1] == marker and line[1:].strip().isdigit():
            raise _truncated(path)
        raise _not_resp(path, offset, f"{_describe(line, marker)} where {what} was expected")
    if line[:1] != marker or not line[1:-2].isdigit():
        raise _not_resp(path, offset, f"{_describe(line, marker)} where {what} was expected")
    return int(line[1:-2])


def _describe(line: bytes, marker: bytes) -> str:
    """What is wrong with a header line, never quoting it (an AOF can be any file, a secret one too)."""
    if line[:1] != marker:
        return f"byte {line[0]:#04x}"
    return f"{marker.decode()} followed by {len(line) - 1} bytes that are not a length"


def _not_resp(path: Path, offset: int, found: str) -> InputError:
    return InputError(
        f"{path} is not an AOF file: at byte {offset}, found {found}; nothing was applied",
        hint="pass an AOF file (RESP commands) or an AOF directory with its manifest",
    )


def _truncated(path: Path) -> InputError:
    return InputError(
        f"{path} ends in the middle of a command (truncated AOF); nothing was applied",
        hint="valkey-check-aof --fix can truncate it to the last complete command",
    )


def _aof_files(path: Path) -> list[tuple[str, Path]]:
    if path.is_file():
        return [("aof", path)]
    manifests = sorted(path.glob("*.manifest")) if path.is_dir() else []
    if not manifests:
        raise InputError(f"{path} is neither an AOF file nor an AOF directory with a manifest", hint="check the path")
    _check_member(path, manifests[0])
    files = []
    for number, line in enumerate(manifests[0].read_text(errors="replace").splitlines(), 1):
        words = line.split()
        fields = dict(zip(words[::2], words[1::2], strict=False))
        name = Path(fields.get("file", ""))
        if not fields.get("file") or name.is_absolute() or ".." in name.parts or len(name.parts) != 1:
            raise InputError(f"{manifests[0]}:{number}: not a manifest line naming a file", hint="check the manifest")
        _check_member(path, path / name)
        files.append(("rdb" if name.suffix == ".rdb" else "aof", path / name))
    return files


def _check_member(directory: Path, member: Path) -> None:
    """Refuse a member of an AOF directory that is a link or leads outside it (a link to a secret file)."""
    if member.is_symlink():
        raise InputError(
            f"{member} is a symbolic link: an AOF directory must hold its files, not links; nothing was applied",
            hint="copy the AOF directory with its files (cp -rL), not links",
        )
    if member.exists() and not member.is_file():
        raise InputError(f"{member} is not a regular file; nothing was applied", hint="check the AOF directory")
    if member.exists() and not member.resolve().is_relative_to(directory.resolve()):
        raise InputError(
            f"{member} leads outside the AOF directory {directory}; nothing was applied",
            hint="copy the AOF directory with its files (cp -rL), not links",
        )
