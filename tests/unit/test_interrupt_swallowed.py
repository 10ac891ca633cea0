"""A Ctrl-C that lands where Python would drop the exception (an at-fork callback) still stops the command."""

from __future__ import annotations

import subprocess
import sys
import textwrap

PROBE = textwrap.dedent(
    """
    import os, signal, sys, time
    from reproducer import cli
    from reproducer.errors import Interrupted

    def signal_inside_the_hook():
        os.kill(os.getpid(), signal.SIG{name})
        deadline = time.monotonic() + 0.2
        while time.monotonic() < deadline:  # the Python-level handler runs here, inside the at-fork callback
            pass

    def fail_inside_the_hook():
        raise ValueError("an ordinary unraisable error")

    cli.install_signal_handlers()
    os.register_at_fork(after_in_parent={hook})
    try:
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
        time.sleep(2)
        print("completed")
    except Interrupted as exc:
        print("interrupted", exc.signum)
    """
)


def _run(hook: str, name: str = "INT") -> subprocess.CompletedProcess[str]:
    code = PROBE.format(hook=hook, name=name)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=False)


def test_an_interrupt_raised_inside_an_at_fork_callback_is_delivered_again():
    for name, signum in (("INT", 2), ("TERM", 15)):
        result = _run("signal_inside_the_hook", name)
        assert result.stdout.strip() == f"interrupted {signum}", result.stderr
        assert "Exception ignored" not in result.stderr


def test_other_unraisable_errors_still_reach_the_previous_hook():
    result = _run("fail_inside_the_hook")
    assert result.stdout.strip() == "completed"
    assert "ValueError: an ordinary unraisable error" in result.stderr
