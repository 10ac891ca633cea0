"""``python -m MODULE ARGS`` run by a fork server: ``python -s -S -m reproducer.forkclient SOCKET MODULE ARGS``.

Started by a provider wrapper in place of the interpreter, it costs a bare interpreter start: it passes its
standard descriptors, environment and directory to the server, waits, and ends with the child's status (a child
killed by a signal: this process ends by the same signal). It ignores SIGINT, as provider processes do (Terraform
stops them itself); killed, it takes its child with it (the server sees the connection close). When the server
cannot be reached, it runs the module itself: ``python -m MODULE ARGS``, as the wrapper would have.

Without ``site`` (``-S``) it imports nothing but the standard library and the messages (:mod:`reproducer.forkwire`),
found through ``PYTHONPATH`` (the wrapper sets it to the package's directory).
"""

from __future__ import annotations

import os
import signal
import socket
import sys

from reproducer.forkwire import receive_message, send_message


def _run_here(module: str, args: list[str]) -> None:
    os.execv(sys.executable, [sys.executable, "-m", module, *args])


def _status(sock: socket.socket) -> int:
    """The child's exit status, once it ends; 1 (with a message) when the server refused or went away."""
    answer = receive_message(sock)
    if answer is not None and not isinstance(answer[0].get("pid"), int):
        error = answer[0].get("error", answer[0])
        sys.stderr.write(f"forkclient: the fork server refused the request: {error}\n")
        return 1
    ended = receive_message(sock) if answer is not None else None  # None: it ended before it could answer
    status = ended[0].get("status") if ended else None
    if not isinstance(status, int):
        sys.stderr.write("forkclient: the fork server ended before the child\n")
        return 1
    return status


def main(argv: list[str]) -> int:
    """Serve ``argv`` = SOCKET MODULE ARGS...; returns the exit status (or ends by the child's signal)."""
    if len(argv) < 2:
        sys.stderr.write("usage: forkclient.py SOCKET MODULE [ARG...]\n")
        return 2
    path, module, args = argv[0], argv[1], argv[2:]
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError:
        sock.close()
        _run_here(module, args)
    request = {"module": module, "args": args, "env": dict(os.environ), "cwd": os.getcwd()}
    try:
        send_message(sock, request, [0, 1, 2])
        status = _status(sock)
    except (OSError, ValueError) as exc:  # the server went away mid-exchange, or answered garbage
        sys.stderr.write(f"forkclient: lost the fork server at {path}: {exc}\n")
        return 1
    if -signal.NSIG < status < 0:
        signal.signal(-status, signal.SIG_DFL)
        os.kill(os.getpid(), -status)
    return status if 0 <= status <= 255 else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
