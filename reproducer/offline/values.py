"""What the schema-serving provider does to resource values: pure functions, no protocol.

Values are what msgpack decoding gives (``None``, ``str``, numbers, ``bool``, ``list``, ``dict``) plus
:data:`UNKNOWN` for cty unknown values ("known after apply"). Attribute paths are tuples whose items are an
attribute name (``str``), a list index (``int``) or a map key (a one-item ``tuple``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any, Final

from reproducer.offline.schema import Attribute, Block, CtyType, NestedBlock, implied_type

PathItem = str | int | tuple[str]
Path = tuple[PathItem, ...]
Visitor = Callable[[Attribute, Any, Path], Any]


class Unknown:
    """The type of :data:`UNKNOWN`, the cty unknown value ("known after apply"); compare with ``is``."""

    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN: Final = Unknown()


def _map_block(block: Block, obj: Any, path: Path, visit: Visitor) -> Any:
    if not isinstance(obj, dict):
        return obj
    out = dict(obj)
    for name, attr in block.attributes.items():
        value = visit(attr, obj.get(name), (*path, name))
        if attr.nested is not None:
            value = _map_nested(attr.nested, value, (*path, name), visit)
        out[name] = value
    for name, nested in block.block_types.items():
        out[name] = _map_nested(nested, obj.get(name), (*path, name), visit)
    return out


def _map_nested(nested: NestedBlock, value: Any, path: Path, visit: Visitor) -> Any:
    if nested.nesting in ("single", "group"):
        return _map_block(nested.block, value, path, visit)
    if isinstance(value, list):
        indexed = nested.nesting == "list"  # set elements have no address
        return [_map_block(nested.block, v, (*path, i) if indexed else path, visit) for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {k: _map_block(nested.block, v, (*path, (k,)), visit) for k, v in value.items()}
    return value


def map_attributes(block: Block, obj: Any, visit: Visitor) -> Any:
    """Rebuild ``obj`` (a value of ``block``) with each attribute's value replaced by ``visit(attr, value, path)``.

    Nested blocks and nested attributes are walked too; ``obj`` itself is not modified.
    """
    return _map_block(block, obj, (), visit)


def computed_only_set(block: Block, config: Any) -> list[tuple[Path, Attribute]]:
    """The computed-only attributes that a configuration sets (to a value or to something unknown)."""
    found: list[tuple[Path, Attribute]] = []

    def visit(attr: Attribute, value: Any, path: Path) -> Any:
        if attr.computed_only and value is not None:
            found.append((path, attr))
        return value

    map_attributes(block, config, visit)
    return found


def plan_create(block: Block, proposed: Any) -> Any:
    """The planned state of a new object: computed attributes left null become unknown."""

    def visit(attr: Attribute, value: Any, path: Path) -> Any:
        if attr.write_only:
            return None
        return UNKNOWN if attr.computed and value is None else value

    return map_attributes(block, proposed, visit)


def plan_update(block: Block, proposed: Any) -> Any:
    """The planned state of an existing object: Terraform's proposal, write-only attributes left out."""
    return map_attributes(block, proposed, lambda attr, value, path: None if attr.write_only else value)


def digest(*parts: Any) -> str:
    """A short stable hex digest of JSON-able parts (unknown values and bytes included)."""
    text = json.dumps(parts, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _kind(ty: CtyType) -> str:
    return ty if isinstance(ty, str) else str(ty[0])


_EMPTY: dict[str, Any] = {"number": 0, "bool": False, "list": [], "set": [], "map": {}}


def fake(ty: CtyType, seed: str, *, one_string: bool = False) -> Any:
    """A deterministic known value of type ``ty``: ``"fake-<hash>"``, 0, false, empty collections.

    With ``one_string``, a list or set of strings gets one fake string (what a cloud reports after a create,
    such as a port's addresses) instead of being empty.
    """
    kind = _kind(ty)
    if kind == "string":
        return f"fake-{digest(seed)}"
    if kind == "object":
        return {name: fake(aty, f"{seed}.{name}", one_string=one_string) for name, aty in ty[1].items()}
    if kind == "tuple":
        return [fake(ety, f"{seed}.{i}", one_string=one_string) for i, ety in enumerate(ty[1])]
    if one_string and kind in ("list", "set") and ty[1] == "string":
        return [fake("string", f"{seed}.0")]
    return json.loads(json.dumps(_EMPTY.get(kind)))  # a fresh copy; dynamic gets null, a known value of any type


#: Computed maps the cloud keys by the values of another attribute: ``(resource type, map) -> keying attribute``.
#: After apply, each gets one fake value per key, so configurations can index them
#: (docs/reference/terraform-offline.md#fake-values).
KEYED_MAPS: dict[tuple[str, str], str] = {
    ("ovh_cloud_project_network_private", "regions_openstack_ids"): "regions",
}


def key_maps(type_name: str, planned: Any) -> Any:
    """``planned`` with each unknown :data:`KEYED_MAPS` map of ``type_name`` given an unknown value per key."""
    if not isinstance(planned, dict):
        return planned
    out = dict(planned)
    for (kind, name), keying in KEYED_MAPS.items():
        keys = planned.get(keying)
        if kind == type_name and planned.get(name) is UNKNOWN and isinstance(keys, list):
            out[name] = {key: UNKNOWN for key in keys if isinstance(key, str)}
    return out


def fill(value: Any, ty: CtyType, seed: str, *, one_string: bool = False) -> Any:
    """``value`` conformed to ``ty``: unknowns become :func:`fake` values, objects get exactly their attributes."""
    if value is UNKNOWN:
        return fake(ty, seed, one_string=one_string)
    kind = _kind(ty)
    if isinstance(value, list) and kind in ("list", "set", "tuple"):
        types = ty[1] if kind == "tuple" else [ty[1]] * len(value)
        return [
            fill(v, t, f"{seed}.{i}", one_string=one_string) for i, (v, t) in enumerate(zip(value, types, strict=False))
        ]
    if isinstance(value, dict) and kind in ("map", "object"):
        types = ty[1] if kind == "object" else dict.fromkeys(value, ty[1])
        return {k: fill(value.get(k), t, f"{seed}.{k}", one_string=one_string) for k, t in types.items()}
    return value


def complete(block: Block, state: Any, seed: str, *, one_string: bool = False) -> Any:
    """A wholly known object of ``block``: unknowns filled (see :func:`fake`), write-only attributes null."""
    known = fill(state, implied_type(block), seed, one_string=one_string)
    return map_attributes(block, known, lambda attr, value, path: None if attr.write_only else value)


def read_data(block: Block, config: Any, seed: str) -> Any:
    """The state of a data source: the configuration, with computed attributes left null given fake values.

    A computed list of strings gets one fake string, as a cloud answers at least one (availability zones): an
    empty list would make a plan count none of what is made per element.
    """
    return complete(block, plan_create(block, config), seed, one_string=True)


def empty_object(block: Block) -> dict[str, Any]:
    """An object of ``block`` with every attribute null and every nested block empty."""
    out: dict[str, Any] = dict.fromkeys(block.attributes)
    for name, nested in block.block_types.items():
        if nested.nesting in ("list", "set"):
            out[name] = []
        elif nested.nesting == "map":
            out[name] = {}
        else:
            out[name] = empty_object(nested.block) if nested.nesting == "group" else None
    return out
