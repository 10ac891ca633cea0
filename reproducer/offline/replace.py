"""Which attribute changes force a resource to be replaced, read from a committed table of facts.

Provider schemas do not say which arguments force replacement (``ForceNew``, ``RequiresReplace``), so the facts
were read from the providers' Go source into a table (``replace-attributes.json`` next to this module: its
``about`` gives the semantics and each provider and resource its ``read_from`` and ``notes``). The offline
providers, and the cloud twins built on them, answer ``PlanResourceChange`` with the paths :func:`requires_replace`
finds, so Terraform plans a replacement (delete then create) exactly where the table says the real provider would.

- ``replace``: a changed top-level attribute forces replacement; a listed **block** only when its number of
  elements changes (the SDK puts the flag on the block's ``#`` count).
- ``replace_in_blocks``: nested attributes, keyed by dotted block path, that force replacement when they change
  (an element added or removed counts as a change of each of its set attributes).
- ``conditional``: the provider decides with code (``CustomizeDiff``, ``ModifyPlan``); each is interpreted by
  :data:`CONDITIONS` as its ``when`` text says, and conservatively (replace) where the offline provider cannot
  know the deciding value. A conditional attribute not in :data:`CONDITIONS` replaces on any change.

The committed table is the subset of the shared table for the providers the registered targets use; regenerate it
with ``python -m reproducer.offline.replace --from DIR`` (``DIR/replace-attributes.json``).
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from reproducer.offline.schema import Block, NestedBlock
from reproducer.offline.values import Path as AttrPath

TABLE_PATH = Path(__file__).resolve().parent / "replace-attributes.json"

#: ``(prior object, planned object, attribute name) -> paths forcing replacement`` for one conditional attribute.
Condition = Callable[[dict[str, Any], dict[str, Any], str], list[AttrPath]]


def _get(obj: Any, name: str | int) -> Any:
    if isinstance(name, int):
        return obj[name] if isinstance(obj, list) and name < len(obj) else None
    return obj.get(name) if isinstance(obj, dict) else None


def _changed(prior: dict[str, Any], planned: dict[str, Any], attr: str) -> list[AttrPath]:
    """Any change replaces (also the conservative reading of a condition the offline provider cannot decide)."""
    return [(attr,)] if _get(prior, attr) != _get(planned, attr) else []


def _except(*transitions: tuple[str, str], unless_set: str = "") -> Condition:
    """Any change replaces except the listed ``(old, new)`` transitions, and never while ``unless_set`` is set."""

    def condition(prior: dict[str, Any], planned: dict[str, Any], attr: str) -> list[AttrPath]:
        if unless_set and _get(planned, unless_set) not in (None, ""):
            return []
        if (_get(prior, attr), _get(planned, attr)) in transitions:
            return []
        return _changed(prior, planned, attr)

    return condition


def _version(text: Any) -> tuple[int, ...] | None:
    match = re.fullmatch(r"(\d+)(?:\.(\d+))?(?:\.(\d+))?", text) if isinstance(text, str) else None
    return tuple(int(part) for part in match.groups() if part is not None) if match else None


def _downgrade(actual: str, unless_set: str = "") -> Condition:
    """Replaces on a downgrade only, compared with ``actual`` (the running version) when it is readable."""

    def condition(prior: dict[str, Any], planned: dict[str, Any], attr: str) -> list[AttrPath]:
        if not _changed(prior, planned, attr) or (unless_set and _get(planned, unless_set) not in (None, "")):
            return []
        new = _version(_get(planned, attr))
        old = _version(_get(prior, actual)) or _version(_get(prior, attr))
        if new is None or old is None:
            return [(attr,)]  # unreadable: conservatively a replacement
        return [(attr,)] if new < old[: len(new)] else []

    return condition


def _while_below(version_attr: str, floor: str) -> Condition:
    """Replaces when changed while the running version (``version_attr``) is below ``floor`` or unreadable."""

    def condition(prior: dict[str, Any], planned: dict[str, Any], attr: str) -> list[AttrPath]:
        running = _version(_get(prior, version_attr))
        below = running is None or running < (_version(floor) or ())
        return _changed(prior, planned, attr) if below else []

    return condition


def _unless_set(other: str) -> Condition:
    """Replaces when changed, unless ``other`` is set (then the provider clears the diff instead)."""

    def condition(prior: dict[str, Any], planned: dict[str, Any], attr: str) -> list[AttrPath]:
        return [] if _get(planned, other) not in (None, "") else _changed(prior, planned, attr)

    return condition


def _set_or_unset(prior: dict[str, Any], planned: dict[str, Any], attr: str) -> list[AttrPath]:
    """Replaces when the attribute becomes set or unset (the rule's source type switches); a new value is in place."""
    return [(attr,)] if (_get(prior, attr) is None) != (_get(planned, attr) is None) else []


def _cidr_shrinks(prior: dict[str, Any], planned: dict[str, Any], attr: str) -> list[AttrPath]:
    """Replaces unless the new range contains the whole old one (an expansion is in place)."""
    if not _changed(prior, planned, attr):
        return []
    try:
        old = ipaddress.ip_network(str(_get(prior, attr)), strict=False)
        new = ipaddress.ip_network(str(_get(planned, attr)), strict=False)
    except ValueError:
        return [(attr,)]
    grows = old.version == new.version and old.subnet_of(new)  # type: ignore[arg-type]
    return [] if grows else [(attr,)]


def _from_empty(prior: dict[str, Any], planned: dict[str, Any], attr: str) -> list[AttrPath]:
    """Replaces only when the value in state was empty; otherwise the change is in place (a resize)."""
    return _changed(prior, planned, attr) if _get(prior, attr) in (None, "") else []


def _existing_items(*nested: str) -> Condition:
    """Replaces when one of ``nested`` changes in an element present before and after (same index)."""

    def condition(prior: dict[str, Any], planned: dict[str, Any], attr: str) -> list[AttrPath]:
        before, after = _get(prior, attr), _get(planned, attr)
        if not isinstance(before, list) or not isinstance(after, list):
            return []
        return [
            (attr, index, name)
            for index in range(min(len(before), len(after)))
            for name in nested
            if _get(before[index], name) != _get(after[index], name)
        ]

    return condition


def _from_one_or_shrinks(prior: dict[str, Any], planned: dict[str, Any], attr: str) -> list[AttrPath]:
    """Replaces when leaving 1 (a standalone node) or when the number shrinks; growing from 2 or more is in place."""
    old, new = _get(prior, attr), _get(planned, attr)
    if old == new:
        return []
    if not isinstance(old, (int, float)) or not isinstance(new, (int, float)):
        return [(attr,)]  # unknown: conservatively a replacement
    return [(attr,)] if old == 1 or new < old else []


#: How each conditional of the committed table is decided offline: ``(resource type, attribute) -> Condition``.
CONDITIONS: dict[tuple[str, str], Condition] = {
    ("aws_elasticache_replication_group", "engine"): _except(
        ("redis", "valkey"), unless_set="global_replication_group_id"
    ),
    ("aws_elasticache_replication_group", "engine_version"): _downgrade(
        "engine_version_actual", unless_set="global_replication_group_id"
    ),
    ("aws_elasticache_replication_group", "node_group_configuration"): _changed,
    ("aws_elasticache_replication_group", "transit_encryption_enabled"): _while_below("engine_version_actual", "7.0.5"),
    ("aws_vpc", "instance_tenancy"): _except(("dedicated", "default")),
    ("aws_vpc", "cidr_block"): _unless_set("ipv4_netmask_length"),
    ("aws_vpc_security_group_ingress_rule", "cidr_ipv4"): _set_or_unset,
    ("aws_vpc_security_group_ingress_rule", "cidr_ipv6"): _set_or_unset,
    ("aws_vpc_security_group_ingress_rule", "prefix_list_id"): _set_or_unset,
    ("aws_vpc_security_group_ingress_rule", "referenced_security_group_id"): _set_or_unset,
    ("digitalocean_database_cluster", "engine"): _except(("redis", "valkey"), ("valkey", "redis")),
    ("azurerm_managed_redis", "sku_name"): _changed,  # a live API call decides: conservatively a replacement
    ("azurerm_redis_cache", "sku_name"): _except(("Basic", "Standard"), ("Basic", "Premium"), ("Standard", "Premium")),
    ("google_compute_subnetwork", "ip_cidr_range"): _cidr_shrinks,
    ("ovh_cloud_project_database", "nodes"): _existing_items("region", "network_id"),
    ("openstack_compute_instance_v2", "flavor_id"): _from_empty,
    ("openstack_compute_instance_v2", "flavor_name"): _from_empty,
    ("scaleway_redis_cluster", "cluster_size"): _from_one_or_shrinks,
}


@dataclass(frozen=True)
class ResourceRules:
    """What forces replacement of one resource type (see the module's docstring)."""

    replace: frozenset[str] = frozenset()
    in_blocks: dict[str, tuple[str, ...]] = field(default_factory=dict)
    conditional: dict[str, Condition] = field(default_factory=dict)


def _rules(type_name: str, raw: dict[str, Any]) -> ResourceRules:
    conditional = {
        entry["attr"]: CONDITIONS.get((type_name, entry["attr"]), _changed) for entry in raw.get("conditional", [])
    }
    in_blocks = {path: tuple(attrs) for path, attrs in raw.get("replace_in_blocks", {}).items()}
    return ResourceRules(frozenset(raw.get("replace", [])), in_blocks, conditional)


@cache
def provider_rules(address: str, table: Path = TABLE_PATH) -> dict[str, ResourceRules]:
    """The rules of every resource type of the provider ``address`` that the table lists (empty when none)."""
    document = json.loads(table.read_text(encoding="utf-8"))
    resources = document.get("providers", {}).get(address, {}).get("resources", {})
    return {name: _rules(name, raw) for name, raw in sorted(resources.items())}


def _nested(block: Block, name: str) -> NestedBlock | None:
    attr = block.attributes.get(name)
    return attr.nested if attr is not None else block.block_types.get(name)


def _count(nested: NestedBlock, value: Any) -> int:
    if nested.nesting in ("single", "group"):
        return int(value is not None)
    return len(value) if isinstance(value, (list, dict)) else 0


def _top_level(block: Block, rules: ResourceRules, prior: dict[str, Any], planned: dict[str, Any]) -> list[AttrPath]:
    paths: list[AttrPath] = []
    for name in sorted(rules.replace - set(rules.conditional)):
        if name in block.attributes:
            paths += _changed(prior, planned, name)
        elif name in block.block_types:
            nested = block.block_types[name]
            if _count(nested, _get(prior, name)) != _count(nested, _get(planned, name)):
                paths.append((name,))
    for name, condition in sorted(rules.conditional.items()):
        if name in block.attributes or name in block.block_types:
            paths += condition(prior, planned, name)
    return paths


def _projection(value: Any, attrs: tuple[str, ...], deeper: bool) -> list[str]:
    elements = value if isinstance(value, list) else []
    picked = [e if deeper else {a: _get(e, a) for a in attrs} for e in elements]
    return sorted(json.dumps(p, sort_keys=True, default=repr) for p in picked)


def _pairs(nested: NestedBlock, path: AttrPath, before: Any, after: Any) -> list[tuple[AttrPath, Any, Any]]:
    if nested.nesting in ("single", "group"):
        return [(path, before, after)]
    if nested.nesting == "map":
        keys = sorted(set(before or {}) | set(after or {}))
        return [((*path, (k,)), _get(before, k), _get(after, k)) for k in keys]
    count = max(_count(nested, before), _count(nested, after))
    return [((*path, i), _get(before, i), _get(after, i)) for i in range(count)]


def _in_blocks(
    block: Block, parts: list[str], attrs: tuple[str, ...], before: Any, after: Any, path: AttrPath
) -> list[AttrPath]:
    nested = _nested(block, parts[0])
    if nested is None:
        return []
    here, below = (*path, parts[0]), parts[1:]
    old, new = _get(before, parts[0]), _get(after, parts[0])
    if nested.nesting == "set":  # set elements have no address: the whole set is the path
        return [here] if _projection(old, attrs, bool(below)) != _projection(new, attrs, bool(below)) else []
    paths: list[AttrPath] = []
    for element_path, a, b in _pairs(nested, here, old, new):
        if below:
            paths += _in_blocks(nested.block, below, attrs, a, b, element_path)
        else:
            paths += [(*element_path, name) for name in attrs if _get(a, name) != _get(b, name)]
    return paths


def requires_replace(address: str, type_name: str, block: Block, prior: Any, planned: Any) -> list[AttrPath]:
    """The attribute paths whose change (``prior`` → ``planned``) forces this resource to be replaced.

    Args:
        address: the provider's address (``registry.terraform.io/hashicorp/aws``).
        type_name: the resource type.
        block: the resource type's schema.
        prior: the state before (an object).
        planned: the planned state of the update.

    Returns:
        Sorted paths, empty for a type the table does not list; Terraform re-checks each one against the values.
    """
    rules = provider_rules(address).get(type_name)
    if rules is None or not isinstance(prior, dict) or not isinstance(planned, dict):
        return []
    paths = _top_level(block, rules, prior, planned)
    for dotted, attrs in sorted(rules.in_blocks.items()):
        paths += _in_blocks(block, dotted.split("."), attrs, prior, planned, ())
    unique = {json.dumps(p, default=repr): p for p in paths if p}
    return [unique[k] for k in sorted(unique)]


def forcing_attributes(address: str, type_name: str) -> frozenset[str]:
    """Top-level attributes and blocks of ``type_name`` whose change may force replacement (any rule)."""
    rules = provider_rules(address).get(type_name)
    return frozenset() if rules is None else frozenset(rules.replace | set(rules.conditional) | set(rules.in_blocks))


# -- regenerating the committed subset ---------------------------------------------------------------------------


def build_table(full: dict[str, Any], source_name: str) -> dict[str, Any]:
    """The subset of the full table for the providers the registered targets use (all their listed types).

    Raises:
        ValueError: the document is not a replace table (no ``providers`` object).
    """
    if not isinstance(full.get("providers"), dict):
        raise ValueError(f"{source_name} has no 'providers' object")
    from reproducer.offline.providers import offline_providers  # the registry (and pydantic) only when asked

    addresses = {provider.address for provider in offline_providers().values()}
    return {
        "about": full.get("about", ""),
        "providers": {a: p for a, p in sorted(full["providers"].items()) if a in addresses},
        "x_reproducer": {
            "generated_from": source_name,
            "generated_by": "python -m reproducer.offline.replace --from DIR",
            "kept": "the providers of the registered targets, every resource type the table lists for them",
        },
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point (regenerate the committed table); returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m reproducer.offline.replace", description=__doc__)
    parser.add_argument("--from", dest="source", type=Path, required=True, help="directory of replace-attributes.json")
    parser.add_argument("--out", type=Path, default=TABLE_PATH, help="output file (default: the package's)")
    args = parser.parse_args(argv)
    source = args.source / "replace-attributes.json"
    try:
        table = build_table(json.loads(source.read_text(encoding="utf-8")), source.name)
    except (OSError, ValueError) as exc:
        sys.stderr.write(f"error: cannot read {source}: {exc}\n")
        return 1
    args.out.write_text(json.dumps(table, indent=1, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
    sys.stdout.write(f"wrote {args.out} ({len(table['providers'])} providers)\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
