"""A fork server for the tests' ``reproducer`` commands: ``python -m tests.support.clizygote SOCKET``.

Hundreds of tests run the CLI as ``python -m reproducer.cli`` in a child process; each child spent about 0.3 CPU
second importing click, pydantic, the spec model and the targets before doing anything, which on two cores was a
large share of ``make test``. This server imports them once, then forks one child per command: the child is a
separate process with its own stdin, stdout, stderr, working directory, environment, exit status and signals, and
runs ``reproducer.cli`` as ``__main__`` exactly as ``python -m`` would. What it does not reproduce (a fresh hash
seed, ``PYTHON*`` variables read at interpreter start) makes :mod:`tests.support.cli` start a real interpreter
instead.

Protocol, on a unix socket only this user can reach (the server checks ``SO_PEERCRED``): the client sends one
length-prefixed JSON request ``{"args", "env", "cwd"}`` with three file descriptors (stdin, stdout, stderr); the
server answers ``{"pid"}`` once the child runs and ``{"status"}`` (``subprocess`` convention: negative for a signal)
when it ends. A client that disconnects first has its child killed; the server ends when its parent does.
"""

from __future__ import annotations

import array
import atexit
import contextlib
import json
import os
import random
import runpy
import selectors
import signal
import socket
import struct
import sys
import threading
import traceback
from typing import Any

#: Modules worth having imported before the fork (what nearly every command imports).
PRELOAD = ("reproducer.cli", "reproducer.targets", "reproducer.model", "valkey", "yaml", "jinja2")
_HEADER = struct.Struct("!I")
_MAX_REQUEST = 1 << 22


def send_message(sock: socket.socket, message: dict[str, Any], fds: list[int] | None = None) -> None:
    """One length-prefixed JSON message, with ``fds`` passed alongside (SCM_RIGHTS)."""
    body = json.dumps(message).encode()
    data = _HEADER.pack(len(body)) + body
    if fds:
        sent = sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
        data = data[sent:]
    if data:  # sendall of nothing still sends: EPIPE when the server has already answered and hung up
        sock.sendall(data)


def receive_message(sock: socket.socket, max_fds: int = 0) -> tuple[dict[str, Any], list[int]] | None:
    """The next message and the descriptors that came with it; None at end of stream."""
    fds: list[int] = []
    space = socket.CMSG_SPACE(max_fds * array.array("i").itemsize) if max_fds else 0
    data, ancillary, _flags, _address = sock.recvmsg(_HEADER.size, space)
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.extend(array.array("i", payload[: len(payload) - len(payload) % 4]))
    if not data:
        return None
    data += _read_exactly(sock, _HEADER.size - len(data))
    (length,) = _HEADER.unpack(data)
    if length > _MAX_REQUEST:
        raise ValueError(f"a message of {length} bytes")
    return json.loads(_read_exactly(sock, length)), fds


def _read_exactly(sock: socket.socket, size: int) -> bytes:
    chunks = b""
    while len(chunks) < size:
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            raise ConnectionError("the peer closed the connection mid-message")
        chunks += chunk
    return chunks


def _same_user(conn: socket.socket) -> bool:
    credentials = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", credentials)
    return uid == os.getuid()


def _checked(request: dict[str, Any]) -> dict[str, Any]:
    """``request`` if it is ``{"args": [str], "env": {str: str}, "cwd": str}``; ValueError otherwise (before a fork)."""
    args, env, cwd = request.get("args"), request.get("env"), request.get("cwd")
    if not (isinstance(args, list) and all(isinstance(a, str) for a in args)):
        raise ValueError("args must be a list of strings")
    if not (isinstance(env, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in env.items())):
        raise ValueError("env must map strings to strings")
    if not (isinstance(cwd, str) and os.path.isdir(cwd)):
        raise ValueError("cwd must be an existing directory")
    return request


