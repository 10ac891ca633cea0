"""The provider fork server (``reproducer.forkserver``) and its client, as the mirror's wrappers use them.

Terraform starts the wrapper; the wrapper runs ``reproducer.forkclient``, which has the server fork the provider.
What Terraform sees must be what it saw when the wrapper ran the interpreter itself: the provider's output on the
descriptors it gave, the provider's exit status, and no process left once the client is gone.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import reproducer
from reproducer import forkclient
from reproducer.forkserver import PROVIDER_SERVER_VARIABLE
from reproducer.offline import install_mirror
from reproducer.run import provider_server
from tests.support.wait import eventually

pytestmark = pytest.mark.integration

PACKAGE = str(Path(reproducer.__file__).resolve().parent.parent)
#: A module the test servers run: prints its pid, then sleeps (it ignores SIGINT, as providers do).
SLEEPER = textwrap.dedent(
    """
    import os, signal, sys, time
    if __name__ == "__main__":
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        print(os.getpid(), flush=True)
        sys.stderr.write("args " + " ".join(sys.argv[1:]) + "\\n")
        time.sleep(float(sys.argv[1]) if len(sys.argv) > 1 else 60)
        sys.exit(int(sys.argv[2]) if len(sys.argv) > 2 else 0)
    """
)


def _client(socket_path: str | Path, module: str, *args: str, **popen) -> subprocess.Popen[str]:
    argv = [sys.executable, "-s", "-S", "-m", "reproducer.forkclient", str(socket_path), module, *args]
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": os.pathsep.join([PACKAGE, *popen.pop("path", [])])}
    return subprocess.Popen(argv, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **popen)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (ProcessLookupError, FileNotFoundError):  # reaped between the two looks
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.fixture
def sleeper_server(tmp_path: Path):
    """A fork server (started as the provider server is) that runs the module ``sleeper`` only."""
    (tmp_path / "sleeper.py").write_text(SLEEPER)
    socket_path = tmp_path / "server.sock"
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": os.pathsep.join([PACKAGE, str(tmp_path)])}
    server = subprocess.Popen(
        [sys.executable, "-m", "reproducer.forkserver", str(socket_path), "sleeper"],
        env=env, stdout=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    assert server.stdout is not None and server.stdout.readline() == "ready\n"
    yield server, socket_path, tmp_path
    server.kill()
    server.wait()


def test_the_child_writes_on_the_clients_descriptors_and_its_status_is_the_clients(sleeper_server):
    _server, socket_path, where = sleeper_server
    client = _client(socket_path, "sleeper", "0", "7", path=[str(where)])
    out, err = client.communicate(timeout=20)
    assert client.returncode == 7
    child = int(out.split()[0])
    assert child != client.pid and "args 0 7" in err


def test_a_child_killed_by_a_signal_ends_its_client_by_the_same_signal(sleeper_server):
    _server, socket_path, where = sleeper_server
    client = _client(socket_path, "sleeper", "60", path=[str(where)])
    assert client.stdout is not None
    child = int(client.stdout.readline())
    os.kill(child, signal.SIGTERM)
    assert client.wait(timeout=20) == -signal.SIGTERM


def test_a_killed_client_takes_its_child_with_it(sleeper_server):
    _server, socket_path, where = sleeper_server
    client = _client(socket_path, "sleeper", "60", path=[str(where)])
    assert client.stdout is not None
    child = int(client.stdout.readline())
    client.send_signal(signal.SIGINT)  # ignored, as a provider ignores Ctrl-C
    time.sleep(0.3)
    assert _alive(child) and client.poll() is None
    client.kill()
    client.wait()
    eventually(lambda: not _alive(child), "the child to end with its client", timeout=10)


def test_modules_the_server_was_not_started_for_are_refused_without_a_fork(sleeper_server):
    server, socket_path, where = sleeper_server
    for module in ("reproducer.cli", "os", "sleeper.x", ""):
        client = _client(socket_path, module, path=[str(where)])
        out, err = client.communicate(timeout=20)
        assert client.returncode == 1 and out == "", module
        assert "refused" in err and "runs only ['sleeper']" in err, err
    children = subprocess.run(["pgrep", "-P", str(server.pid)], capture_output=True, text=True, check=False)
    assert children.stdout.split() == []


def test_without_a_server_the_client_runs_the_module_itself(tmp_path):
    (tmp_path / "sleeper.py").write_text(SLEEPER)
    client = _client(tmp_path / "no-such.sock", "sleeper", "0", "3", path=[str(tmp_path)])
    out, err = client.communicate(timeout=20)
    assert client.returncode == 3
    assert int(out.split()[0]) == client.pid  # the client became the interpreter running the module
    assert "args 0 3" in err


def test_the_server_ends_with_the_process_that_started_it_and_removes_its_directory(tmp_path):
    (tmp_path / "sleeper.py").write_text(SLEEPER)
    owner_code = textwrap.dedent(
        """
        import sys
        from reproducer.run import provider_server
        print(provider_server.environment_for(("plan",))["REPRODUCER_PROVIDER_SERVER"], flush=True)
        sys.stdin.read()
        """
    )
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": PACKAGE}
    owner = subprocess.Popen(
        [sys.executable, "-c", owner_code], env=env, text=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert owner.stdout is not None
    socket_path = owner.stdout.readline().strip()
    server_pid = int(
        subprocess.run(["pgrep", "-P", str(owner.pid)], capture_output=True, text=True, check=True).stdout.split()[0]
    )
    child = _client(socket_path, "reproducer.offline.serve")  # its usage and status 2, through the server
    _out, err = child.communicate(timeout=20)
    assert child.returncode == 2 and "usage: python -m reproducer.offline.serve" in err
    owner.kill()
    owner.wait()
    eventually(lambda: not _alive(server_pid), "the server to end with its owner", timeout=10)
    assert not Path(socket_path).parent.exists(), "the server's directory outlived it"


def test_commands_that_start_no_provider_get_no_server():
    for argv in (("fmt", "-check"), ("-chdir=/x", "init", "-backend=false"), ("version", "-json"), ("output",)):
        assert provider_server.environment_for(argv) == {}
    assert set(provider_server.environment_for(("-chdir=/x", "plan"))) == {PROVIDER_SERVER_VARIABLE}


def test_the_wrapper_uses_the_server_only_outside_a_namespace_and_quotes_the_socket(tmp_path):
    config = install_mirror(tmp_path / "plain", ["random"])
    wrapper = next((config.parent / "mirror").rglob("terraform-provider-random_*")).read_text()
    assert f'if [ -S "${{{PROVIDER_SERVER_VARIABLE}:-}}" ]; then' in wrapper
    assert f'-m reproducer.forkclient "${PROVIDER_SERVER_VARIABLE}" reproducer.offline.serve' in wrapper
    namespaced = install_mirror(tmp_path / "netns", ["random"], prefix=["ip", "netns", "exec", "x"])
    text = next((namespaced.parent / "mirror").rglob("terraform-provider-random_*")).read_text()
    assert PROVIDER_SERVER_VARIABLE not in text and "ip netns exec x" in text
    hostile = tmp_path / "a dir; touch pwned $(id)"
    hostile.mkdir()
    provider = subprocess.Popen(
        [next((config.parent / "mirror").rglob("terraform-provider-random_*"))],
        env={"PATH": os.environ["PATH"], PROVIDER_SERVER_VARIABLE: str(hostile / "s")},
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=tmp_path,
    )  # fmt: skip
    try:
        assert provider.stdout is not None
        assert provider.stdout.readline().startswith("1|6|unix|")  # no server there: the provider ran itself
    finally:
        provider.kill()
        provider.wait()
    assert not (tmp_path / "pwned").exists()


def test_a_forked_child_never_stops_its_parents_server():
    socket_path = provider_server.environment_for(("plan",))[PROVIDER_SERVER_VARIABLE]
    pid = os.fork()
    if pid == 0:  # what the child's exit would run (atexit)
        try:
            provider_server._SERVER.stop()
        finally:
            os._exit(0)
    assert os.waitpid(pid, 0)[1] == 0
    assert Path(socket_path).is_socket()
    assert provider_server.environment_for(("plan",))[PROVIDER_SERVER_VARIABLE] == socket_path, "it was restarted"


def test_a_server_killed_mid_run_takes_its_children_and_the_client_says_so(sleeper_server):
    server, socket_path, where = sleeper_server
    client = _client(socket_path, "sleeper", "60", path=[str(where)])
    assert client.stdout is not None
    child = int(client.stdout.readline())
    server.kill()
    server.wait()
    _out, err = client.communicate(timeout=20)
    assert client.returncode == 1
    assert "forkclient: the fork server ended before the child" in err and "Traceback" not in err
    eventually(lambda: not _alive(child), "the child to end with its server", timeout=10)


def test_a_server_that_ends_before_it_answers_is_told_as_ended_not_as_a_refusal(capsys):
    """The server can die between forking the child and telling its pid: the client says it ended."""
    mine, theirs = socket.socketpair()
    theirs.close()
    try:
        assert forkclient._status(mine) == 1
    finally:
        mine.close()
    assert capsys.readouterr().err == "forkclient: the fork server ended before the child\n"
