"""DigitalOcean Managed Valkey: database cluster, trusted sources (firewall), Valkey config, VPC.

Facts: docs/reference/targets.md#digitalocean. DigitalOcean runs one primary with at most one standby (no shards,
no ACL users), takes trusted sources as single IPv4 addresses (100 at most) and serves TLS on 25061 with
certificates that chain to public CAs.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any

from reproducer.catalog import parameter
from reproducer.errors import InputError
from reproducer.model import AllowedCidr, ConfigItem, ServiceSpec, User
from reproducer.targets import compat
from reproducer.targets.base import CompatRow, RenderOptions, Support, TerraformProvider
from reproducer.targets.common import BaseTarget, RegionMap, has_full_rights, with_default_user
from reproducer.targets.render import one_line
from reproducer.targets.sizing import Choice, NodeSize

EXACT, APPROX, MANUAL, NONE = Support.EXACT, Support.APPROXIMATED, Support.MANUAL, Support.UNSUPPORTED
_REF = "docs/reference/targets.md#digitalocean"

#: The Terraform provider of the rendered files: versions.tf, the offline mirror and its schema subset.
PROVIDER = TerraformProvider(
    "registry.terraform.io/digitalocean/digitalocean",
    "2.99.1",
    resources=(
        "digitalocean_database_cluster",
        "digitalocean_database_firewall",
        "digitalocean_database_valkey_config",
        "digitalocean_vpc",
    ),
)
#: Plans (size slugs), smallest first; the figure is the plan's RAM per node.
NODES = (
    NodeSize("db-s-1vcpu-1gb", 1.0, f"provider docs ({_REF})"),
    NodeSize("db-s-1vcpu-2gb", 2.0, f"provider docs ({_REF})"),
    NodeSize("db-s-2vcpu-4gb", 4.0, f"slug pattern, unverified ({_REF})"),
    NodeSize("db-s-4vcpu-8gb", 8.0, f"slug pattern, unverified ({_REF})"),
    NodeSize("db-s-6vcpu-16gb", 16.0, f"slug pattern, unverified ({_REF})"),
    NodeSize("db-s-8vcpu-32gb", 32.0, f"slug pattern, unverified ({_REF})"),
    NodeSize("db-s-16vcpu-64gb", 64.0, f"slug pattern, unverified ({_REF})"),
)
#: A standby node needs a plan of at least this many GB.
STANDBY_MIN_GB = 2.0
#: Trusted sources (firewall rules) a cluster takes at most.
MAX_RULES = 100
#: The only Valkey major DigitalOcean runs (``version = "8"``).
VALKEY_MAJOR = "8"
#: Region slugs (three letters and a digit), and the nearest to each OVH region (by geography).
REGIONS = RegionMap(
    form=re.compile(r"[a-z]{3}[0-9]"),
    nearest={
        "GRA": "lon1",
        "SBG": "fra1",
        "RBX": "ams3",
        "DE": "fra1",
        "UK": "lon1",
        "WAW": "fra1",
        "BHS": "tor1",
        "SGP": "sgp1",
        "EU-WEST-PAR": "lon1",
        "EU-SOUTH-MIL": "fra1",
        "AP-SOUTH-MUM": "blr1",
    },
)
#: OVH advanced parameter → digitalocean_database_valkey_config argument, and the kind of value it takes.
CONFIG: dict[str, tuple[str, str]] = {
    "redis_acl_channels_default": ("acl_channels_default", "allchannels|resetchannels"),
    "redis_io_threads": ("io_threads", "int"),
    "redis_lfu_decay_time": ("lfu_decay_time", "int"),
    "redis_lfu_log_factor": ("lfu_log_factor", "int"),
    "redis_notify_keyspace_events": ("notify_keyspace_events", "str"),
    "redis_number_of_databases": ("number_of_databases", "int"),
    "redis_persistence": ("persistence", "off|rdb"),
    "redis_pubsub_client_output_buffer_limit": ("pubsub_client_output_buffer_limit", "int"),
    "redis_timeout": ("timeout", "int"),
}


@dataclass(frozen=True)
class Firewall:
    """The allow-list as DigitalOcean trusted sources: single IPv4 addresses, and the CIDRs that could not be."""

    addresses: tuple[str, ...]
    refused: tuple[tuple[str, str], ...]

    @property
    def note(self) -> str:
        """What became of the allow-list, for the report."""
        kept = f"{len(self.addresses)} IPv4 address rule(s), each CIDR expanded into its addresses"
        if not self.refused:
            return kept
        left = "; ".join(f"{cidr}: {reason}" for cidr, reason in self.refused)
        return (
            f"{kept}; left out (their clients lose access): {left}. Instead, reach the cluster from inside its "
            "VPC (private_host), or add droplet, k8s, tag or app trusted sources for those clients"
        )


def firewall(allow_list: tuple[AllowedCidr, ...]) -> Firewall:
    """Expand the allow-list into at most :data:`MAX_RULES` IPv4 addresses, smallest CIDRs first.

    IPv6 CIDRs, and CIDRs whose addresses no longer fit, are refused with their reason.

    Raises:
        InputError: the source allows clients but none of them can become a trusted source, or it allows none:
            a DigitalOcean cluster with no trusted source accepts connections from anywhere.
    """
    networks = [(entry.cidr, ipaddress.ip_network(entry.cidr, strict=False)) for entry in allow_list]
    chosen: dict[str, None] = {}
    refused: dict[str, str] = {}
    for cidr, network in sorted(networks, key=lambda item: item[1].num_addresses):
        if network.version == 6:
            refused[cidr] = "IPv6, which DigitalOcean trusted sources do not take"
            continue
        # never enumerate more than the limit: a /0 has four billion addresses
        new = [str(a) for a in network if str(a) not in chosen] if network.num_addresses <= MAX_RULES else []
        if network.num_addresses > MAX_RULES or len(chosen) + len(new) > MAX_RULES:
            refused[cidr] = f"{network.num_addresses} addresses, beyond the {MAX_RULES}-rule limit"
            continue
        chosen.update(dict.fromkeys(new))
    if not chosen:
        why = "; ".join(f"{one_line(c)}: {r}" for c, r in refused.items()) or "the source's allow-list is empty"
        raise InputError(
            f"no client of the source can become a DigitalOcean trusted source ({why}), and a cluster with no "
            "trusted source accepts connections from anywhere",
            hint=f"list IPv4 clients in allow_list, {MAX_RULES} addresses at most in all (a /25 or smaller CIDR)",
        )
    ordered = sorted(chosen, key=ipaddress.ip_address)
    return Firewall(tuple(ordered), tuple((c, refused[c]) for c, _ in networks if c in refused))


def _integer(key: str, value: str) -> int:
    if not re.fullmatch(r"-?\d{1,9}", value):
        raise InputError(
            f"configuration {key!r} is {one_line(value)!r}, not the integer DigitalOcean's {CONFIG[key][0]} takes",
            hint=f"fix the value of {key} in the spec's configuration",
        )
    return int(value)


def valkey_config(spec: ServiceSpec) -> dict[str, Any]:
    """The digitalocean_database_valkey_config arguments the spec's configuration sets (values checked)."""
    out: dict[str, Any] = {}
    for item in spec.configuration:
        known = parameter(item.source_name)
        entry = CONFIG.get(known.name) if known else None
        if known is None or entry is None:
            continue
        argument, kind = entry
        if kind == "int":
            out[argument] = _integer(known.name, item.value)
        elif kind == "str" or item.value in kind.split("|"):
            out[argument] = item.value
    return dict(sorted(out.items()))