def _run_command(request: dict[str, Any], fds: list[int]) -> None:
    """In the forked child: become ``python -m reproducer.cli ARGS`` and never return, whatever happens."""
    code = 1
    try:
        code = _run_cli(request, fds)
    finally:
        os._exit(code)


def _run_cli(request: dict[str, Any], fds: list[int]) -> int:
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD, signal.SIGHUP):
        signal.signal(sig, signal.default_int_handler if sig == signal.SIGINT else signal.SIG_DFL)
    os.environ.clear()
    os.environ.update(request["env"])
    os.chdir(request["cwd"])
    random.seed()  # sys.stdin/stdout/stderr already wrap descriptors 0, 1 and 2: nothing else to rebuild
    sys.argv = ["reproducer", *request["args"]]
    sys.modules.pop("reproducer.cli", None)  # as under `python -m`, the module runs only as __main__
    code = 0
    try:
        runpy.run_module("reproducer.cli", run_name="__main__", alter_sys=True)
    except SystemExit as done:
        code = _exit_code(done.code)
    except BaseException:  # what the interpreter would print for an uncaught exception
        traceback.print_exc()
        code = 1
    threading._shutdown()  # type: ignore[attr-defined]  # wait for non-daemon threads, as at exit
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    return code


def _exit_code(code: object) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    sys.stderr.write(f"{code}\n")
    return 1


class Server:
    """The accept loop: one forked child per request, its status sent back when it ends."""

    def __init__(self, path: str) -> None:
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(path)
        self.listener.listen(16)
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.listener, selectors.EVENT_READ)
        self.children: dict[int, socket.socket] = {}
        self.parent = os.getppid()

    def serve(self) -> None:
        """Serve until the process that started this server is gone."""
        while os.getppid() == self.parent:
            for key, _events in self.selector.select(timeout=0.05):
                if key.fileobj is self.listener:
                    self._accept()
                else:
                    self._client_gone(key.fileobj)  # type: ignore[arg-type]
            self._reap()
        for pid in self.children:
            os.kill(pid, signal.SIGKILL)

    def _accept(self) -> None:
        conn, _ = self.listener.accept()
        fds: list[int] = []
        try:
            received = receive_message(conn, max_fds=3) if _same_user(conn) else None
            if received is None or len(received[1]) != 3:
                raise ValueError("a request needs args, env, cwd and three descriptors")
            request, fds = _checked(received[0]), received[1]
            pid = os.fork()
            if pid == 0:
                for other in [self.listener, *self.children.values()]:
                    other.close()
                _run_command(request, fds)
            self.children[pid] = conn
            self.selector.register(conn, selectors.EVENT_READ)
            send_message(conn, {"pid": pid})
        except (OSError, ValueError, KeyError, TypeError) as exc:
            with_error = {"error": f"{type(exc).__name__}: {exc}"}
            with contextlib.suppress(OSError):
                send_message(conn, with_error)
            conn.close()
        finally:
            for fd in fds:
                os.close(fd)

    def _client_gone(self, conn: socket.socket) -> None:
        """The client hung up (or sent something): its child is killed, reaped and reported as usual."""
        for pid, owner in self.children.items():
            if owner is conn:
                os.kill(pid, signal.SIGKILL)
        self.selector.unregister(conn)

    def _reap(self) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            conn = self.children.pop(pid, None)
            if conn is None:
                continue
            with contextlib.suppress(OSError):
                send_message(conn, {"status": os.waitstatus_to_exitcode(status)})
            with contextlib.suppress(KeyError, ValueError):  # unregistered already when the client hung up first
                self.selector.unregister(conn)
            conn.close()


def main() -> None:
    """Preload, listen on ``argv[1]``, say ``ready`` on stdout, serve."""
    import importlib

    for name in PRELOAD:
        importlib.import_module(name)
    server = Server(sys.argv[1])
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    server.serve()


if __name__ == "__main__":
    main()
