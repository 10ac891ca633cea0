"""Import treats its file as untrusted: conflict policy, AOF allow-list, corrupt files, a private scratch server.

Every test runs real valkey-server processes; files are written by hand the way an attacker would.
"""

from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reproducer.data.dumpfmt import crc64
from reproducer.data.endpoint import parse_endpoint
from reproducer.data.formats import format_module
from reproducer.data.formats.scratch import ScratchServer
from reproducer.errors import InputError
from reproducer.sandbox.fleet import Fleet, FleetSpec
from tests.support import cli
from tests.support.wait import eventually

pytestmark = pytest.mark.integration


def resp(*args: str | bytes) -> bytes:
    """One command in RESP, as an AOF holds it."""
    out = b"*%d\r\n" % len(args)
    for arg in args:
        data = arg.encode() if isinstance(arg, str) else arg
        out += b"$%d\r\n%s\r\n" % (len(data), data)
    return out


def endpoint(fleet: Fleet):
    return parse_endpoint(f"valkey://127.0.0.1:{fleet.primary.port}", environ={})


def load(fmt: str, path: Path, fleet: Fleet, conflict: str = "refuse"):
    return format_module(fmt).load(path, endpoint(fleet), conflict=conflict)


@pytest.fixture
def target():
    """A target holding two keys of its own."""
    with Fleet.start(FleetSpec()) as fleet:
        client = fleet.client(fleet.primary)
        client.set("mine", "the target's value")
        client.rpush("list", "target")
        yield fleet


@pytest.fixture(scope="module")
def rdb_file(tmp_path_factory) -> Path:
    """A real RDB file with 3 keys, saved by valkey-server."""
    with Fleet.start(FleetSpec()) as fleet:
        client = fleet.client(fleet.primary)
        client.set("mine", "the file's value")
        client.set("from-file", "1")
        client.hset("h", mapping={"a": "1"})
        path = tmp_path_factory.mktemp("rdb") / "dump.rdb"
        format_module("rdb").export(endpoint(fleet), path)
    return path


def _files(tmp_path: Path, rdb_file: Path) -> dict[str, Path]:
    jsonl = tmp_path / "in.jsonl"
    jsonl.write_text('{"db":0,"key":"mine","type":"string","expire_at_ms":null,"value":"the file\'s value"}\n')
    aof = tmp_path / "in.aof"
    aof.write_bytes(resp("SET", "mine", "the file's value") + resp("RPUSH", "list", "file"))
    return {"jsonl": jsonl, "aof": aof, "rdb": rdb_file}


# ---- 1. conflict policy -----------------------------------------------------------------------------------


@pytest.mark.bad_input
@pytest.mark.parametrize("fmt", ["jsonl", "rdb", "aof"])
def test_import_refuses_a_non_empty_target(target, tmp_path, rdb_file, fmt):
    path = _files(tmp_path, rdb_file)[fmt]
    with pytest.raises(InputError, match=r"is not empty: 2 key\(s\)") as error:
        load(fmt, path, target)
    assert "--replace" in error.value.hint and "--skip-existing" in error.value.hint
    client = target.client(target.primary)
    assert client.get("mine") == "the target's value" and client.lrange("list", 0, -1) == ["target"]
    assert client.dbsize() == 2


@pytest.mark.bad_input
def test_the_import_command_refuses_a_non_empty_target(target, tmp_path, rdb_file):
    path = _files(tmp_path, rdb_file)["aof"]
    url = f"valkey://127.0.0.1:{target.primary.port}"
    result = cli.run("import", path, url)
    assert result.returncode == 2 and "is not empty: 2 key(s)" in result.stderr
    assert "--skip-existing" in result.stderr and "Traceback" not in result.stderr
    assert target.client(target.primary).get("mine") == "the target's value"
    kept = cli.run("import", path, url, "--skip-existing")
    assert kept.returncode == 0, kept.stderr
    assert target.client(target.primary).lrange("list", 0, -1) == ["target"]


@pytest.mark.parametrize("fmt", ["jsonl", "rdb", "aof"])
def test_skip_existing_keeps_every_target_key_in_every_format(target, tmp_path, rdb_file, fmt):
    path = _files(tmp_path, rdb_file)[fmt]
    _written, _expired, skipped = load(fmt, path, target, "skip")
    client = target.client(target.primary)
    assert client.get("mine") == "the target's value"
    assert client.lrange("list", 0, -1) == ["target"]
    assert skipped >= 1


def test_aof_replace_rebuilds_a_key_instead_of_appending_to_it(target, tmp_path):
    path = tmp_path / "in.aof"
    path.write_bytes(resp("RPUSH", "list", "file") + resp("SET", "new", "x"))
    load("aof", path, target, "replace")
    client = target.client(target.primary)
    assert client.lrange("list", 0, -1) == ["file"] and client.get("new") == "x"


