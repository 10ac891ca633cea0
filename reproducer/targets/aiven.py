"""Aiven for Valkey: service with valkey_user_config, IP filters, project VPC, users."""

from __future__ import annotations

import re
from typing import Any

from reproducer.errors import InputError
from reproducer.model import ConfigItem, ServiceSpec, User
from reproducer.targets import compat
from reproducer.targets.base import ALL_TYPES, CompatRow, RenderOptions, Support, TerraformProvider
from reproducer.targets.common import BaseTarget, RegionMap, time_hours, with_default_user
from reproducer.targets.render import one_line
from reproducer.targets.sizing import NodeSize

#: Valkey directive → valkey_user_config attribute (and whether the value is a number).
USER_CONFIG: dict[str, tuple[str, bool]] = {
    "notify-keyspace-events": ("valkey_notify_keyspace_events", False),
    "timeout": ("valkey_timeout", True),
    "lfu-log-factor": ("valkey_lfu_log_factor", True),
    "lfu-decay-time": ("valkey_lfu_decay_time", True),
    "io-threads": ("valkey_io_threads", True),
    "databases": ("valkey_number_of_databases", True),
    "maxmemory-policy": ("valkey_maxmemory_policy", False),
    "acl-pubsub-default": ("valkey_acl_channels_default", False),
}
TIERS = {0: "startup", 1: "business"}
#: Nodes of each plan tier, and how the report names them (docs/reference/targets.md#aiven-plans).
TIER_NODES = {
    "startup": (1, "one node, no standby"),
    "business": (2, "primary + standby"),
    "premium": (3, "primary + 2 standbys"),
}

EXACT, APPROX, MANUAL, NONE = Support.EXACT, Support.APPROXIMATED, Support.MANUAL, Support.UNSUPPORTED

#: The Terraform provider of the rendered files: versions.tf, the offline mirror and its schema subset.
PROVIDER = TerraformProvider("registry.terraform.io/aiven/aiven", "4.61.0", resources=ALL_TYPES, data_sources=ALL_TYPES)
#: Node sizes, smallest first, each with the source of its figure.
NODES = tuple(
    NodeSize(
        f"{{tier}}-{gb}", float(gb), "Aiven plan naming tier-x, x ≈ GB per node (docs/reference/targets.md#node-sizes)"
    )
    for gb in (4, 8, 16, 32, 64)
)
#: Region names, and the nearest to each OVH region.
REGIONS = RegionMap(
    form=re.compile(r"(?:aws|azure|do|google|upcloud|exoscale)-[a-z0-9]+(?:-[a-z0-9]+)*"),
    nearest={
        "GRA": "google-europe-west9",
        "SBG": "google-europe-west3",
        "RBX": "google-europe-west9",
        "DE": "google-europe-west3",
        "UK": "google-europe-west2",
        "WAW": "google-europe-central2",
        "BHS": "google-northamerica-northeast1",
        "SGP": "google-asia-southeast1",
        "EU-WEST-PAR": "google-europe-west9",
        "EU-SOUTH-MIL": "google-europe-west8",
        "AP-SOUTH-MUM": "google-asia-south1",
    },
)


