"""A fork server for the tests' ``reproducer`` commands: ``python -m tests.support.clizygote SOCKET``.

Hundreds of tests run the CLI as ``python -m reproducer.cli`` in a child process; each child spent about 0.3 CPU
second importing click, pydantic, the spec model and the targets before doing anything, which on two cores was a
large share of ``make test``. This server imports them once, then forks one child per command: the child is a
separate process with its own stdin, stdout, stderr, working directory, environment, exit status and signals, and
runs ``reproducer.cli`` as ``__main__`` exactly as ``python -m`` would. What it does not reproduce (a fresh hash
seed, ``PYTHON*`` variables read at interpreter start) makes :mod:`tests.support.cli` start a real interpreter
instead.

The server, the messages and the child's set-up are :mod:`reproducer.forkserver`'s (which also starts Terraform's
providers): a request is ``{"args", "env", "cwd"}`` with three file descriptors (stdin, stdout, stderr); the answers
are ``{"pid"}`` once the child runs and ``{"status"}`` (``subprocess`` convention: negative for a signal) when it
ends. A client that disconnects first has its child killed; the server ends when its parent does.
"""

from __future__ import annotations

import sys
from typing import Any

from reproducer import forkserver
from reproducer.forkwire import receive_message, send_message

__all__ = ["PRELOAD", "main", "receive_message", "send_message"]

#: Modules worth having imported before the fork (what nearly every command imports).
PRELOAD = ("reproducer.cli", "reproducer.targets", "reproducer.model", "valkey", "yaml", "jinja2")


def _checked(request: dict[str, Any]) -> dict[str, Any]:
    """``request`` if it is ``{"args": [str], "env": {str: str}, "cwd": str}``; ValueError otherwise (before a fork)."""
    return forkserver.checked_request({**request, "module": "reproducer.cli"}, ("reproducer.cli",))


def _run_cli(request: dict[str, Any], fds: list[int]) -> int:
    """In the forked child: ``python -m reproducer.cli ARGS``, with ``reproducer`` as the program's name."""
    return forkserver.run_module_child({**request, "module": "reproducer.cli"}, fds, argv0="reproducer")


def main() -> None:
    """Preload, listen on ``argv[1]``, say ``ready`` on stdout, serve."""
    import importlib

    for name in PRELOAD:
        importlib.import_module(name)
    server = forkserver.Server(sys.argv[1], _checked, _run_cli)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    server.serve()


if __name__ == "__main__":
    main()
