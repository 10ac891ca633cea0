"""Import files are untrusted: linked AOF members are refused, and no error ever quotes the file's bytes.

Also: the valkey-server processes we start (sandbox fleets, the import scratch server) get an allow-listed
environment, so a secret of ours never reaches them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from reproducer.data.formats.scratch import ScratchServer
from reproducer.errors import InputError
from reproducer.sandbox.fleet import Fleet, FleetSpec
from tests.support.cli import run

pytestmark = pytest.mark.integration

SECRET = "s3cr3t-Link-pw"
#: the ways a secret could be echoed: whole, its start, or as Python would repr its bytes
NEEDLES = (SECRET, SECRET[:6], "TOKEN=")
#: a refused target: nothing listens there, and the file is refused before connecting
TARGET = "valkey://127.0.0.1:9"


def cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run(*args, cwd=cwd, timeout=60)


def assert_refused_without_echo(result: subprocess.CompletedProcess[str]) -> str:
    output = result.stdout + result.stderr
    assert result.returncode in (1, 2, 3, 4), output
    assert "error:" in result.stderr and "Traceback" not in output, output
    for needle in NEEDLES:
        assert needle not in output, output
    return result.stderr


@pytest.fixture
def aof_dir(tmp_path: Path) -> Path:
    """An AOF directory whose manifest names a member that is a link to ../secret.txt."""
    (tmp_path / "secret.txt").write_text(f"TOKEN={SECRET}\n")
    aof = tmp_path / "aof"
    aof.mkdir()
    (aof / "appendonly.aof.manifest").write_text("file appendonly.aof.1.incr.aof seq 1 type i\n")
    (aof / "appendonly.aof.1.incr.aof").symlink_to("../secret.txt")
    return aof


def test_aof_member_linked_to_a_secret_is_refused_as_a_link(aof_dir):
    stderr = assert_refused_without_echo(cli(aof_dir.parent, "import", "aof", TARGET, "--format", "aof"))
    assert "link" in stderr


def test_plain_garbage_aof_never_quotes_its_bytes(tmp_path):
    (tmp_path / "data.aof").write_text(f"TOKEN={SECRET}\n")
    stderr = assert_refused_without_echo(cli(tmp_path, "import", "data.aof", TARGET))
    assert "byte 0" in stderr and "0x54" in stderr


def test_aof_with_a_secret_as_a_command_name_never_quotes_it(tmp_path):
    secret = f"TOKEN={SECRET}".encode()
    (tmp_path / "data.aof").write_bytes(b"*1\r\n$%d\r\n%s\r\n" % (len(secret), secret))
    stderr = assert_refused_without_echo(cli(tmp_path, "import", "data.aof", TARGET))
    assert "command 1 at byte 0" in stderr


def test_aof_dangerous_known_command_is_still_named(tmp_path):
    (tmp_path / "data.aof").write_bytes(b"*1\r\n$8\r\nFLUSHALL\r\n")
    stderr = assert_refused_without_echo(cli(tmp_path, "import", "data.aof", TARGET))
    assert "FLUSHALL" in stderr


@pytest.mark.parametrize(
    "line",
    [
        {"db": 0, "type": f"TOKEN={SECRET}", "key": "k", "value": "v"},
        {"type": "string", "key": "k", "value": "v", "db": f"TOKEN={SECRET}"},
        {"db": 0, "type": "string", "key": "k", "value": "v", "expire_at_ms": f"TOKEN={SECRET}"},
        {"db": 0, "type": "string", "key": "k", "value": f"TOKEN={SECRET}!!", "b64": True},
        {"db": 0, "type": "zset", "key": "k", "value": [["m", f"TOKEN={SECRET}"]]},
    ],
    ids=["type", "db", "expiry", "base64", "score"],
)
def test_jsonl_errors_never_quote_values(tmp_path, line):
    (tmp_path / "data.jsonl").write_text(json.dumps(line) + "\n")
    stderr = assert_refused_without_echo(cli(tmp_path, "import", "data.jsonl", TARGET))
    assert "data.jsonl:1" in stderr


def test_rdb_garbage_never_quotes_its_bytes(tmp_path):
    (tmp_path / "data.rdb").write_text(f"TOKEN={SECRET}\n")
    assert_refused_without_echo(cli(tmp_path, "import", "data.rdb", TARGET))


# ---- environment of the valkey-server children ------------------------------------------------------------


def environ_seen(record: Path) -> dict[str, str]:
    lines = record.read_bytes().decode(errors="replace").split("\0")
    return dict(item.split("=", 1) for item in lines if "=" in item)


@pytest.fixture
def secret_env(monkeypatch, tmp_path):
    """Secrets in our environment, and a valkey-server on PATH that records its environment, then runs the real one.

    valkey-server rewrites its process title over the environment block, so /proc/PID/environ of the server
    itself reads empty: the wrapper reads its own /proc/self/environ (the same environment) before exec.
    """
    real = shutil.which("valkey-server")
    assert real
    record = tmp_path / "environ"
    wrapper = tmp_path / "bin" / "valkey-server"
    wrapper.parent.mkdir()
    wrapper.write_text(f'#!/bin/sh\ncat /proc/self/environ > "{record}"\nexec "{real}" "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{wrapper.parent}:{os.environ['PATH']}")
    monkeypatch.setenv("SRC_PW", "src-pw-value")
    monkeypatch.setenv("DATABASE_URL", "valkey://app:url-pw-value@db:6379")
    return record


def test_fleet_servers_get_an_allow_listed_environment(secret_env):
    with Fleet.start(FleetSpec()):
        env = environ_seen(secret_env)
    assert "PATH" in env and not {"SRC_PW", "DATABASE_URL"} & set(env), sorted(env)


def test_scratch_server_gets_an_allow_listed_environment(secret_env):
    with ScratchServer():
        env = environ_seen(secret_env)
    assert "PATH" in env and not {"SRC_PW", "DATABASE_URL"} & set(env), sorted(env)


def test_rdb_the_server_cannot_load_is_refused_with_the_reason_never_the_key(tmp_path):
    """valkey-server's RDB check names the key it was reading: the message gives the offset and reason only."""
    key = f"TOKEN={SECRET}".encode()
    body = b"REDIS0011\xfe\x00\x02" + bytes([len(key)]) + key + b"\x05\x01\x01a"  # a set cut short
    path = tmp_path / "dump.rdb"
    path.write_bytes(body + b"\xff" + b"\0" * 8)  # checksum 0: not checked, the server finds the damage
    with pytest.raises(InputError) as error:
        ScratchServer(path)
    message = str(error.value)
    assert "offset 38" in message and "Unexpected EOF" in message, message
    assert not [needle for needle in NEEDLES if needle in message], message


