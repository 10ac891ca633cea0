"""Drift: differences between a committed service spec and what the live service says now.

Pure: two spec dicts in, differences out, and the report as markdown (an issue or merge-request note, with a
hidden marker so a scheduled job updates it in place) or JSON.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

FORMAT_VERSION = "1.1"
#: Top-level spec fields derived from the others (``features``: whether each is in use and a note that repeats
#: the shard count, the CIDR count...): a change there only repeats a change listed already.
DERIVED = frozenset({"features"})
_SHOWN_CHARS = 200


def shown(value: Any) -> str:
    """A value as a person reads it: text as is, ``(none)`` for absent, anything else as compact JSON."""
    if value is None:
        return "(none)"
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 1] + "…"


@dataclass(frozen=True)
class Difference:
    """One field that differs: its path in the spec, the committed value and the live one."""

    path: str
    committed: Any
    live: Any

    def describe(self) -> str:
        """One human line."""
        if self.committed is None:
            return f"{self.path}: added live: {shown(self.live)}"
        if self.live is None:
            return f"{self.path}: removed live (was {shown(self.committed)})"
        return f"{self.path}: {shown(self.committed)} → {shown(self.live)}"


@dataclass(frozen=True)
class DriftReport:
    """The differences between a committed spec and its live service, and where that spec came from."""

    spec: str
    project: str
    service: str
    differences: list[Difference] = field(default_factory=list)
    #: The ``--endpoint`` drift was given (the refresh command repeats it), if any.
    endpoint: str | None = None

    @property
    def refresh(self) -> str:
        """The command that refreshes the committed spec from the live service (to accept the drift)."""
        endpoint = f" --endpoint {_quoted(self.endpoint)}" if self.endpoint else ""
        return f"reproducer inspect --project {self.project} --service {self.service}{endpoint} -o {_quoted(self.spec)}"


#: Lists whose items are matched by a key field rather than by position.
_KEYED = {
    "allow_list": "cidr",
    "users": "name",
    "configuration": "source_name",
    "features": "name",
    "nodes": "name",
    "endpoints": "host",
}


def differences(committed: Any, live: Any, path: str = "") -> list[Difference]:
    """Every differing leaf between two spec dicts; keyed lists are compared item by item.

    The derived top-level fields (:data:`DERIVED`) are left out: they change only when another field does.
    """
    if not path and isinstance(committed, dict) and isinstance(live, dict):
        committed = {k: v for k, v in committed.items() if k not in DERIVED}
        live = {k: v for k, v in live.items() if k not in DERIVED}
    if isinstance(committed, dict) and isinstance(live, dict):
        found: list[Difference] = []
        for key in sorted(set(committed) | set(live)):
            found += differences(committed.get(key), live.get(key), f"{path}.{key}" if path else key)
        return found
    key = _KEYED.get(path.rsplit(".", 1)[-1])
    if key and isinstance(committed, list) and isinstance(live, list):
        old = {str(item.get(key)): item for item in committed}
        new = {str(item.get(key)): item for item in live}
        return differences(old, new, path) if old != new else []
    return [] if committed == live else [Difference(path, committed, live)]


def to_json(report: DriftReport) -> str:
    """The report as JSON with a ``format_version``; values are the spec's own (JSON), never Python reprs."""
    data = {
        "format_version": FORMAT_VERSION,
        "drift": bool(report.differences),
        "spec": report.spec,
        "project": report.project,
        "service": report.service,
        "differences": [{"path": d.path, "committed": d.committed, "live": d.live} for d in report.differences],
        "refresh": report.refresh,
    }
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def marker(report: DriftReport) -> str:
    """The hidden first line that finds the issue or note of this service again (ids are checked by the model)."""
    return f"<!-- reproducer:drift project={report.project} service={report.service} version=1 -->"


def to_markdown(report: DriftReport) -> str:
    """The report as an issue or merge-request note: marker, verdict, a table of differences, how to refresh."""
    found = report.differences
    icon, verdict = ("⚠️", "drifted") if found else ("✅", "no drift")
    lines = [
        marker(report),
        f"## {icon} reproducer drift — {verdict}",
        "",
        f"{len(found)} difference(s) between {_cell(report.spec)} and the live service "
        f"{_cell(report.service)} (project {_cell(report.project)}).",
    ]
    if found:
        lines += ["", "| field | committed | live |", "|---|---|---|"]
        lines += [f"| {_cell(d.path)} | {_cell(shown(d.committed))} | {_cell(shown(d.live))} |" for d in found[:200]]
        if len(found) > 200:
            lines.append(f"\n… and {len(found) - 200} more (see the JSON: `reproducer drift --format json`).")
        lines += [
            "",
            "To accept the live state, refresh the committed spec and open a pull request with it:",
            "",
            f"```sh\n{report.refresh}\n```",
            "",
            "Otherwise change the live service back to what the spec says.",
        ]
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    """``text`` as an inline code span inside a table cell: no backtick, pipe or line break can escape it."""
    clean = "".join(ch if ch.isprintable() and ch != "`" else "?" for ch in text).replace("|", "\\|")
    return f"`{clean}`"


def _quoted(path: str) -> str:
    """A path or name as one shell word (single quotes unless it is made of safe characters only)."""
    path = "".join(ch if ch.isprintable() else "?" for ch in path)
    safe = path and all(ch.isalnum() or ch in "/._-+:@" for ch in path)
    return path if safe else "'" + path.replace("'", "'\\''") + "'"