class AivenTarget(BaseTarget):
    """Renders ``aiven_valkey`` and ``aiven_valkey_user``."""

    name = "aiven"
    title = "Aiven for Valkey"
    providers = (PROVIDER,)
    nodes = NODES
    regions = REGIONS
    acl_form = "parts"
    user_resources = True
    #: Aiven runs the service in Aiven's cloud account: no network of the user's can hold it
    #: (docs/reference/adoption.md#aiven).
    existing_network_hint = (
        "Aiven runs the service in its own cloud account, never in your VPC: render with --network new and peer "
        "the Aiven project VPC with yours; to reuse an Aiven project VPC that already exists, render a private "
        "spec and add --adopt aiven_project_vpc.NAME=PROJECT/VPC_ID"
    )

    def context(self, spec: ServiceSpec, options: RenderOptions) -> dict[str, Any]:
        """Template context: plan, cloud, user config, backup hour."""
        context = self.base(spec, options)
        size = self.node(spec, 1)
        tier = TIERS.get(context["replicas"], "premium")
        user_config = {
            USER_CONFIG[k][0]: (_integer(k, v) if USER_CONFIG[k][1] else v)
            for k, v in sorted(context["settings"].items())
            if k in USER_CONFIG
        }
        persistence = next((c.value for c in spec.configuration if c.source_name.endswith("_persistence")), "rdb")
        return context | {
            "size": size,
            "plan": size.size.name.replace("{tier}", tier),
            "cloud": self.region(spec, options),
            "user_config": user_config,
            "persistence": persistence,
            "backup_hour": time_hours(spec.backups.time, 2),
            "maintenance_time": spec.maintenance_time or "04:00:00",
            "tier": tier,
            "users": with_default_user(context["users"]),
            "extra_users": [u for u in context["users"] if u["name"] != "default"],
        }

    def rows(self, spec: ServiceSpec, context: dict[str, Any]) -> list[CompatRow]:
        """Compatibility of every attribute with Aiven."""
        shards, size = context["shards"], context["size"]
        nodes, shape = TIER_NODES[context["tier"]]
        decide: dict[str, compat.Decision] = {
            "engine.version": (APPROX, "valkey_version", "Aiven offers 8.1 and later; 8.1 is used"),
            "plan.flavor": (EXACT if size.fits else MANUAL, "plan", f"{context['plan']}: {size.note}"),
            "topology.mode": (EXACT if shards == 1 else NONE, "plan", f"{context['tier']} tier: {shape}"),
            "topology.shards": (
                EXACT if shards == 1 else NONE,
                "—",
                "one shard" if shards == 1 else "sharding only through Aiven's cluster plans",
            ),
            "topology.replicas_per_shard": (
                EXACT if context["replicas"] == nodes - 1 else APPROX,
                "plan tier",
                f"{context['tier']} tier: {nodes - 1} standby node(s)",
            ),
            "persistence": (EXACT, "valkey_persistence", context["persistence"]),
            "tls": (EXACT, "valkey_ssl", "true"),
            **compat.network_decisions(spec, _reach(spec), context["subnet_cidr"]),
            "source.region": (APPROX, "cloud_name", context["cloud"]),
            "backups.time": (EXACT, "backup_hour", f"{context['backup_hour']:02d}:00"),
            "backups.regions": (APPROX, "additional_backup_regions", "name the Aiven clouds yourself"),
            "backups.retention_days": (MANUAL, "plan", "retention is defined by the Aiven plan"),
            "maintenance_time": (APPROX, "maintenance_window_dow / _time", "daily at OVH, weekly (Sunday) here"),
            "deletion_protection": (EXACT, "termination_protection", str(spec.deletion_protection).lower()),
            "feature.infrastructure_as_code": (EXACT, "this configuration", compat.IAC_NOTE),
            "feature.anti_ddos": (MANUAL, "—", "ask Aiven or your cloud for DDoS protection"),
        }
        rows = compat.build_rows(spec, decide, self._user_row, self._config_row)
        return compat.added_default(
            rows,
            context["users"],
            "service_username",
            "the target's built-in default user (full rights); its password is in output user_passwords",
        )

    @staticmethod
    def _user_row(user: User) -> compat.Decision:
        if user.name == "default":
            return (
                APPROX,
                "service_username",
                "Aiven's built-in default user; Aiven generates its password (output user_passwords)",
            )
        # The provider sends the channel list even when empty (docs/reference/targets.md#empty-channel-lists).
        return EXACT, "aiven_valkey_user", "valkey_acl_* as in the source; password_wo from var.user_passwords"

    @staticmethod
    def _config_row(item: ConfigItem) -> compat.Decision:
        if item.valkey_name in USER_CONFIG:
            return EXACT, USER_CONFIG[item.valkey_name][0], item.value
        if item.valkey_name == "save":
            return EXACT, "valkey_persistence", item.value
        if item.source_name.endswith("_ssl"):
            return EXACT, "valkey_ssl", item.value
        if item.valkey_name == "client-output-buffer-limit":
            return EXACT, "valkey_pubsub_client_output_buffer_limit", item.value
        return NONE, "—", f"{item.source_name} has no Aiven setting"


def _integer(key: str, value: str) -> int:
    """``value`` as the integer Aiven's setting for ``key`` takes."""
    if not re.fullmatch(r"-?\d{1,9}", value):
        raise InputError(
            f"configuration {key!r} is {one_line(value)!r}, not the integer Aiven's {USER_CONFIG[key][0]} takes",
            hint=f"fix the value of {key} in the spec's configuration",
        )
    return int(value)


def _reach(spec: ServiceSpec) -> compat.Reach:
    """A public source stays public with IP filters; a private one gets a project VPC in Aiven's account."""
    return compat.Reach(
        public=spec.network.private is None,
        filters=True,
        filter_argument="ip_filter_object",
        inside="the service is in an Aiven project VPC",
        network_argument="aiven_project_vpc",
        network=(APPROX, "a VPC in Aiven's account; peer it with yours"),
        subnet_argument="aiven_project_vpc.network_cidr",
        subnet=(APPROX, "the subnet CIDR becomes the VPC's; no pool or gateway of the source"),
    )