def test_a_server_error_on_replay_never_quotes_the_file(tmp_path):
    """XGROUP with an unknown subcommand: the server's error quotes it; our message does not."""
    secret = f"TOKEN={SECRET}".encode()
    (tmp_path / "data.aof").write_bytes(b"*3\r\n$6\r\nXGROUP\r\n$%d\r\n%s\r\n$1\r\nk\r\n" % (len(secret), secret))
    with Fleet.start(FleetSpec()) as fleet:
        stderr = assert_refused_without_echo(
            cli(tmp_path, "import", "data.aof", f"valkey://127.0.0.1:{fleet.primary.port}")
        )
    assert "command 1 at byte 0 (XGROUP) failed" in stderr


def test_a_pipeline_error_on_jsonl_import_never_quotes_the_file(tmp_path):
    """valkey-py names the failed command with its arguments ("Command # 2 (XADD key id ...)"): not in our message."""
    secret = f"TOKEN={SECRET}"
    stream = {"entries": [[secret, ["f", "v"]]], "meta": {"last_id": "0-1", "groups": []}}
    line = {"db": 0, "key": secret, "type": "stream", "expire_at_ms": None, "value": stream}
    (tmp_path / "data.jsonl").write_text(json.dumps(line) + "\n")
    with Fleet.start(FleetSpec()) as fleet:
        stderr = assert_refused_without_echo(
            cli(tmp_path, "import", "data.jsonl", f"valkey://127.0.0.1:{fleet.primary.port}")
        )
    assert "Invalid stream ID" in stderr
