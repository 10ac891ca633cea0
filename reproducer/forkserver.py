"""A fork server: Python modules run as ``python -m MODULE ARGS``, forked from a process that imported them once.

Starting a Python program that imports gRPC, protobuf and the plugin machinery costs about 0.1 CPU second before
it does anything; Terraform starts a provider process for every ``validate``, ``plan``, ``apply`` or ``show``,
often several. ``python -m reproducer.forkserver SOCKET MODULE...`` imports the allowed modules once, then
forks one child per request. The child is a separate process with its own stdin, stdout, stderr, working
directory, environment and exit status, and runs the module as ``__main__`` as ``python -m`` would.

The client (:mod:`reproducer.forkclient`, started in place of the interpreter) passes its three standard
descriptors and waits: it ends with the child's status. A client that disconnects (killed by Terraform) has its
child killed; the server ends when the process that started it does. Fresh state that the fork does not give (a
new hash seed, ``PYTHON*`` variables read at start) does not matter to the modules it serves.

Protocol, on a unix socket only this user can reach (the server checks ``SO_PEERCRED``): the client sends one
length-prefixed JSON request ``{"module", "args", "env", "cwd"}`` with three file descriptors; the server answers
``{"pid"}`` once the child runs and ``{"status"}`` (``subprocess`` convention: negative for a signal) when it ends,
or ``{"error"}`` for a request it refuses (a module it was not started for, a bad shape) without forking.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
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
from collections.abc import Callable, Collection
from typing import Any

from reproducer.forkwire import receive_message, send_message

#: The environment variable naming the socket of a provider fork server; the offline and twin provider wrappers
#: run through it when it names a socket (:mod:`reproducer.forkclient`).
PROVIDER_SERVER_VARIABLE = "REPRODUCER_PROVIDER_SERVER"
#: The modules a provider fork server runs, and what it imports beforehand for them.
PROVIDER_MODULES = ("reproducer.offline.serve", "reproducer.twins.serve")
PROVIDER_PRELOAD = ("reproducer.offline.plugin", "reproducer.offline.server", "reproducer.twins.provider")


def _die_with_parent() -> None:
    """Have the kernel SIGKILL this process when the (single-threaded) server that forked it ends."""
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _same_user(conn: socket.socket) -> bool:
    credentials = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", credentials)
    return bool(uid == os.getuid())


def checked_request(request: dict[str, Any], modules: Collection[str]) -> dict[str, Any]:
    """``request`` if it is ``{"module": one of modules, "args": [str], "env": {str: str}, "cwd": str}``.

    Raises:
        ValueError: anything else (checked before a fork).
    """
    module, args, env, cwd = (request.get(name) for name in ("module", "args", "env", "cwd"))
    if module not in modules:
        raise ValueError(f"this server runs only {sorted(modules)}")
    if not (isinstance(args, list) and all(isinstance(a, str) for a in args)):
        raise ValueError("args must be a list of strings")
    if not (isinstance(env, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in env.items())):
        raise ValueError("env must map strings to strings")
    if not (isinstance(cwd, str) and os.path.isdir(cwd)):
        raise ValueError("cwd must be an existing directory")
    return request


def run_module_child(request: dict[str, Any], fds: list[int], argv0: str | None = None) -> int:
    """In a forked child: become ``python -m MODULE ARGS`` on the given descriptors; return the exit status.

    ``sys.argv[0]`` is ``argv0``, else the module's name.
    """
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD, signal.SIGHUP):
        signal.signal(sig, signal.default_int_handler if sig == signal.SIGINT else signal.SIG_DFL)
    signal.set_wakeup_fd(-1)
    os.environ.clear()
    os.environ.update(request["env"])
    os.chdir(request["cwd"])
    random.seed()  # sys.stdin/stdout/stderr already wrap descriptors 0, 1 and 2: nothing else to rebuild
    module = request["module"]
    sys.argv = [argv0 or module, *request["args"]]
    sys.modules.pop(module, None)  # as under `python -m`, the module runs only as __main__
    code = 0
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as done:
        code = exit_code(done.code)
    except BaseException:  # what the interpreter would print for an uncaught exception
        traceback.print_exc()
        code = 1
    threading._shutdown()  # type: ignore[attr-defined]  # wait for non-daemon threads, as at exit
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    return code


def exit_code(code: object) -> int:
    """The status ``sys.exit(code)`` gives a process."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    sys.stderr.write(f"{code}\n")
    return 1