# ---- 2. AOF: data commands only ---------------------------------------------------------------------------

HOSTILE = [
    ["FLUSHALL"],
    ["flushdb", "ASYNC"],
    ["CONFIG", "SET", "maxmemory", "1mb"],
    ["ACL", "SETUSER", "evil", "on", "nopass", "+@all", "~*"],
    ["EVAL", "redis.call('flushall')", "0"],
    ["FUNCTION", "FLUSH"],
    ["SCRIPT", "FLUSH"],
    ["DEBUG", "SLEEP", "0"],
    ["SHUTDOWN", "NOSAVE"],
    ["MODULE", "LOAD", "/tmp/evil.so"],
    ["REPLICAOF", "127.0.0.1", "1"],
    ["MIGRATE", "127.0.0.1", "1", "mine", "0", "1000"],
    ["SAVE"],
    ["SWAPDB", "0", "1"],
    ["KEYS", "*"],
]


@pytest.mark.bad_input
@pytest.mark.parametrize("hostile", HOSTILE, ids=lambda c: "-".join(c[:2]))
def test_aof_refuses_non_data_commands_before_applying_anything(target, tmp_path, hostile):
    path = tmp_path / "evil.aof"
    head = resp("SET", "a", "1") + resp("SELECT", "0")
    path.write_bytes(head + resp(*hostile) + resp("SET", "b", "2"))
    with pytest.raises(InputError) as error:
        load("aof", path, target, "replace")
    message = error.value.message
    assert hostile[0].upper() in message and "command 3" in message and f"byte {len(head)}" in message
    assert "nothing was applied" in message
    client = target.client(target.primary)
    assert client.dbsize() == 2 and client.get("a") is None
    assert client.config_get("maxmemory")["maxmemory"] == "0"
    assert "evil" not in client.acl_users()


@pytest.mark.bad_input
@pytest.mark.parametrize(
    ("content", "offset"),
    [
        (b"hello world\r\n", 0),
        (resp("SET", "a", "1") + b'{"db": 0}\r\n', len(resp("SET", "a", "1"))),
        (resp("SET", "a", "1") + b":42\r\n", len(resp("SET", "a", "1"))),
        (resp("DEL", "k") + b"*2\r\n$x\r\n", len(resp("DEL", "k")) + 4),
    ],
    ids=["text", "json-after-a-command", "integer-reply", "bad-length"],
)
def test_a_non_resp_aof_fails_fast_naming_the_byte_offset(target, tmp_path, content, offset):
    path = tmp_path / "bad.aof"
    path.write_bytes(content)
    with pytest.raises(InputError, match=f"byte {offset}"):
        load("aof", path, target, "replace")
    assert target.client(target.primary).dbsize() == 2


def test_an_aof_error_midway_says_what_was_applied(target, tmp_path):
    path = tmp_path / "wrongtype.aof"
    path.write_bytes(resp("SET", "a", "1") + resp("SADD", "a", "x") + resp("SET", "b", "2"))
    with pytest.raises(Exception, match="1 of 3 commands were applied") as error:
        load("aof", path, target, "replace")
    assert "command 2" in str(error.value)


# ---- 3. corrupt RDB files fail fast ----------------------------------------------------------------------


def _rdb(version: bytes, body: bytes = b"\xfe\x00\xfb\x00\x00\xff") -> bytes:
    data = version + body
    return data + struct.pack("<Q", crc64(data))


@pytest.mark.bad_input
@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda d: d[:20] + bytes([d[20] ^ 0xFF]) + d[21:], "checksum"),
        (lambda d: d[: len(d) // 2], "truncated"),
        (lambda d: b"REDIS0012" + d[9:], "version 12"),
        (lambda d: b"VALKEY099" + d[9:], "version 99"),
        (lambda d: b"REDISabcd" + d[9:], "not an RDB file"),
    ],
    ids=["flipped-byte", "truncated", "redis-7.4", "future-valkey", "bad-version"],
)
def test_a_corrupt_rdb_fails_fast_with_the_reason(target, tmp_path, rdb_file, damage, reason):
    path = tmp_path / "bad.rdb"
    path.write_bytes(damage(rdb_file.read_bytes()))
    started = time.monotonic()
    with pytest.raises(InputError, match=reason):
        load("rdb", path, target, "replace")
    assert time.monotonic() - started < 5
    assert target.client(target.primary).dbsize() == 2