def plan_size(target: BaseTarget, spec: ServiceSpec, standby: bool) -> Choice:
    """The smallest plan that holds the whole source (there are no shards), 2 GB at least with a standby."""
    choice = target.node(spec, 1)
    if standby and choice.size.memory_gb < STANDBY_MIN_GB:
        size = next(s for s in target.nodes if s.memory_gb >= STANDBY_MIN_GB)
        return Choice(size, choice.needed_gb, True)
    return choice


def maintenance_hour(value: str | None) -> str:
    """``HH:MM`` of the source's daily maintenance time (04:00 when it has none)."""
    return value[:5] if value else "04:00"


class DigitalOceanTarget(BaseTarget):
    """Renders ``digitalocean_database_cluster`` (engine valkey) and its firewall, Valkey config and VPC."""

    name = "digitalocean"
    title = "DigitalOcean Managed Valkey"
    providers = (PROVIDER,)
    nodes = NODES
    regions = REGIONS
    acl_form = "parts"
    existing_network_hint = (
        "the digitalocean render makes its own VPC: render with --network new, and to place the cluster in a VPC "
        "you have, render a private spec with --adopt digitalocean_vpc.NAME=VPC_UUID"
    )

    def context(self, spec: ServiceSpec, options: RenderOptions) -> dict[str, Any]:
        """Template context: size, node count, region, trusted sources, Valkey config, maintenance window."""
        context = self.base(spec, options)
        standby = context["replicas"] > 0
        return context | {
            "size": plan_size(self, spec, standby),
            "node_count": 2 if standby else 1,
            "region": self.region(spec, options),
            "firewall": firewall(spec.allow_list),
            "config": valkey_config(spec),
            "maintenance_hour": maintenance_hour(spec.maintenance_time),
            "users": with_default_user(context["users"]),
        }

    def rows(self, spec: ServiceSpec, context: dict[str, Any]) -> list[CompatRow]:
        """Compatibility of every attribute with DigitalOcean."""
        decide: dict[str, compat.Decision] = {
            **_topology(spec, context),
            "persistence": _persistence(context["config"]),
            "tls": (
                EXACT if spec.tls else APPROX,
                "port 25061 (TLS), valkey_config.ssl",
                "TLS on 25061 always; certificates chain to public CAs"
                + ("" if spec.tls else "; ssl = false also opens 25060 without TLS"),
            ),
            **compat.network_decisions(spec, _reach(spec), context["subnet_cidr"]),
            "source.region": (APPROX, "region", f"nearest DigitalOcean region: {context['region']}"),
            "backups.time": (
                NONE,
                "—",
                "DigitalOcean backs up daily at a time of its choosing; take your own snapshot when you need one "
                "(reproducer export)",
            ),
            "backups.regions": (NONE, "—", "no cross-region backups: export and store copies yourself"),
            "backups.retention_days": (NONE, "—", "retention is fixed by DigitalOcean: keep your own exports"),
            "maintenance_time": (
                APPROX,
                "maintenance_window",
                f"daily at OVH, weekly here: sunday {context['maintenance_hour']}",
            ),
            "deletion_protection": (
                MANUAL if spec.deletion_protection else EXACT,
                "lifecycle.prevent_destroy",
                "no protection argument: add lifecycle { prevent_destroy = true } to the cluster"
                if spec.deletion_protection
                else "false, as in the source",
            ),
            "feature.infrastructure_as_code": (EXACT, "this configuration", compat.IAC_NOTE),
            "feature.anti_ddos": (MANUAL, "—", "check that DigitalOcean's DDoS protection covers your clients"),
        }
        decide["allow_list"] = (
            EXACT if not context["firewall"].refused else MANUAL,
            "digitalocean_database_firewall",
            context["firewall"].note,
        )
        rows = compat.build_rows(spec, decide, _user_row, lambda item: _config_row(item, context["config"]))
        return compat.added_default(
            rows,
            context["users"],
            "cluster user",
            "DigitalOcean's single built-in user (full rights); its password is in output user_passwords",
        )


