"""Drift: differences between a committed service spec and what the live service says now."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Difference:
    """One field that differs: its path in the spec, the committed value and the live one."""

    path: str
    committed: Any
    live: Any

    def describe(self) -> str:
        """One human line."""
        if self.committed is None:
            return f"{self.path}: added live: {self.live!r}"
        if self.live is None:
            return f"{self.path}: removed live (was {self.committed!r})"
        return f"{self.path}: {self.committed!r} → {self.live!r}"


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
    """Every differing leaf between two spec dicts; keyed lists are compared item by item."""
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