def test_an_rdb_the_server_rejects_fails_fast_with_its_log_line(target, tmp_path):
    path = tmp_path / "bad.rdb"
    path.write_bytes(_rdb(b"REDIS0011", b"\x00\x03key\xff\xff\xff\xff\xff\xff"))
    started = time.monotonic()
    with pytest.raises(InputError, match="valkey-server could not load"):
        load("rdb", path, target, "replace")
    assert time.monotonic() - started < 10


# ---- 4. the scratch server --------------------------------------------------------------------------------


def _tcp_listeners(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            link = os.readlink(fd)
        except FileNotFoundError:  # closed since the directory was listed (the server is loading the dump)
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    listening = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:
                listening.add(fields[1])
    return listening


def _assert_private(pid: int, directory: Path) -> None:
    assert _tcp_listeners(pid) == set(), "the scratch server listens on TCP"
    assert directory.stat().st_mode & 0o077 == 0
    sockets = [p for p in directory.iterdir() if p.is_socket()]
    assert len(sockets) == 1
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(str(sockets[0]))
        sock.sendall(b"*1\r\n$4\r\nPING\r\n")
        assert sock.recv(100).startswith(b"-NOAUTH")
    configs = [p for p in directory.iterdir() if p.suffix == ".conf"]
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in configs)
    assert b"requirepass" not in Path(f"/proc/{pid}/cmdline").read_bytes()


def test_scratch_server_is_private_and_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    with ScratchServer() as scratch:
        _assert_private(scratch.pid, scratch.directory)
        assert scratch.client(0).ping()
    assert list(tmp_path.iterdir()) == []


def _valkey_child(pid: int) -> int | None:
    for child in cli.descendants(pid):
        try:
            named = Path(f"/proc/{child}/comm").read_text().strip() == "valkey-server"
            if named and b"scratch" in Path(f"/proc/{child}/cmdline").read_bytes():
                return child
        except OSError:
            continue
    return None


@pytest.fixture(scope="module")
def big_rdb(tmp_path_factory) -> Path:
    """An RDB of 100,000 keys: importing it takes several seconds."""
    with Fleet.start(FleetSpec()) as fleet:
        client = fleet.client(fleet.primary)
        for start in range(0, 100_000, 10_000):
            client.mset({f"k:{i}": "v" * 20 for i in range(start, start + 10_000)})
        path = tmp_path_factory.mktemp("big") / "big.rdb"
        format_module("rdb").export(endpoint(fleet), path)
    return path


@pytest.mark.fault("SIGTERM of the importing process while an RDB is imported", ends="error")
def test_sigterm_during_rdb_import_leaves_no_scratch_server(big_rdb, tmp_path):
    scratch_tmp = tmp_path / "tmp"
    scratch_tmp.mkdir()
    with Fleet.start(FleetSpec()) as empty:
        env = {**os.environ, "TMPDIR": str(scratch_tmp)}
        proc = cli.start("import", big_rdb, f"valkey://127.0.0.1:{empty.primary.port}", env=env)
        try:
            server = eventually(lambda: _valkey_child(proc.pid), "the scratch server", timeout=20, proc=proc)
            directories = list(scratch_tmp.iterdir())
            assert len(directories) == 1
            eventually(lambda: any(p.is_socket() for p in directories[0].iterdir()), "its socket", timeout=20)
            _assert_private(server, directories[0])
            target = empty.client(empty.primary)
            eventually(lambda: target.dbsize() > 0, "the import under way", timeout=20, proc=proc)
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()
        eventually(
            lambda: not Path(f"/proc/{server}").exists(), "the scratch server to die with its parent", timeout=10
        )
        eventually(lambda: not list(scratch_tmp.iterdir()), "the scratch directory (and its dump) removed", timeout=10)


# ---- 5. malformed JSONL lines ----------------------------------------------------------------------------

_GOOD = '{"db":0,"key":"ok","type":"string","expire_at_ms":null,"value":"x"}'
MALFORMED = [
    ('{"db":0,"key":"z","type":"zset","expire_at_ms":null,"value":"a string"}', "zset"),
    ('{"db":0,"key":"z","type":"zset","expire_at_ms":null,"value":[["m","not a score"]]}', "score"),
    ('{"db":0,"key":"u","type":"module","expire_at_ms":null,"value":"x"}', "unknown type, a string of 6 characters"),
    ('["db", 0, "key"]', "not a JSON object"),
    ('{"db":0,"key":"t","type":"string","expire_at_ms":"tomorrow","value":"x"}', "expire_at_ms"),
    ('{"db":0,"key":"!!!","type":"string","expire_at_ms":null,"value":"x","b64":true}', "base64"),
    ('{"db":-1,"key":"d","type":"string","expire_at_ms":null,"value":"x"}', "db"),
    ('{"db":0,"type":"string","expire_at_ms":null,"value":"x"}', "key"),
    ('{"db":0,"key":"h","type":"hash","expire_at_ms":null,"value":[["f"]]}', "hash"),
    ('{"db":0,"key":"s","type":"stream","expire_at_ms":null,"value":[]}', "stream"),
    ('{"db":0,"key":1,"type":"string","expire_at_ms":null,"value":"x"}', "key"),
]


