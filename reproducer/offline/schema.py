"""A provider schema in the ``terraform providers schema -json`` format, as plain typed objects.

Attribute types stay cty JSON type expressions (``"string"``, ``["list", "string"]``,
``["object", {"a": "number"}]``); :func:`implied_type` gives the cty type of a whole block, which is what
Terraform encodes resource values with.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CtyType = Any  # a cty JSON type expression: a str or a nested list
NESTING_MODES = ("single", "list", "set", "map", "group")


@dataclass(frozen=True)
class Attribute:
    """One attribute of a block; ``nested`` is set for framework nested attributes (``nested_type``)."""

    name: str
    type: CtyType
    required: bool = False
    optional: bool = False
    computed: bool = False
    sensitive: bool = False
    deprecated: bool = False
    write_only: bool = False
    description: str = ""
    nested: NestedBlock | None = None

    @property
    def computed_only(self) -> bool:
        """Whether the provider sets this attribute and configuration may not."""
        return self.computed and not self.optional and not self.required


@dataclass(frozen=True)
class Block:
    """A configuration block: attributes and nested block types, by name."""

    attributes: dict[str, Attribute] = field(default_factory=dict)
    block_types: dict[str, NestedBlock] = field(default_factory=dict)
    description: str = ""
    deprecated: bool = False


@dataclass(frozen=True)
class NestedBlock:
    """A nested block type (or the object of a nested attribute) and how its values nest."""

    nesting: str
    block: Block
    min_items: int = 0
    max_items: int = 0


@dataclass(frozen=True)
class Schema:
    """The schema of a provider, a resource type or a data source."""

    block: Block
    version: int = 0


@dataclass(frozen=True)
class ProviderSchema:
    """Everything one provider serves."""

    address: str
    provider: Schema
    resources: dict[str, Schema]
    data_sources: dict[str, Schema]


def _attribute(name: str, raw: dict[str, Any]) -> Attribute:
    nested = None
    if "nested_type" in raw:
        spec = raw["nested_type"]
        nested = NestedBlock(spec.get("nesting_mode", "single"), Block(_attributes(spec.get("attributes", {}))))
    return Attribute(
        name=name,
        type=raw.get("type"),
        required=bool(raw.get("required")),
        optional=bool(raw.get("optional")),
        computed=bool(raw.get("computed")),
        sensitive=bool(raw.get("sensitive")),
        deprecated=bool(raw.get("deprecated")),
        write_only=bool(raw.get("write_only")),
        description=raw.get("description", ""),
        nested=nested,
    )


def _attributes(raw: dict[str, Any]) -> dict[str, Attribute]:
    return {name: _attribute(name, spec) for name, spec in sorted(raw.items())}


def parse_block(raw: dict[str, Any]) -> Block:
    """Build a :class:`Block` from its JSON form (``{"attributes": ..., "block_types": ...}``).

    Raises:
        ValueError: a nested block has an unknown nesting mode.
    """
    blocks = {}
    for name, spec in sorted(raw.get("block_types", {}).items()):
        if spec["nesting_mode"] not in NESTING_MODES:
            raise ValueError(f"block {name!r}: unknown nesting mode {spec['nesting_mode']!r}")
        blocks[name] = NestedBlock(
            spec["nesting_mode"], parse_block(spec["block"]), spec.get("min_items", 0), spec.get("max_items", 0)
        )
    return Block(
        _attributes(raw.get("attributes", {})),
        blocks,
        raw.get("description", ""),
        bool(raw.get("deprecated")),
    )


def _schema(raw: dict[str, Any]) -> Schema:
    return Schema(parse_block(raw.get("block", {})), int(raw.get("version", 0)))


def parse_document(document: dict[str, Any], address: str | None = None) -> ProviderSchema:
    """Read one provider out of a ``terraform providers schema -json`` document.

    Args:
        document: the parsed JSON document.
        address: which provider to read; may be omitted when the document describes only one.

    Raises:
        ValueError: the provider is not in the document, or ``address`` is omitted and there are several.
    """
    schemas = document.get("provider_schemas", {})
    if address is None:
        if len(schemas) != 1:
            raise ValueError(f"the document describes {len(schemas)} providers; say which one")
        address = next(iter(schemas))
    if address not in schemas:
        raise ValueError(f"the document has no schema for {address} (it has: {', '.join(sorted(schemas))})")
    raw = schemas[address]
    return ProviderSchema(
        address=address,
        provider=_schema(raw.get("provider", {})),
        resources={name: _schema(spec) for name, spec in sorted(raw.get("resource_schemas", {}).items())},
        data_sources={name: _schema(spec) for name, spec in sorted(raw.get("data_source_schemas", {}).items())},
    )


def load(path: Path, address: str | None = None) -> ProviderSchema:
    """Read a provider schema from a JSON file; see :func:`parse_document`."""
    return parse_document(json.loads(path.read_text(encoding="utf-8")), address)


def attribute_type(attribute: Attribute) -> CtyType:
    """The cty type of an attribute's value, nested attributes included."""
    if attribute.nested is None:
        return attribute.type
    return _nest(attribute.nested.nesting, implied_type(attribute.nested.block))


def _nest(nesting: str, element: CtyType) -> CtyType:
    if nesting in ("single", "group"):
        return element
    return [nesting, element]


def implied_type(block: Block) -> CtyType:
    """The cty object type that values of ``block`` have (nested blocks become objects or collections)."""
    members: dict[str, CtyType] = {name: attribute_type(attr) for name, attr in block.attributes.items()}
    for name, nested in block.block_types.items():
        members[name] = _nest(nested.nesting, implied_type(nested.block))
    return ["object", members]
