"""Data-safety edges (issue 15): export/import through standard streams, never renaming over what is not a
regular file, and keys printed literally (no rich markup or emoji, control characters shown as escapes)."""

from __future__ import annotations

import json
import os
import pty
import socket
import stat
import subprocess
import threading
import time
from pathlib import Path

import pytest

from reproducer.sandbox.fleet import Fleet
from reproducer.sandbox.seed import load_dataset
from tests.support import cli
from tests.support.runs import confirmed_keys
from tests.support.wait import eventually

HOSTILE_KEYS = [b"extra:key:", b"[bold]x[/bold]", b":smile:", b"\x1b[31mred", b"[red]not red[/red]"]


def url(fleet: Fleet) -> str:
    return f"valkey://127.0.0.1:{fleet.primary.port}"


def run_piped(*args: str | Path, stdin: bytes = b"", cwd: Path | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(cli.argv(*args), input=stdin, capture_output=True, cwd=cwd, timeout=120, check=False)


def test_export_dash_streams_to_stdout_and_import_dash_reads_stdin(fleets, tmp_path):
    source, target = fleets(), fleets()
    load_dataset(source.client(source.primary), 300)
    exported = run_piped("export", url(source), "-", "--format", "jsonl", cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    assert list(tmp_path.iterdir()) == [], "no file named '-' (or anything else) is written"
    lines = exported.stdout.decode().splitlines()
    assert len(lines) == 300 and all(json.loads(line)["key"] for line in lines)
    assert b"exported 300 keys to standard output" in exported.stderr
    imported = run_piped("import", "-", url(target), "--format", "jsonl", stdin=exported.stdout)
    assert imported.returncode == 0, imported.stderr
    assert b"from standard input" in imported.stderr
    assert target.client(target.primary).dbsize() == 300


def test_export_dash_without_a_format_is_refused(fleets, tmp_path):
    source = fleets()
    result = run_piped("export", url(source), "-", cwd=tmp_path)
    assert result.returncode == 2 and b"--format" in result.stderr and result.stdout == b""
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("fmt", ["rdb", "aof"])
def test_a_binary_export_to_a_terminal_is_refused(fleets, fmt):
    source = fleets()
    load_dataset(source.client(source.primary), 50)
    controller, terminal = pty.openpty()
    try:
        proc = subprocess.run(
            cli.argv("export", url(source), "-", "--format", fmt),
            stdout=terminal,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            timeout=120,
            check=False,
        )
        os.set_blocking(controller, False)
        try:
            shown = os.read(controller, 65536)
        except BlockingIOError:
            shown = b""
    finally:
        os.close(controller)
        os.close(terminal)
    assert proc.returncode == 2, proc.stderr
    assert b"is a terminal" in proc.stderr and b"hint:" in proc.stderr
    assert shown == b"", "nothing reached the terminal"


def test_export_through_a_link_to_a_character_device_writes_through_and_keeps_the_link(fleets, tmp_path):
    source = fleets()
    load_dataset(source.client(source.primary), 50)
    link = tmp_path / "stdout"
    link.symlink_to("/proc/self/fd/1")  # what /dev/stdout is: the export must not replace it
    result = run_piped("export", url(source), link, "--format", "jsonl")
    assert result.returncode == 0, result.stderr
    assert link.is_symlink() and os.readlink(link) == "/proc/self/fd/1"
    assert len(result.stdout.decode().splitlines()) == 50
    null = tmp_path / "null.jsonl"
    null.symlink_to("/dev/null")
    assert run_piped("export", url(source), null).returncode == 0
    assert null.is_symlink() and stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_export_into_a_fifo_writes_through(fleets, tmp_path):
    source = fleets()
    load_dataset(source.client(source.primary), 80)
    fifo = tmp_path / "pipe.jsonl"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()), daemon=True)
    reader.start()
    result = run_piped("export", url(source), fifo)
    reader.join(timeout=60)
    assert result.returncode == 0, result.stderr
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert len(received[0].decode().splitlines()) == 80


def test_export_onto_a_link_to_a_regular_file_elsewhere_is_refused(fleets, tmp_path):
    source = fleets()
    load_dataset(source.client(source.primary), 20)
    outside = tmp_path / "outside"
    outside.mkdir()
    precious = outside / "precious.jsonl"
    precious.write_text("precious\n")
    link = tmp_path / "dump.jsonl"
    link.symlink_to(precious)
    result = run_piped("export", url(source), link)
    assert result.returncode == 2 and b"symbolic link" in result.stderr and b"Traceback" not in result.stderr
    assert link.is_symlink() and precious.read_text() == "precious\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dump.jsonl", "outside"], "no temporary file left"


