"""What every target shares: render options, compatibility rows, Terraform provider facts, the Target protocol."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal, Protocol

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


#: Where the rendered service's network comes from: created by the render, or the user's, read by data sources.
Network = Literal["new", "existing"]


@dataclass(frozen=True)
class RenderOptions:
    """Choices the spec cannot make: a reshaped topology, a base name, the target region, the network, adoptions.

    ``adopt``: ``(resource address, provider id)`` pairs of resources that already exist (``--adopt``); they
    become Terraform ``import`` blocks once checked against the addresses the render produces.
    """

    shards: int | None = None
    replicas: int | None = None
    name: str | None = None
    region: str | None = None
    network: Network = "new"
    adopt: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Rendered:
    """A target's files (relative path → text) and its compatibility rows."""

    files: dict[str, str]
    rows: list[CompatRow] = field(default_factory=list)


#: In :attr:`TerraformProvider.resources` or ``data_sources``: every type of the provider.
ALL_TYPES = ("*",)


@dataclass(frozen=True)
class TerraformProvider:
    """A Terraform provider a target renders for: the one place its address and versions are written.

    ``versions.tf`` requires it, the offline mirror serves it and the schema subsets keep its types.

    Attributes:
        address: the full source address, e.g. ``registry.terraform.io/hashicorp/aws``.
        version: the version whose schema the offline provider serves (and the rendered files are checked with).
        resources: the managed resource types the target renders (:data:`ALL_TYPES` for all).
        data_sources: the data source types it reads.
        constraint: what ``versions.tf`` accepts; ``~> MAJOR.MINOR`` of ``version`` when empty.
    """

    address: str
    version: str
    resources: tuple[str, ...]
    data_sources: tuple[str, ...] = ()
    constraint: str = ""

    @property
    def key(self) -> str:
        """The provider type, e.g. ``aws``: its local name in ``required_providers`` and its offline key."""
        return self.address.rsplit("/", 1)[1]

    @property
    def source(self) -> str:
        """The ``source`` written in ``required_providers``, e.g. ``hashicorp/aws``."""
        return self.address.split("/", 1)[1]

    @property
    def required_version(self) -> str:
        """The version constraint written in ``required_providers``."""
        return self.constraint or "~> " + ".".join(self.version.split(".")[:2])


class Target(Protocol):
    """A target provider: renders a spec into Terraform files and says what maps how."""

    name: str
    title: str
    providers: tuple[TerraformProvider, ...]

    @property
    def terraform_providers(self) -> tuple[str, ...]:
        """The keys of :attr:`providers`: what ``reproducer.offline.install_mirror`` takes."""
        ...

    def render(self, spec: ServiceSpec, options: RenderOptions) -> Rendered:
        """Files and compatibility rows for ``spec`` (pure: no I/O)."""
        ...