#: Checks a request (raising ValueError) before the fork, and runs it in the child (returning its status).
Checker = Callable[[dict[str, Any]], dict[str, Any]]
Runner = Callable[[dict[str, Any], list[int]], int]


class Server:
    """The accept loop: one forked child per request, its status sent back when it ends."""

    def __init__(self, path: str, check: Checker, run: Runner) -> None:
        self.check, self.run = check, run
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(path)
        self.listener.listen(64)
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.listener, selectors.EVENT_READ)
        self.wakeup, wakeup_writer = socket.socketpair()
        self.wakeup.setblocking(False)
        wakeup_writer.setblocking(False)
        self._wakeup_writer = wakeup_writer
        signal.set_wakeup_fd(wakeup_writer.fileno())
        signal.signal(signal.SIGCHLD, lambda _sig, _frame: None)  # a child that ends wakes the loop at once
        self.selector.register(self.wakeup, selectors.EVENT_READ)
        self.children: dict[int, socket.socket] = {}
        self.parent = os.getppid()

    def serve(self) -> None:
        """Serve until the process that started this server is gone; then kill the children, remove the socket."""
        while os.getppid() == self.parent:
            for key, _events in self.selector.select(timeout=0.2):
                if key.fileobj is self.listener:
                    self._accept()
                elif key.fileobj is self.wakeup:
                    with contextlib.suppress(OSError):
                        self.wakeup.recv(4096)
                else:
                    self._client_gone(key.fileobj)  # type: ignore[arg-type]
            self._reap()
        for pid in self.children:
            os.kill(pid, signal.SIGKILL)
        self._remove_socket()

    def _remove_socket(self) -> None:
        """Remove the socket this server bound, and its directory when nothing else is in it (made for it)."""
        path = self.listener.getsockname()
        self.listener.close()
        with contextlib.suppress(OSError):
            os.unlink(path)
            os.rmdir(os.path.dirname(path))

    def _accept(self) -> None:
        conn, _ = self.listener.accept()
        fds: list[int] = []
        try:
            received = receive_message(conn, max_fds=3) if _same_user(conn) else None
            if received is not None:
                fds = received[1]
            if received is None or len(fds) != 3:
                raise ValueError("a request needs module, args, env, cwd and three descriptors")
            request = self.check(received[0])
            pid = os.fork()
            if pid == 0:
                self._become_child(request, fds)
            self.children[pid] = conn
            self.selector.register(conn, selectors.EVENT_READ)
            send_message(conn, {"pid": pid})
        except (OSError, ValueError, KeyError, TypeError) as exc:
            with contextlib.suppress(OSError):
                send_message(conn, {"error": f"{type(exc).__name__}: {exc}"})
            conn.close()
        finally:
            for fd in fds:
                os.close(fd)

    def _become_child(self, request: dict[str, Any], fds: list[int]) -> None:
        """In the forked child: run the request and never return, whatever happens."""
        code = 1
        try:
            _die_with_parent()
            for other in [self.listener, self.wakeup, self._wakeup_writer, *self.children.values()]:
                other.close()
            code = self.run(request, fds)
        finally:
            os._exit(code)

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


def serve_modules(path: str, modules: Collection[str], preload: Collection[str] = ()) -> None:
    """Import ``modules`` and ``preload``, listen on ``path``, say ``ready`` on stdout, serve ``modules``."""
    for name in (*preload, *modules):
        importlib.import_module(name)
    allowed = frozenset(modules)
    server = Server(path, lambda request: checked_request(request, allowed), run_module_child)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    server.serve()


def main(argv: list[str] | None = None) -> int:
    """``python -m reproducer.forkserver SOCKET MODULE... [--preload MODULE...]``."""
    args = list(sys.argv[1:] if argv is None else argv)
    preload = args[args.index("--preload") + 1 :] if "--preload" in args else []
    args = args[: args.index("--preload")] if "--preload" in args else args
    if len(args) < 2:
        sys.stderr.write("usage: python -m reproducer.forkserver SOCKET MODULE... [--preload MODULE...]\n")
        return 2
    serve_modules(args[0], args[1:], preload)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
