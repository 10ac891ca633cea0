"""The CLI's output in and outside a terminal: whole plain-text tables, copy's and verify's progress."""

from __future__ import annotations

import io
import threading

from reproducer import cli
from reproducer.data.copy import CopyResult, Stats


def test_the_copy_summary_is_whole_outside_a_terminal(capsys):
    big = Stats(scanned=302_000_000, copied=301_999_000, rebuilt=12, expired=900, skipped=100, bytes=123_456_789_012)
    node = "valkey-3f0b2c6e-o1a2b3c4d-1.database.cloud.ovh.net:20185"
    cli._print_copy_summary(CopyResult(total=big, per_node={node: big}, seconds=3600.0, source_keys=302_000_000))
    err = capsys.readouterr().err
    assert "…" not in err
    rows = err.splitlines()
    header = rows[1].split()
    assert header == ["node", "scanned", "copied", "rebuilt", "expired", "skipped", "MB", "retries"]
    [row] = [r for r in rows if r.startswith(node)]
    assert row.split() == [node, "302,000,000", "301,999,000", "12", "900", "100", "123456.8", "0"]
    assert len(row) > 80, "wider than rich's default console, and not cut"


def test_verify_progress_prints_at_most_every_interval(capsys):
    report = cli._verify_progress(every=0.0)
    report(1000)
    report(2000)
    lines = [line for line in capsys.readouterr().err.splitlines() if "verify:" in line]
    assert len(lines) == 2 and "2,000 keys compared" in lines[1]
    quiet = cli._verify_progress(every=3600.0)
    quiet(5)
    assert "verify:" not in capsys.readouterr().err


def test_copy_progress_off_a_terminal_is_a_line_at_most_every_interval(capsys):
    with cli._copy_progress(every=0.0) as report:
        report(Stats(scanned=2_000, bytes=3_500_000), 10_000)
        report(Stats(scanned=12_000, bytes=7_000_000), 10_000)
    lines = [line for line in capsys.readouterr().err.splitlines() if "copy:" in line]
    assert len(lines) == 2
    assert "2,000 of 10,000 keys (20%)" in lines[0] and "3.5 MB" in lines[0]
    assert "12,000 of 12,000 keys (100%)" in lines[1], "a count past the estimate is the new total"
    with cli._copy_progress(every=3600.0) as quiet:
        quiet(Stats(scanned=5), 10)
    assert "copy:" not in capsys.readouterr().err, "a copy shorter than the interval prints no progress"


def test_copy_progress_off_a_terminal_never_starts_a_bar_or_a_thread(capsys):
    before = threading.active_count()
    with cli._copy_progress(every=0.0) as report:
        report(Stats(scanned=1), 1)
        assert threading.active_count() == before
    assert "\x1b[" not in capsys.readouterr().err, "no cursor movement in a log"


def test_copy_progress_at_a_terminal_is_a_bar_redrawn_by_reports_not_by_a_thread(monkeypatch):
    screen = io.StringIO()
    monkeypatch.setattr(cli, "_stderr", cli.LiteralConsole(file=screen, force_terminal=True, width=120))
    before = threading.active_count()
    with cli._copy_progress() as report:
        report(Stats(scanned=2_000, bytes=3_500_000), 10_000)
        assert threading.active_count() == before, "a refresh thread takes the interpreter lock 10 times a second"
    assert "2,000 keys" in screen.getvalue()


def test_copy_progress_lines_are_timed_from_the_first_report_not_from_the_block(monkeypatch, capsys):
    clock = [1000.0]
    monkeypatch.setattr(cli.time, "monotonic", lambda: clock[0])
    with cli._copy_progress(every=5.0) as report:
        clock[0] += 600.0  # a job's apply and access before its copy starts
        report(Stats(scanned=1), 10)
        assert "copy:" not in capsys.readouterr().err, "a line before the copy's first interval"
        clock[0] += 10.0
        report(Stats(scanned=100_000), 200_000)
    [line] = [line for line in capsys.readouterr().err.splitlines() if "copy:" in line]
    assert "10,000 keys/s" in line, line