@pytest.mark.bad_input
@pytest.mark.parametrize(("line", "problem"), MALFORMED, ids=[p for _l, p in MALFORMED])
def test_a_malformed_jsonl_line_names_its_number_and_problem(tmp_path, line, problem):
    path = tmp_path / "bad.jsonl"
    path.write_text(f"{_GOOD}\n\n{line}\n")
    from reproducer.data.formats import jsonl

    with pytest.raises(InputError) as error:
        list(jsonl.read_file(path))
    assert f"{path}:3:" in error.value.message and problem in error.value.message


@pytest.mark.bad_input
def test_a_non_utf8_jsonl_line_names_its_number(tmp_path):
    from reproducer.data.formats import jsonl

    path = tmp_path / "bad.jsonl"
    path.write_bytes(_GOOD.encode() + b"\n" + _GOOD.encode().replace(b'"x"', b'"\xff\xfe"') + b"\n")
    with pytest.raises(InputError, match=r"bad.jsonl:2: .*UTF-8"):
        list(jsonl.read_file(path))


def test_a_malformed_line_in_the_middle_writes_nothing(target, tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(_GOOD + "\n" + '["a list"]\n')
    with pytest.raises(InputError, match="bad.jsonl:2"):
        load("jsonl", path, target, "replace")
    assert target.client(target.primary).get("ok") is None


# ---- 6. memory bounded by bytes ----------------------------------------------------------------------------

_MEASURE = """
import resource, sys
from pathlib import Path
from reproducer.pipeline import data as pipeline_data
fmt, action, path, url = sys.argv[1:]
if action == "export":
    pipeline_data.export_data(pipeline_data.ExportRequest(url, Path(path), fmt))
else:
    pipeline_data.import_data(pipeline_data.ImportRequest(Path(path), url, fmt))
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
"""


def _peak_mb(fmt: str, action: str, path: Path, fleet: Fleet) -> int:
    url = f"valkey://127.0.0.1:{fleet.primary.port}"
    out = subprocess.run(
        [sys.executable, "-c", _MEASURE, fmt, action, str(path), url], capture_output=True, text=True, check=True
    )
    return int(out.stdout.split()[-1])


@pytest.mark.parametrize("fmt", ["rdb", "jsonl", "aof"])
def test_export_and_import_memory_is_bounded_by_bytes_not_keys(tmp_path, fmt):
    with Fleet.start(FleetSpec()) as source:
        client = source.client(source.primary)
        for i in range(24):
            client.set(f"big:{i}", os.urandom(5 << 20).hex()[: 10 << 20])
        path = tmp_path / f"big.{fmt}"
        exported = _peak_mb(fmt, "export", path, source)
    with Fleet.start(FleetSpec()) as target:
        baseline = _peak_mb(fmt, "export", tmp_path / f"empty.{fmt}", target)
        imported = _peak_mb(fmt, "import", path, target)
        assert target.client(target.primary).dbsize() == 24
    # 240 MB of values; one batch is at most 8 MB or one key (10 MB), held a few times over at most.
    print(f"{fmt}: baseline {baseline} MB, export {exported} MB, import {imported} MB")
    assert exported - baseline < 120, (baseline, exported)
    assert imported - baseline < 120, (baseline, imported)


# ---- databases a cluster does not have -------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster():
    with Fleet.start(FleetSpec(topology="cluster", shards=2)) as fleet:
        yield fleet


@pytest.mark.bad_input
@pytest.mark.parametrize("fmt", ["jsonl", "aof"])
def test_keys_of_another_database_are_refused_by_a_cluster_target(cluster, tmp_path, fmt):
    path = tmp_path / f"db3.{fmt}"
    if fmt == "jsonl":
        path.write_text(_GOOD + "\n" + _GOOD.replace('"db":0', '"db":3').replace('"ok"', '"other"') + "\n")
    else:
        path.write_bytes(resp("SET", "ok", "x") + resp("SELECT", "3") + resp("SET", "other", "x"))
    with pytest.raises(InputError, match=r"database\(s\) 3 but the cluster target"):
        load(fmt, path, cluster, "replace")
    nodes = [cluster.client(node) for node in cluster.servers]
    assert sum(node.dbsize() for node in nodes) == 0