def test_atomic_write_refuses_every_target_that_is_not_a_regular_file(tmp_path):
    from reproducer.atomic import atomic_write
    from reproducer.errors import InputError

    (tmp_path / "dir").mkdir()
    (tmp_path / "null").symlink_to("/dev/null")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    os.mkfifo(tmp_path / "fifo")
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(tmp_path / "sock"))
    try:
        for name in ("dir", "null", "dangling", "fifo", "sock"):
            with pytest.raises(InputError, match="only replaces regular files"):
                atomic_write(tmp_path / name, "x")
    finally:
        server.close()
    assert not (tmp_path / "nowhere").exists()
    assert os.readlink(tmp_path / "null") == "/dev/null"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dangling", "dir", "fifo", "null", "sock"]
    atomic_write(tmp_path / "regular", "old")
    atomic_write(tmp_path / "regular", "new")  # a regular file is still replaced
    assert (tmp_path / "regular").read_text() == "new"


def test_verify_mismatches_print_hostile_keys_literally(fleets, tmp_path):
    source, target = fleets(), fleets()
    client = target.client(target.primary)
    for key in HOSTILE_KEYS:
        client.set(key, b"v")
    result = run_piped("verify", url(source), url(target))
    assert result.returncode == 3, result.stderr
    err = result.stderr.decode()
    for shown in ("extra:key:", "[bold]x[/bold]", ":smile:", "[red]not red[/red]", "\\x1b[31mred"):
        assert shown in err, (shown, err)
    assert "\x1b" not in err and "\N{SMILING FACE WITH SMILING EYES}" not in err and "😄" not in err


def test_copy_refusal_and_export_progress_print_values_literally(fleets, tmp_path):
    source, target = fleets(), fleets()
    source.client(source.primary).set(b":smile:[bold]", b"v")
    target.client(target.primary).set(b"x", b"v")
    run_dir = tmp_path / ":smile:[bold]run"
    result = run_piped("copy", url(source), url(target), "--run-dir", run_dir)
    err = result.stderr.decode()
    assert result.returncode != 0 and ":smile:[bold]run" in err and "😄" not in err, err


def test_resume_keeps_the_rate_limit_and_refuses_another_scope(fleets, tmp_path):
    source, target = fleets(), fleets()
    client = source.client(source.primary)
    client.mset({f"k{i}": "v" for i in range(1200)})
    run_dir = tmp_path / "run"
    first = ["copy", url(source), url(target), "--run-dir", run_dir, "--no-verify", "--batch", "50"]
    proc = cli.start(*first, "--max-keys-per-second", "300")
    eventually(lambda: confirmed_keys(run_dir) >= 100, "a first batches confirmed", proc=proc)
    proc.kill()
    proc.wait()
    saved = json.loads((run_dir / "data" / "options.json").read_text())["options"]
    assert saved["max_keys_per_second"] == 300 and saved["batch"] == 50
    again = [*first[:5], "--resume", "--no-verify"]
    refused = cli.run(*again, "--match", "k1*")
    assert refused.returncode == 2 and "--match differs" in refused.stderr, refused.stderr
    left = 1200 - confirmed_keys(run_dir)
    started = time.monotonic()
    resumed = cli.run(*again)
    took = time.monotonic() - started
    assert resumed.returncode == 0, resumed.stderr
    assert target.client(target.primary).dbsize() == 1200
    assert took >= left / 300 * 0.8, f"{left} keys in {took:.1f}s: the saved 300 keys/s limit was not applied"


def test_a_second_apply_without_passwords_changes_nothing_and_restarts_nothing(tmp_path):
    from reproducer.pipeline.apply import PASSWORDS_FILE, destroy_local, local_data_dir
    from reproducer.procs import free_port_range
    from tests.golden.regen import HERE

    out, base = tmp_path / "out", free_port_range(1)
    argv = ["apply", "--target", "local", "--spec", HERE / "specs" / "business.yaml", "--out", out, "--replicas", "0"]
    argv += ["--base-port", str(base)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("REPRODUCER_PASSWORD_")}
    data = local_data_dir(out.resolve())
    try:
        first = cli.run(*argv, env=env)
        assert first.returncode == 0, first.stderr
        kept = data / PASSWORDS_FILE
        assert stat.S_IMODE(kept.stat().st_mode) == 0o600
        passwords = json.loads(kept.read_text())
        assert "default" in passwords
        before = sorted(int(p.read_text()) for p in data.rglob("*.pid"))
        second = cli.run(*argv, env=env)
        assert second.returncode == 0, second.stderr
        assert "; 0 change(s);" in second.stderr, second.stderr
        assert sorted(int(p.read_text()) for p in data.rglob("*.pid")) == before, "an instance was restarted"
        assert json.loads(kept.read_text()) == passwords
        said = first.stdout + first.stderr + second.stdout + second.stderr
        rendered = [p for p in out.rglob("*") if p.is_file()]
        assert not [s for s in passwords.values() if s in said], "a generated password was printed"
        assert not [p for p in rendered for s in passwords.values() if s in p.read_text(errors="replace")]
    finally:
        destroy_local(out)
    assert not data.exists(), "destroy removes the kept passwords with the instances"
