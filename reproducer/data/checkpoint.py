"""Per-source-node SCAN cursors and counters, saved atomically so an interrupted copy can resume."""

from __future__ import annotations

import json
import os
import tempfile
import threading
from dataclasses import asdict
from pathlib import Path
from typing import Any, Protocol

from reproducer.errors import InputError

FORMAT_VERSION = 1


class _HasCounters(Protocol):
    scanned: int


class Checkpoint:
    """Cursor and counters of each (node, db); a no-op store when ``path`` is None."""

    def __init__(self, path: Path | None, state: dict[str, Any]) -> None:
        self.path, self._state = path, state
        self._lock = threading.Lock()

    @classmethod
    def open(cls, path: Path | None, *, resume: bool) -> Checkpoint:
        """A fresh checkpoint at ``path``, or the saved one when resuming."""
        if resume and path is None:
            raise InputError(
                "--resume needs a run directory with a checkpoint", hint="pass the same --run-dir as before"
            )
        if resume and path is not None:
            if not path.exists():
                raise InputError(f"no checkpoint to resume at {path}", hint="run the copy without --resume first")
            state = json.loads(path.read_text())
            if state.get("format_version") != FORMAT_VERSION:
                raise InputError(
                    f"checkpoint {path} has an unknown format", hint="start the copy again without --resume"
                )
            return cls(path, state)
        return cls(path, {"format_version": FORMAT_VERSION, "nodes": {}})

    def _node(self, name: str) -> dict[str, Any]:
        node: dict[str, Any] = self._state["nodes"].setdefault(name, {"cursors": {}, "done": [], "stats": {}})
        return node

    def stats(self, name: str) -> dict[str, int]:
        """Counters saved for ``name`` (empty when starting)."""
        with self._lock:
            return dict(self._node(name)["stats"])

    def cursor(self, name: str, db: int) -> bytes:
        """Where the SCAN of ``db`` on ``name`` resumes (``0``: from the start)."""
        with self._lock:
            return str(self._node(name)["cursors"].get(str(db), "0")).encode()

    def db_done(self, name: str, db: int) -> bool:
        """Whether ``db`` on ``name`` was fully copied."""
        with self._lock:
            return db in self._node(name)["done"]

    def advance(self, name: str, db: int, cursor: bytes, stats: _HasCounters) -> None:
        """Record that every key before ``cursor`` is confirmed on the target."""
        with self._lock:
            node = self._node(name)
            node["cursors"][str(db)] = cursor.decode()
            node["stats"] = asdict(stats)  # type: ignore[call-overload]

    def finish_db(self, name: str, db: int, stats: _HasCounters) -> None:
        """Record that ``db`` on ``name`` is complete."""
        with self._lock:
            node = self._node(name)
            node["done"] = sorted({*node["done"], db})
            node["cursors"].pop(str(db), None)
            node["stats"] = asdict(stats)  # type: ignore[call-overload]

    def save(self) -> None:
        """Write the checkpoint atomically (temporary file + rename)."""
        if self.path is None:
            return
        with self._lock:
            text = json.dumps(self._state, indent=2, sort_keys=True)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".checkpoint.", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(text)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
