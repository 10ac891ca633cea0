"""The tests' CLI fork server behaves as ``python -m reproducer.cli`` in a fresh interpreter would, where it counts.

:func:`tests.support.cli.run` runs most of the suite's commands through it, so a difference here would make
hundreds of tests lie: exit status, the two output streams, the environment, the working directory, a hang-up, a
timeout and requests it must refuse are each checked against the real thing.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.support import cli, clizygote
from tests.support.wait import eventually


def fresh(*args: str, **kwargs) -> subprocess.CompletedProcess[str]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("REPRODUCER_TESTS_FRESH_CLI", "1")
        return cli.run(*args, **kwargs)


@pytest.mark.parametrize(
    "args",
    [("--version",), ("render", "--target", "aws"), ("verify", "--bogus"), ("render", "--help")],
    ids=["version", "usage-error", "unknown-option", "help"],
)
def test_status_and_both_streams_are_those_of_a_fresh_interpreter(args):
    forked, real = cli.run(*args), fresh(*args)
    assert (forked.returncode, forked.stdout, forked.stderr) == (real.returncode, real.stdout, real.stderr)
    assert forked.args == real.args


def test_the_child_gets_the_given_environment_and_directory_not_the_servers(tmp_path):
    (tmp_path / "spec.yaml").write_text("not: [a spec\n")
    env = {**os.environ, "REPRODUCER_DEBUG": "0", "NO_COLOR": "1"}
    forked = cli.run("render", "--spec", "spec.yaml", "--target", "aws", "--out", "out", cwd=tmp_path, env=env)
    real = fresh("render", "--spec", "spec.yaml", "--target", "aws", "--out", "out", cwd=tmp_path, env=env)
    assert forked.returncode == real.returncode != 0
    assert forked.stderr == real.stderr and "spec.yaml" in forked.stderr
    assert not (tmp_path / "out").exists()


def test_variables_a_fresh_interpreter_reads_at_start_get_a_fresh_interpreter():
    assert cli._forkable(dict(os.environ))
    assert not cli._forkable({**os.environ, "PYTHONHASHSEED": "7"})
    assert not cli._forkable({**os.environ, "LD_PRELOAD": "/nonexistent.so"})
    assert not cli._forkable({**os.environ, "REPRODUCER_TESTS_FRESH_CLI": "1"})


def _hanging_source() -> tuple[socket.socket, str]:
    """A loopback port that accepts connections and never answers: a command reading from it waits."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    return listener, f"redis://127.0.0.1:{listener.getsockname()[1]}"


def test_a_timeout_kills_the_child_and_raises_as_subprocess_run_does():
    listener, url = _hanging_source()
    with listener:
        started = time.monotonic()
        with pytest.raises(subprocess.TimeoutExpired) as raised:
            cli.run("verify", url, url, timeout=2)
    assert time.monotonic() - started < 20
    assert raised.value.cmd == cli.argv("verify", url, url)


def test_garbage_and_missing_descriptors_are_refused_and_start_nothing():
    server = cli._Zygote.get()
    assert server is not None
    good = {"args": ["--version"], "env": {}, "cwd": "/"}
    requests = [
        (b"\x00\x00\x00\x05nope!", None),
        (None, (good, False)),
        *((None, (bad, True)) for bad in ({**good, "env": None}, {"args": "--version", "env": {}, "cwd": "/"},
                                          {**good, "cwd": "/nonexistent"}, {"args": [1], "env": {}, "cwd": "/"})),
    ]  # fmt: skip
    before = set(cli.descendants(server.process.pid))  # an earlier test's child may still be ending
    for payload, message in requests:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn, open(os.devnull, "rb") as null:
            conn.settimeout(10)
            conn.connect(server.path)
            if payload is not None:
                conn.sendall(payload)
            else:
                request, with_fds = message
                clizygote.send_message(conn, request, [null.fileno()] * 3 if with_fds else [])
            answer = clizygote.receive_message(conn)
        assert answer is not None and "error" in answer[0] and "pid" not in answer[0], (payload, message)
    assert not set(cli.descendants(server.process.pid)) - before, "a refused request started a process"
    assert cli.run("--version").returncode == 0, "the server still serves"


def test_a_client_that_hangs_up_has_its_child_killed(tmp_path):
    listener, url = _hanging_source()
    server = cli._Zygote.get()
    assert server is not None
    with listener, open(os.devnull, "rb") as null, open(tmp_path / "out", "wb") as out:
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.settimeout(10)
        conn.connect(server.path)
        request = {"args": ["verify", url, url], "env": dict(os.environ), "cwd": str(tmp_path)}
        clizygote.send_message(conn, request, [null.fileno(), out.fileno(), out.fileno()])
        answer = clizygote.receive_message(conn)
        assert answer is not None
        pid = answer[0]["pid"]
        assert Path(f"/proc/{pid}").exists()
        conn.close()
        eventually(lambda: not Path(f"/proc/{pid}").exists(), "the server to kill and reap the child", timeout=10)
