"""The migration report as one self-contained HTML page (``report.html`` beside ``report.md``).

Phases with their durations, keys/s over time, the follower's lag over time, per-shard counts and the
verification's verdict; charts are inline SVG. The page loads nothing (no script, style sheet, font or image from
anywhere; its Content-Security-Policy forbids it) and holds no secret: only what ``report.json``, ``stats.json``
and the timeline hold, every value HTML-escaped.

The timeline (``data/timeline.jsonl``) is sampled during the copy phase: the copy's counters and the follower's
lag, at most once a second each.
"""

from __future__ import annotations

import html
import itertools
import json
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from reproducer.data.copy import Stats
    from reproducer.data.follow import FollowStats
    from reproducer.pipeline.progress import DataProgress

TIMELINE = Path("data") / "timeline.jsonl"
_TIMELINE_LINES = 100_000


class Timeline:
    """Samples of the copy and of the follower over time, appended to ``run_dir/data/timeline.jsonl``."""

    def __init__(self, run_dir: Path, clock: Callable[[], float] = time.time, every: float = 1.0) -> None:
        """Record into ``run_dir``; at most one sample of each kind per ``every`` seconds."""
        self.path, self._clock, self._every = run_dir / TIMELINE, clock, every
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()

    def sample(self, kind: str, values: dict[str, float], *, force: bool = False) -> None:
        """Append one sample (``at``: seconds since the epoch) unless one of ``kind`` was taken just before."""
        now = self._clock()
        with self._lock:
            if not force and now - self._last.get(kind, -math.inf) < self._every:
                return
            self._last[kind] = now
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as out:
                out.write(json.dumps({"at": round(now, 3), "kind": kind, **values}, sort_keys=True) + "\n")

    def copy_progress(self, forward: DataProgress | None) -> DataProgress:
        """A copy progress callback that samples the copy's counters, then calls ``forward``."""

        def report(stats: Stats, expected: int) -> None:
            self.sample("copy", {"scanned": stats.scanned, "copied": stats.copied, "expected": expected})
            if forward is not None:
                forward(stats, expected)

        return report

    def follow_progress(self, forward: Callable[[FollowStats], None] | None) -> Callable[[FollowStats], None]:
        """A follow progress callback that samples the lag (keys behind, age of the oldest), then calls ``forward``."""

        def report(stats: FollowStats) -> None:
            self.sample("follow", {"behind": stats.behind, "oldest_ms": stats.oldest_ms, "events": stats.events})
            if forward is not None:
                forward(stats)

        return report


def read_timeline(run_dir: Path) -> list[dict[str, Any]]:
    """The timeline's samples (lines that are not JSON objects with a number ``at`` are skipped)."""
    path = run_dir / TIMELINE
    if not path.is_file():
        return []
    samples = []
    with path.open(encoding="utf-8", errors="replace") as lines:
        for line, _ in zip(lines, range(_TIMELINE_LINES), strict=False):
            try:
                sample = json.loads(line)
            except ValueError:
                continue
            if isinstance(sample, dict) and isinstance(sample.get("at"), int | float):
                samples.append(sample)
    return samples


def keys_per_second(samples: Sequence[dict[str, Any]]) -> list[tuple[float, float]]:
    """``(seconds since the copy's first sample, keys/s since the previous sample)`` from the copy samples."""
    copy = [s for s in samples if s.get("kind") == "copy" and isinstance(s.get("scanned"), int | float)]
    points = []
    for before, after in itertools.pairwise(copy):
        elapsed = after["at"] - before["at"]
        if elapsed > 0:
            points.append((after["at"] - copy[0]["at"], max(after["scanned"] - before["scanned"], 0) / elapsed))
    return points


def follow_lag(samples: Sequence[dict[str, Any]]) -> list[tuple[float, float]]:
    """``(seconds since the first follow sample, age in ms of the oldest change not applied yet)``."""
    follow = [s for s in samples if s.get("kind") == "follow" and isinstance(s.get("oldest_ms"), int | float)]
    return [(s["at"] - follow[0]["at"], float(s["oldest_ms"])) for s in follow]


@dataclass(frozen=True)
class Chart:
    """One line chart: its title, axis names and points."""

    title: str
    x_label: str
    y_label: str
    points: list[tuple[float, float]]


_W, _H, _PAD = 560, 220, 48


