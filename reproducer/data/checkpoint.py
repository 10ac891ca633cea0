"""Per-source-node SCAN cursors and counters, saved atomically so an interrupted copy can resume.

A checkpoint also records who it was written for: the identity of the source and of the target (the normalised
endpoint, never a password, and the server ids that could be read). Resuming against another source or target is
refused: the cursors would skip keys that the other target never received.
"""

from __future__ import annotations

import json
import threading
from dataclasses import asdict
from pathlib import Path
from typing import Any, Protocol

from reproducer.atomic import atomic_write
from reproducer.errors import DataError, InputError, OutputError

FORMAT_VERSION = 2
_NEW_RUN = "start a new copy without --resume (and with another --run-dir)"


class _HasCounters(Protocol):
    scanned: int


class Checkpoint:
    """Cursor and counters of each (node, db); a no-op store when ``path`` is None."""

    def __init__(self, path: Path | None, state: dict[str, Any]) -> None:
        self.path, self._state = path, state
        self._lock = threading.Lock()

    @classmethod
    def open(
        cls,
        path: Path | None,
        *,
        resume: bool,
        source: dict[str, Any] | None = None,
        target: dict[str, Any] | None = None,
    ) -> Checkpoint:
        """A fresh checkpoint at ``path`` for ``source`` → ``target``, or the saved one when resuming.

        Resuming checks that the saved checkpoint was written for the same source and target
        (see :func:`same_server`); ``source``/``target`` are identities from ``topology.identity``.
        """
        identities = {"source": source or {}, "target": target or {}}
        if resume and path is None:
            raise InputError(
                "--resume needs a run directory with a checkpoint", hint="pass the same --run-dir as before"
            )
        if not resume or path is None:
            return cls(path, {"format_version": FORMAT_VERSION, "nodes": {}, **identities})
        state = _load(path)
        for role, now in identities.items():
            if not same_server(state[role], now):
                raise InputError(
                    f"the checkpoint in {path} was written for another {role}: {describe(state[role])}, "
                    f"not {describe(now)}",
                    hint=f"resume with the source and target of the interrupted copy, or {_NEW_RUN}",
                )
        return cls(path, state)

    def _node(self, name: str) -> dict[str, Any]:
        node: dict[str, Any] = self._state["nodes"].setdefault(name, {"cursors": {}, "done": [], "stats": {}})
        return node

    def stats(self, name: str) -> dict[str, int]:
        """Counters saved for ``name`` (empty when starting)."""
        with self._lock:
            return dict(self._node(name)["stats"])

    def totals(self) -> dict[str, int]:
        """Counters saved for every node, added up."""
        with self._lock:
            total: dict[str, int] = {}
            for node in self._state["nodes"].values():
                for name, value in node["stats"].items():
                    total[name] = total.get(name, 0) + value
            return total

    def cursor(self, name: str, db: int) -> bytes:
        """Where the SCAN of ``db`` on ``name`` resumes (``0``: from the start)."""
        with self._lock:
            return str(self._node(name)["cursors"].get(str(db), "0")).encode()

    def db_done(self, name: str, db: int) -> bool:
        """Whether ``db`` on ``name`` was fully copied."""
        with self._lock:
            return db in self._node(name)["done"]

    def advance(self, name: str, db: int, cursor: bytes, stats: _HasCounters) -> None:
        """Record that every key before ``cursor`` is confirmed on the target (cursor ``0``: the whole db)."""
        if cursor == b"0":
            self.finish_db(name, db, stats)
            return
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
        """Write the checkpoint atomically (temporary file + rename); DataError when the file system refuses."""
        if self.path is None:
            return
        with self._lock:
            text = json.dumps(self._state, indent=2, sort_keys=True)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(self.path, text)
        except (OSError, OutputError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else exc.message.rpartition(": ")[2]
            raise DataError(
                f"cannot save the copy's checkpoint {self.path}: {reason or exc}",
                hint="free space on that file system or make it writable, or pass another --run-dir; then run the "
                "command again (with --resume only if a checkpoint was saved before)",
            ) from None


def _load(path: Path) -> dict[str, Any]:
    """The saved state at ``path``; InputError when it is missing, unreadable or damaged."""
    if not path.exists():
        raise InputError(f"no checkpoint to resume at {path}", hint="run the copy without --resume first")
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"cannot read the checkpoint {path}: {exc.strerror or exc}", hint=_NEW_RUN) from None
    except ValueError as exc:  # JSON or UTF-8 errors
        raise InputError(f"the checkpoint {path} is damaged: {exc}", hint=_NEW_RUN) from None
    problem = _shape_problem(state)
    if problem:
        raise InputError(f"the checkpoint {path} is damaged or of another version: {problem}", hint=_NEW_RUN)
    return state  # type: ignore[no-any-return]


def _shape_problem(state: object) -> str:
    """What is wrong with a loaded checkpoint's structure ('' when nothing)."""
    if not isinstance(state, dict):
        return "not a JSON object"
    if state.get("format_version") != FORMAT_VERSION:
        return f"format_version {state.get('format_version')!r}, expected {FORMAT_VERSION}"
    if not all(isinstance(state.get(role), dict) for role in ("source", "target")):
        return "no source or target identity"
    nodes = state.get("nodes")
    if not isinstance(nodes, dict):
        return "no nodes"
    for name, node in nodes.items():
        if not (
            isinstance(node, dict)
            and isinstance(node.get("cursors"), dict)
            and all(isinstance(c, str) and c.isdigit() for c in node["cursors"].values())
            and isinstance(node.get("done"), list)
            and all(isinstance(d, int) for d in node["done"])
            and isinstance(node.get("stats"), dict)
            and all(isinstance(v, int) and v >= 0 for v in node["stats"].values())
        ):
            return f"node {name!r} is malformed"
    return ""


def same_server(saved: dict[str, Any], now: dict[str, Any]) -> bool:
    """Whether two identities name the same server or cluster.

    Cluster node ids survive restarts, so when both sides have them they decide. A standalone's ``run_id``
    changes at each restart: the same normalised endpoint is enough, and a shared ``run_id`` accepts another
    spelling of the same server (``localhost`` for ``127.0.0.1``).
    """
    saved_ids, now_ids = set(saved.get("cluster_ids") or ()), set(now.get("cluster_ids") or ())
    if saved_ids and now_ids:
        return bool(saved_ids & now_ids)
    if saved.get("endpoint") == now.get("endpoint"):
        return True
    return bool(set(saved.get("run_ids") or ()) & set(now.get("run_ids") or ()))


def describe(identity: dict[str, Any]) -> str:
    """An identity for messages: its normalised endpoint without user or password."""
    endpoint = identity.get("endpoint") or {}
    hosts = ",".join(endpoint.get("hosts") or ()) or "?"
    path = f"/{endpoint['primary_name']}" if endpoint.get("primary_name") else ""
    path += f"/{endpoint['db']}" if endpoint.get("db") is not None else ""
    return f"{endpoint.get('scheme', '?')}://{hosts}{path}"
