"""What every cloud twin is made of: a resource model per type, a persistent world, and errors as diagnostics.

A :class:`ResourceTwin` models one resource type (``aws_elasticache_replication_group``...). The provider
process Terraform starts lives only for one command, so everything a twin makes is recorded in a
:class:`TwinWorld` on disk (``<root>/resources/<type>/<id>.json`` and, per Valkey-backed resource, a fleet
directory) and found again by the next process.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from reproducer.atomic import atomic_write
from reproducer.errors import SandboxError
from reproducer.offline.values import UNKNOWN

#: Environment variable naming the twins' world directory; the mirror's wrapper scripts set it.
ROOT_VARIABLE = "REPRODUCER_TWIN_ROOT"


def plain(value: Any) -> Any:
    """``value`` with unknowns as null, to be recorded as JSON."""
    if value is UNKNOWN:
        return None
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


class TwinError(Exception):
    """What the cloud answers when it refuses a call: becomes an error diagnostic (``summary``: ``detail``).

    Attributes:
        summary: the short text (for a cloud API error, its code and message as the provider prints them).
        detail: more text, the rule's source for instance.
        path: the attribute the error is about (as in :mod:`reproducer.offline.values`), or ``()``.
    """

    def __init__(self, summary: str, detail: str = "", path: tuple[Any, ...] = ()) -> None:
        super().__init__(summary)
        self.summary, self.detail, self.path = summary, detail, path


@dataclass(frozen=True)
class TwinWorld:
    """The twins' persistent state: applied resources by type and id, and a directory per Valkey fleet."""

    root: Path

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> TwinWorld:
        """The world the mirror's wrapper named in :data:`ROOT_VARIABLE`."""
        root = environ.get(ROOT_VARIABLE)
        if not root:
            raise SandboxError(f"{ROOT_VARIABLE} is not set", hint="start twins through reproducer.twins.install_twins")
        return cls(Path(root))

    def _record(self, type_name: str, resource_id: str) -> Path:
        if not resource_id or "/" in resource_id or resource_id.startswith("."):
            raise TwinError(f"invalid resource id {resource_id!r}")
        return self.root / "resources" / type_name / f"{resource_id}.json"

    def save(self, type_name: str, resource_id: str, state: Mapping[str, Any]) -> None:
        """Record the state of an applied resource (what a cloud API would answer about it)."""
        path = self._record(type_name, resource_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, json.dumps(state, sort_keys=True, indent=1))

    def load(self, type_name: str, resource_id: str) -> dict[str, Any] | None:
        """The recorded state of a resource, or None when it does not exist (any more)."""
        path = self._record(type_name, resource_id)
        if not path.exists():
            return None
        loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return loaded

    def forget(self, type_name: str, resource_id: str) -> None:
        """Remove a resource's record (its fleet, if any, is stopped by the twin first)."""
        self._record(type_name, resource_id).unlink(missing_ok=True)

    def all(self, type_name: str) -> list[dict[str, Any]]:
        """Every recorded resource of a type (for uniqueness rules such as ids and names)."""
        directory = self.root / "resources" / type_name
        return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(directory.glob("*.json"))]

    def fleet_dir(self, type_name: str, resource_id: str) -> Path:
        """Where the Valkey fleet of a resource lives (``Fleet.start(spec, root=...)``/``Fleet.attach``)."""
        self._record(type_name, resource_id)  # validates the id
        return self.root / "fleets" / type_name / resource_id


@dataclass
class Change:
    """One resource change as a twin sees it (values as :mod:`reproducer.offline.values` decodes them).

    ``prior`` is None for a create; ``planned``/``config`` are None for a delete. ``provider`` is the provider
    block's configuration (``region``, ``project``...), empty before Terraform configured the provider.
    """

    type_name: str
    prior: dict[str, Any] | None
    planned: dict[str, Any] | None
    config: dict[str, Any] | None = None
    world: TwinWorld = field(default_factory=TwinWorld.from_environment)
    provider: dict[str, Any] = field(default_factory=dict)


class ResourceTwin(Protocol):
    """The model of one resource type. Each method may raise :class:`TwinError` (shown as Terraform's error).

    Replacements are not a twin's to say: the offline provider answers them from the shared table
    (``reproducer/offline/replace.py``), as for a plan without twins.
    """

    type_name: str

    def validate(self, config: dict[str, Any]) -> None:
        """Plan-time checks the real provider makes on the configuration (unknown values may appear)."""

    def plan(self, change: Change) -> dict[str, Any] | None:
        """The planned state: ``change.planned`` from the generic planner, adjusted as the provider adjusts it.

        Defaults the provider fills at plan time, values that stay unknown... Return it unchanged otherwise.
        """

    def create(self, change: Change) -> dict[str, Any]:
        """Make the resource (start Valkey...), record it in the world, return its wholly known state."""

    def update(self, change: Change) -> dict[str, Any]:
        """Change the resource in place, record it, return its new state."""

    def delete(self, change: Change) -> None:
        """Remove the resource (stop its Valkey), and its record."""

    def read(self, state: dict[str, Any], world: TwinWorld) -> dict[str, Any] | None:
        """The resource as the cloud reports it now, or None when it is gone (Terraform then plans a create)."""


class DataSourceTwin(Protocol):
    """The model of one data source type (``aws_availability_zones``...)."""

    type_name: str

    def read(self, config: dict[str, Any], world: TwinWorld, provider: dict[str, Any]) -> dict[str, Any]:
        """The data source's state for ``config`` (``provider``: the provider block); may raise :class:`TwinError`.

        Computed attributes left null or unknown get the offline provider's values (fake strings, empty lists).
        """


class GenericTwin:
    """What most resource twins share: no plan-time rule beyond the schema, and the generic plan.

    A twin subclasses it and overrides what its provider does differently.
    """

    def validate(self, config: dict[str, Any]) -> None:
        """No plan-time rule beyond the schema."""

    def plan(self, change: Change) -> dict[str, Any] | None:
        """The generic plan."""
        return change.planned