def svg_chart(chart: Chart) -> str:
    """The chart as inline SVG (a polyline on two labelled axes), or a sentence when there is nothing to draw."""
    if not chart.points:
        return f"<p>{html.escape(chart.title)}: no samples in this run.</p>"
    xs, ys = [p[0] for p in chart.points], [p[1] for p in chart.points]
    x_max, y_max = max(*xs, 1e-9), max(*ys, 1e-9)
    scaled = [(_PAD + x / x_max * (_W - 2 * _PAD), _H - _PAD - y / y_max * (_H - 2 * _PAD)) for x, y in chart.points]
    points = " ".join(f"{x:.1f},{y:.1f}" for x, y in scaled)
    marks = "".join(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5"/>' for x, y in scaled)
    title = html.escape(chart.title)
    return (
        f'<figure><svg width="{_W}" height="{_H}" role="img" '
        f'aria-label="{title}" viewBox="0 0 {_W} {_H}">'
        f'<line x1="{_PAD}" y1="{_H - _PAD}" x2="{_W - _PAD}" y2="{_H - _PAD}" class="axis"/>'
        f'<line x1="{_PAD}" y1="{_PAD}" x2="{_PAD}" y2="{_H - _PAD}" class="axis"/>'
        f'<text x="{_PAD}" y="{_PAD - 8}">{html.escape(chart.y_label)} (max {_number(y_max)})</text>'
        f'<text x="{_W - _PAD}" y="{_H - 12}" text-anchor="end">{html.escape(chart.x_label)} '
        f"(0 to {_number(x_max)})</text>"
        f'<polyline points="{points}" class="line"/>{marks}</svg>'
        f"<figcaption>{title}</figcaption></figure>"
    )


def _number(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return html.escape(str(value))
    return f"{value:,.0f}" if float(value).is_integer() or abs(value) >= 100 else f"{value:,.2f}"


def _table(head: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{_number(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{cells}</tr></thead><tbody>{body}</tbody></table>"


_STYLE = (
    "body{font-family:sans-serif;margin:2em;max-width:60em;color:#222}"
    "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:right}"
    "td:first-child,th:first-child{text-align:left}.ok{color:#176f2c}.bad{color:#b00020}"
    ".axis{stroke:#555}.line{fill:none;stroke:#1f5fa8;stroke-width:2}circle{fill:#1f5fa8}svg text{font-size:11px}"
)


def report_html(
    report: dict[str, Any],
    phases: Sequence[tuple[str, float]],
    samples: Sequence[dict[str, Any]],
    per_node: dict[str, dict[str, Any]],
) -> str:
    """The page: verdict, target, phases, charts, per-shard counts and the verification's numbers."""
    settings, verify, copy = report.get("settings") or {}, report.get("verify") or {}, report.get("copy") or {}
    ok = bool(verify.get("ok"))
    verdict = "zero differences" if ok else "differences found (see data/verify.json)"
    shards = [
        (name, counts.get("scanned", 0), counts.get("copied", 0), counts.get("expired", 0), counts.get("skipped", 0))
        for name, counts in sorted(per_node.items())
    ]
    counts = ("compared", "missing", "type_mismatch", "value_mismatch", "ttl_mismatch", "extra_in_target")
    title = f"Migration of {settings.get('service', '?')} to {settings.get('target', '?')}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">",
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f'<p id="verdict" class="{"ok" if ok else "bad"}">Verification: {html.escape(verdict)}</p>',
        f"<p>Keys copied: {_number(copy.get('copied', 0))} of {_number(copy.get('source_keys', 0))} in the source.</p>",
        "<h2>Phases</h2>",
        _table(["phase", "seconds"], [(name, seconds) for name, seconds in phases]),
        "<h2>Copy speed</h2>",
        svg_chart(Chart("keys/s over time", "seconds", "keys/s", keys_per_second(samples))),
        "<h2>Follow lag</h2>",
        svg_chart(Chart("follow lag over time", "seconds", "oldest unapplied change, ms", follow_lag(samples))),
        "<h2>Per shard</h2>",
        _table(["source node", "scanned", "copied", "expired", "skipped"], shards),
        "<h2>Verification</h2>",
        _table(["check", "keys"], [(name.replace("_", " "), verify.get(name, 0)) for name in counts]),
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"
