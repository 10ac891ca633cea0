"""Regenerate the committed provider schema subsets from full ``terraform providers schema -json`` files.

`plan`, the tests and the sandbox serve only the resource types reproducer renders, so each provider's schema is cut
down to the types its target lists (``providers`` in the target's module, read through the target registry;
:data:`reproducer.offline.providers.UNTIED` for the others) and written to ``schemas/<key>.json`` next to this
module. Run it when a provider version is bumped or a target starts rendering a new type::

    python -m reproducer.offline.subset --from /path/to/provider-schemas

The full files are named ``<key>.json`` in that directory (for example ``aws.json``). Each subset records the
provider address and version; :func:`reproducer.offline.install_mirror` refuses a subset of another version.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from reproducer.errors import ReproducerError
from reproducer.offline.providers import offline_providers
from reproducer.targets.base import ALL_TYPES, TerraformProvider

SCHEMAS_DIR = Path(__file__).resolve().parent / "schemas"

# Files rebuilt from cdktf/cdktn packages list ``alias`` as a provider argument; it is a meta-argument that
# Terraform handles itself, so the subset drops it.
_CDKTF_ARTEFACTS = ("alias",)
#: Optional attributes the cloud fills in when left unset, which a rebuilt file cannot mark as computed
#: (openstack.json's method cannot): provider, resource type, attribute. The floating IP's address is
#: "the actual floating IP" the pool allocates (terraform-provider-openstack docs, networking_floatingip_v2).
_ALSO_COMPUTED = (("openstack", "openstack_networking_floatingip_v2", "address"),)


class SubsetError(Exception):
    """A full schema file is missing, malformed, or lacks a listed type."""


def _providers() -> dict[str, TerraformProvider]:
    try:
        return offline_providers()
    except ReproducerError as exc:
        raise SubsetError(str(exc)) from exc


def _pick(available: dict[str, Any], wanted: tuple[str, ...], kind: str, key: str) -> dict[str, Any]:
    if wanted == ALL_TYPES:
        return dict(sorted(available.items()))
    missing = sorted(set(wanted) - set(available))
    if missing:
        raise SubsetError(f"{key}: {kind} {', '.join(missing)} not in the full schema")
    return {name: available[name] for name in sorted(wanted)}


def build_subset(key: str, full: dict[str, Any], source_name: str) -> dict[str, Any]:
    """Cut one provider's full schema document down to the types its target lists.

    Args:
        key: the short provider key (``aws``, ``ovh``, ...).
        full: the parsed ``terraform providers schema -json`` document.
        source_name: where ``full`` came from, recorded in the subset.

    Returns:
        The subset document, in the same format plus an ``x_reproducer`` object (version, provenance).

    Raises:
        SubsetError: the provider is unknown, or the document does not describe it or lacks a listed type.
    """
    entry = _providers().get(key)
    if entry is None:
        raise SubsetError(f"{key}: no registered target requires this provider")
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
    _mark_computed(key, document["provider_schemas"][entry.address]["resource_schemas"])
    return document


def _mark_computed(key: str, resources: dict[str, Any]) -> None:
    for provider, type_name, attribute in _ALSO_COMPUTED:
        found = resources.get(type_name, {}).get("block", {}).get("attributes", {}).get(attribute)
        if provider == key and found is not None:
            found["computed"] = True


def write_subsets(source_dir: Path, out_dir: Path = SCHEMAS_DIR, keys: Sequence[str] = ()) -> list[Path]:
    """Regenerate the subsets of ``keys`` (all offline providers when empty) from ``source_dir``.

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
    for key in keys or sorted(_providers()):
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
    try:
        known = _providers()
    except SubsetError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    parser = argparse.ArgumentParser(prog="python -m reproducer.offline.subset", description=__doc__)
    parser.add_argument("--from", dest="source", type=Path, required=True, help="directory of full schema files")
    parser.add_argument("--out", type=Path, default=SCHEMAS_DIR, help="output directory (default: the package's)")
    parser.add_argument("keys", nargs="*", metavar="KEY", help=f"providers (default: all of {', '.join(known)})")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.keys) - set(known))
    if unknown:
        parser.error(f"unknown provider(s) {', '.join(unknown)}; known: {', '.join(known)}")
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
