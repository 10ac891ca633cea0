"""What every target shares: render options, compatibility rows, the Target protocol."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from reproducer.model import Category, ServiceSpec


class Support(StrEnum):
    """How well a target reproduces one attribute of the source."""

    EXACT = "exact"
    APPROXIMATED = "approximated"
    MANUAL = "manual"
    UNSUPPORTED = "unsupported"


@dataclass(frozen=True)
class CompatRow:
    """One attribute of the spec and how the target reproduces it."""

    attribute: str
    support: Support
    target_argument: str
    note: str
    category: Category

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready row."""
        return {
            "attribute": self.attribute,
            "support": str(self.support),
            "target_argument": self.target_argument,
            "note": self.note,
            "category": str(self.category),
        }


@dataclass(frozen=True)
class RenderOptions:
    """Choices the spec cannot make: a reshaped topology, a base name, the target region."""

    shards: int | None = None
    replicas: int | None = None
    name: str | None = None
    region: str | None = None


@dataclass(frozen=True)
class Rendered:
    """A target's files (relative path → text) and its compatibility rows."""

    files: dict[str, str]
    rows: list[CompatRow] = field(default_factory=list)


class Target(Protocol):
    """A target provider: renders a spec into Terraform files and says what maps how."""

    name: str
    title: str
    terraform_providers: tuple[str, ...]

    def render(self, spec: ServiceSpec, options: RenderOptions) -> Rendered:
        """Files and compatibility rows for ``spec`` (pure: no I/O)."""
        ...
