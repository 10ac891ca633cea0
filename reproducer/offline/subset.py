"""Regenerate the committed provider schema subsets from full ``terraform providers schema -json`` files.

The tests and the sandbox serve only the resource types reproducer renders, so each provider's schema is cut
down to the types listed in :data:`PROVIDERS` (the one table to edit) and written to ``schemas/<key>.json``
next to this module. Run it when a provider version is bumped or a target starts rendering a new type::

    python -m reproducer.offline.subset --from /path/to/provider-schemas

The full files are named ``<key>.json`` in that directory (for example ``aws.json``). Each subset records the
provider version in ``x_reproducer``; :func:`reproducer.offline.install_mirror` reads it from there.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMAS_DIR = Path(__file__).resolve().parent / "schemas"
ALL = ("*",)


@dataclass(frozen=True)
class ProviderEntry:
    """One provider whose schema subset is committed.

    Attributes:
        address: the provider's full source address, e.g. ``registry.terraform.io/hashicorp/aws``.
        version: the provider version the full schema was taken from.
        resources: managed resource types kept; :data:`ALL` keeps every one.
        data_sources: data source types kept; :data:`ALL` keeps every one.
    """

    address: str
    version: str
    resources: tuple[str, ...]
    data_sources: tuple[str, ...] = ()


PROVIDERS: dict[str, ProviderEntry] = {
    "aws": ProviderEntry(
        "registry.terraform.io/hashicorp/aws",
        "6.69.1",
        resources=(
            "aws_elasticache_replication_group",
            "aws_elasticache_user",
            "aws_elasticache_user_group",
            "aws_elasticache_subnet_group",
            "aws_elasticache_parameter_group",
            "aws_security_group",
            "aws_vpc_security_group_ingress_rule",
            "aws_vpc_security_group_egress_rule",
            "aws_vpc",
            "aws_subnet",
        ),
    ),
    "google": ProviderEntry(
        "registry.terraform.io/hashicorp/google",
        "8.7.0",
        resources=(
            "google_memorystore_acl_policy",
            "google_memorystore_instance",
            "google_network_connectivity_service_connection_policy",
            "google_compute_firewall",
            "google_compute_network",
            "google_compute_subnetwork",
        ),
    ),
    "openstack": ProviderEntry(
        "registry.terraform.io/terraform-provider-openstack/openstack",
        "3.0.0",
        resources=(
            "openstack_compute_instance_v2",
            "openstack_compute_keypair_v2",
            "openstack_networking_network_v2",
            "openstack_networking_subnet_v2",
            "openstack_networking_secgroup_v2",
            "openstack_networking_secgroup_rule_v2",
            "openstack_networking_port_v2",
        ),
    ),
    "ovh": ProviderEntry("registry.terraform.io/ovh/ovh", "2.19.0", resources=ALL, data_sources=ALL),
    "aiven": ProviderEntry("registry.terraform.io/aiven/aiven", "4.61.0", resources=ALL, data_sources=ALL),
    "random": ProviderEntry("registry.terraform.io/hashicorp/random", "3.9.1", resources=("random_password",)),
}

# Files rebuilt from cdktf/cdktn packages list ``alias`` as a provider argument; it is a meta-argument that
# Terraform handles itself, so the subset drops it.
_CDKTF_ARTEFACTS = ("alias",)


class SubsetError(Exception):
    """A full schema file is missing, malformed, or lacks a listed type."""


def _pick(available: dict[str, Any], wanted: tuple[str, ...], kind: str, key: str) -> dict[str, Any]:
    if wanted == ALL:
        return dict(sorted(available.items()))
    missing = sorted(set(wanted) - set(available))
    if missing:
        raise SubsetError(f"{key}: {kind} {', '.join(missing)} not in the full schema")
    return {name: available[name] for name in sorted(wanted)}


def build_subset(key: str, full: dict[str, Any], source_name: str) -> dict[str, Any]:
    """Cut one provider's full schema document down to the types listed in :data:`PROVIDERS`.

    Args:
        key: the short provider key (``aws``, ``ovh``, ...).
        full: the parsed ``terraform providers schema -json`` document.
        source_name: where ``full`` came from, recorded in the subset.

    Returns:
        The subset document, in the same format plus an ``x_reproducer`` object (version, provenance).

    Raises:
        SubsetError: the document does not describe the expected provider or lacks a listed type.
    """
    entry = PROVIDERS[key]
    schemas = full.get("provider_schemas", {})
    if entry.address not in schemas:
        raise SubsetError(f"{key}: {source_name} has no schema for {entry.address}")
    schema = schemas[entry.address]
    provider = json.loads(json.dumps(schema["provider"]))
    for name in _CDKTF_ARTEFACTS:
        provider["block"].get("attributes", {}).pop(name, None)
    document: dict[str, Any] = {
        "format_version": full.get("format_version", "1.0"),
        "provider_schemas": {
            entry.address: {
                "provider": provider,
                "resource_schemas": _pick(schema.get("resource_schemas", {}), entry.resources, "resources", key),
                "data_source_schemas": _pick(
                    schema.get("data_source_schemas", {}), entry.data_sources, "data sources", key
                ),
            }
        },
        "x_reproducer": {
            "version": entry.version,
            "generated_from": source_name,
            "generated_by": "python -m reproducer.offline.subset",
        },
    }
    return document


def write_subsets(source_dir: Path, out_dir: Path = SCHEMAS_DIR, keys: Sequence[str] = ()) -> list[Path]:
    """Regenerate the subsets of ``keys`` (all of :data:`PROVIDERS` when empty) from ``source_dir``.

    Args:
        source_dir: a directory holding the full schema files, one ``<key>.json`` per provider.
        out_dir: where to write the subsets.
        keys: provider keys to regenerate.

    Returns:
        The paths written.

    Raises:
        SubsetError: a full file is missing, unreadable or lacks a listed type.
    """
    written = []
    out_dir.mkdir(parents=True, exist_ok=True)
    for key in keys or sorted(PROVIDERS):
        source = source_dir / f"{key}.json"
        try:
            full = json.loads(source.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise SubsetError(f"{key}: cannot read {source}: {exc}") from exc
        subset = build_subset(key, full, source.name)
        target = out_dir / f"{key}.json"
        target.write_text(json.dumps(subset, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        written.append(target)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m reproducer.offline.subset", description=__doc__)
    parser.add_argument("--from", dest="source", type=Path, required=True, help="directory of full schema files")
    parser.add_argument("--out", type=Path, default=SCHEMAS_DIR, help="output directory (default: the package's)")
    parser.add_argument("keys", nargs="*", metavar="KEY", help=f"providers (default: all of {', '.join(PROVIDERS)})")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.keys) - set(PROVIDERS))
    if unknown:
        parser.error(f"unknown provider(s) {', '.join(unknown)}; known: {', '.join(sorted(PROVIDERS))}")
    try:
        paths = write_subsets(args.source, args.out, args.keys)
    except SubsetError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    for path in paths:
        sys.stdout.write(f"wrote {path} ({path.stat().st_size:,} bytes)\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