def _topology(spec: ServiceSpec, context: dict[str, Any]) -> dict[str, compat.Decision]:
    size, shards, replicas, nodes = context["size"], context["shards"], context["replicas"], context["node_count"]
    shape = "primary + 1 standby" if nodes == 2 else "one node, no standby"
    if replicas > 1:
        replica_note: compat.Decision = (APPROX, "node_count", f"{nodes} nodes: DigitalOcean has at most 1 standby")
    else:
        replica_note = (EXACT, "node_count", f"{nodes} node(s): {shape}")
    if nodes == 2 and size.needed_gb < STANDBY_MIN_GB <= size.size.memory_gb:
        replica_note = (replica_note[0], "node_count, size", f"{replica_note[2]}; a standby needs a 2 GB plan")
    standby = " + 1 standby" if nodes == 2 else ""
    honest = f"nearest shape: a {size.size.name} primary{standby} holding all {spec.plan.memory_gb:g} GB"
    return {
        "engine.version": (
            APPROX,
            "version",
            f'"{VALKEY_MAJOR}": DigitalOcean runs Valkey {VALKEY_MAJOR} and chooses the minor (source '
            f"{spec.engine.version})",
        ),
        "plan.flavor": (
            EXACT if size.fits else MANUAL,
            "size",
            size.note.replace("; shard more", "; DigitalOcean cannot shard: split the data over several clusters"),
        ),
        "topology.mode": (EXACT if shards == 1 else NONE, "node_count", shape if shards == 1 else honest),
        "topology.shards": (
            EXACT if shards == 1 else NONE,
            "—",
            "one shard"
            if shards == 1
            else f"DigitalOcean Valkey has no cluster mode or shards: {honest}; to spread the data, split it over "
            "several clusters in the application",
        ),
        "topology.replicas_per_shard": replica_note,
    }


