"""What a run directory (``--run-dir``) holds: the job's events and the copy's checkpoint."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def events(run_dir: Path) -> list[dict[str, Any]]:
    """The job's ``events.jsonl``, one dict a line (empty while the file does not exist)."""
    path = run_dir / "events.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def checkpoint(run_dir: Path) -> dict[str, Any]:
    """The copy's checkpoint (``data/checkpoint.json``); empty while it does not exist or is being replaced."""
    try:
        saved: dict[str, Any] = json.loads((run_dir / "data" / "checkpoint.json").read_text())
    except (OSError, ValueError):
        return {}
    return saved


def confirmed_keys(run_dir: Path) -> int:
    """Keys the checkpoint counts as copied and confirmed on the target (0 before the first batch)."""
    return sum(node["stats"].get("copied", 0) for node in checkpoint(run_dir).get("nodes", {}).values())
