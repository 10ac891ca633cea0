"""The CLI's output outside a terminal: whole plain-text tables, and verify's progress lines."""

from __future__ import annotations

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
