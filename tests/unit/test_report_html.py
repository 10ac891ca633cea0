"""report.html: a self-contained page whose numbers are report.json's, checked with an HTML parser.

The page is parsed with Python's HTML parser (every element closes, in order) and searched for any reference that
would load something. The headless-browser check is in tests/integration/test_report_html_job.py: it runs where
Debian's chromium is installed, which .ci/setup does not do (about 113 MB in 25 packages).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reproducer.pipeline.report import Timeline, follow_lag, keys_per_second, read_timeline, report_html
from tests.support.htmlpage import parse

REPORT: dict[str, Any] = {
    "settings": {"service": "svc-<script>alert(1)</script>", "target": "local"},
    "phases": {},
    "copy": {"copied": 3000, "source_keys": 3000},
    "verify": {"ok": True, "compared": 3000, "missing": 0, "type_mismatch": 0, "value_mismatch": 0},
}
PHASES = [("inspect", 0.4), ("render", 0.1), ("plan", 2.5), ("apply", 11.0), ("copy", 3.2), ("verify", 0.8)]
PER_NODE = {"127.0.0.1:7100": {"scanned": 1800, "copied": 1800}, "127.0.0.1:7101": {"scanned": 1200, "copied": 1200}}


def _samples(tmp_path: Path) -> list[dict[str, Any]]:
    clock = iter([100.0, 101.0, 102.0, 103.0, 104.0, 104.5, 105.0, 106.0]).__next__
    timeline = Timeline(tmp_path, clock=clock)
    for scanned in (0, 1000, 2000, 3000):
        timeline.sample("copy", {"scanned": scanned, "copied": scanned, "expected": 3000})
    timeline.sample("follow", {"behind": 3, "oldest_ms": 40, "events": 3})
    timeline.sample("follow", {"behind": 0, "oldest_ms": 0, "events": 5})  # within a second: dropped
    timeline.sample("follow", {"behind": 1, "oldest_ms": 12, "events": 6})
    timeline.sample("follow", {"behind": 0, "oldest_ms": 0, "events": 6})
    (tmp_path / "data" / "timeline.jsonl").open("a").write("not json\n[1, 2]\n")
    return read_timeline(tmp_path)


def test_the_page_holds_report_json_numbers_and_charts_and_loads_nothing(tmp_path):
    samples = _samples(tmp_path)
    assert keys_per_second(samples) == [(1.0, 1000.0), (2.0, 1000.0), (3.0, 1000.0)]
    assert follow_lag(samples) == [(0.0, 40.0), (1.0, 12.0), (2.0, 0.0)]
    text = report_html(REPORT, PHASES, samples, PER_NODE)
    page = parse(text)
    assert page.errors == [] and page.open == [], "every element closes, in order"
    words = " ".join(page.text)
    assert "Verification: zero differences" in words and "Keys copied: 3,000 of 3,000" in words
    for name, seconds in PHASES:
        assert f"{name} {seconds:g}" in " ".join(w.strip() for w in page.text if w.strip()), name
    assert "1,800" in words and "127.0.0.1:7101" in words
    svgs = [attrs for tag, attrs in page.tags if tag == "svg"]
    lines = [attrs["points"] for tag, attrs in page.tags if tag == "polyline"]
    assert len(svgs) == 2 and [len((p or "").split()) for p in lines] == [3, 3]
    assert not [tag for tag, _ in page.tags if tag in ("script", "link", "img", "iframe", "object", "embed")]
    references = [v for _, attrs in page.tags for k, v in attrs.items() if k in ("src", "href", "xlink:href")]
    assert references == [] and "url(" not in text and "http" not in text.replace("http-equiv", "")
    assert "<script>alert" not in text and "svc-&lt;script&gt;" in text


def test_a_run_without_samples_or_stats_still_gives_a_whole_page():
    page = parse(report_html({"settings": {}, "verify": {"ok": False}}, [], [], {}))
    assert page.errors == [] and page.open == []
    words = " ".join(page.text)
    assert "differences found" in words and "no samples in this run" in words