def _persistence(config: dict[str, Any]) -> compat.Decision:
    value = config.get("persistence")
    if value is None:
        return APPROX, "valkey_config.persistence", "DigitalOcean's default (rdb)"
    return EXACT, "valkey_config.persistence", str(value)


def _user_row(user: User) -> compat.Decision:
    rules = one_line(user.acl_rules)
    if user.name == "default":
        full = has_full_rights(user)
        if full:
            return (
                APPROX,
                "cluster user",
                "DigitalOcean's single built-in user (full rights); DigitalOcean generates its password "
                "(output user_passwords)",
            )
        return (
            MANUAL,
            "cluster user",
            f"the single built-in user has full rights, not {rules}: enforce the narrower rights in the application",
        )
    return (
        MANUAL,
        "—",
        f"DigitalOcean has no user management for Valkey: the application connects as the single default user "
        f"(output user_passwords) and must itself enforce what {rules} allowed (key prefixes, commands, "
        "channels); or give it a cluster of its own",
    )


def _config_row(item: ConfigItem, config: dict[str, Any]) -> compat.Decision:
    known = parameter(item.source_name)
    entry = CONFIG.get(known.name) if known else None
    if entry is not None and entry[0] in config:
        return EXACT, f"valkey_config.{entry[0]}", item.value
    if known is not None and known.name == "redis_ssl":
        return EXACT, "valkey_config.ssl", item.value
    if entry is not None:
        return (
            NONE,
            f"valkey_config.{entry[0]}",
            f"DigitalOcean takes {entry[1].replace('|', ' or ')} only: its default applies; choose one of those",
        )
    return NONE, "—", f"{item.source_name} has no DigitalOcean Valkey setting: DigitalOcean's default applies"


def _reach(spec: ServiceSpec) -> compat.Reach:
    """The cluster always has a public host (filtered by trusted sources); a private source also gets a VPC."""
    return compat.Reach(
        public=True,
        filters=True,
        filter_argument="digitalocean_database_firewall",
        inside="the cluster is in a DigitalOcean VPC",
        network_argument="digitalocean_vpc",
        network=(
            APPROX,
            "a VPC in the region (private_host); the cluster also keeps a public host, filtered by the trusted sources",
        ),
        subnet_argument="digitalocean_vpc.ip_range",
        subnet=(APPROX, "the subnet CIDR becomes the VPC's ip_range; no pool or gateway of the source"),
    )
