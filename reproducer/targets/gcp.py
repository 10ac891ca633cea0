"""GCP Memorystore for Valkey: instance (cluster mode when sharded), ACL policy, PSC network, firewall."""

from __future__ import annotations

import re
from typing import Any

from reproducer.model import ConfigItem, ServiceSpec, User
from reproducer.targets import compat
from reproducer.targets.base import CompatRow, RenderOptions, Support, TerraformProvider
from reproducer.targets.common import BaseTarget, RegionMap, Shape, time_hours, with_default_user
from reproducer.targets.sizing import NodeSize

#: Valkey directives Memorystore's engine_configs accepts (docs/reference/targets.md#memorystore-engine-configs).
ENGINE_CONFIGS = frozenset({"maxmemory-policy", "notify-keyspace-events", "lfu-log-factor", "lfu-decay-time"})
EXACT, APPROX, MANUAL, NONE = Support.EXACT, Support.APPROXIMATED, Support.MANUAL, Support.UNSUPPORTED

#: The Terraform provider of the rendered files: versions.tf, the offline mirror and its schema subset.
PROVIDER = TerraformProvider(
    "registry.terraform.io/hashicorp/google",
    "8.7.0",
    resources=(
        "google_memorystore_acl_policy",
        "google_memorystore_instance",
        "google_network_connectivity_service_connection_policy",
        "google_compute_network",
        "google_compute_subnetwork",
        "google_project_service",
    ),
    data_sources=("google_compute_network", "google_compute_subnetwork"),
)
#: ``--network existing``: the user's VPC network and subnetwork, read by data sources
#: (docs/reference/adoption.md#gcp).
EXISTING = (
    "var.network_name → data.google_compute_network",
    "var.subnetwork_name → data.google_compute_subnetwork",
    "the Private Service Connect endpoints and their service connection policy go in it; no network is created",
)
#: APIs a fresh project lacks, by the label of their google_project_service
#: (docs/reference/targets.md#gcp-prerequisites).
SERVICES = {
    "compute": "compute.googleapis.com",
    "memorystore": "memorystore.googleapis.com",
    "networkconnectivity": "networkconnectivity.googleapis.com",
    "serviceconsumermanagement": "serviceconsumermanagement.googleapis.com",
}
#: Memorystore is reached through Private Service Connect only (docs/reference/targets.md#reachability).
REACH = compat.Reach(
    public=False,
    filters=False,
    filter_argument="egress google_compute_firewall (not rendered)",
    inside="Memorystore is reachable only through Private Service Connect endpoints in the VPC",
    network_argument="google_compute_network",
    network=(APPROX, "reached through Private Service Connect endpoints in this VPC"),
    subnet_argument="google_compute_subnetwork",
    subnet=(APPROX, "same CIDR; no allocation pool or gateway of the source (Google reserves its own addresses)"),
    filter_note="Memorystore has no allow-list, and reached through Private Service Connect its endpoints are "
    "forwarding rules that VPC ingress firewall rules do not filter: control which clients connect with egress "
    "firewall rules toward the endpoint addresses on the client side (not rendered: the clients are yours)",
)
#: Node sizes, smallest first, each with the source of its figure.
NODES = (
    NodeSize(
        "SHARED_CORE_NANO",
        1.12,
        "Google instance-node specification, writable GB (docs/reference/targets.md#node-sizes)",
    ),
    NodeSize("CUSTOM_MICRO", 2.0, "Google instance-node specification, writable GB"),
    NodeSize("CUSTOM_MINI", 3.0, "Google instance-node specification, writable GB"),
    NodeSize("STANDARD_SMALL", 5.2, "Google instance-node specification, writable GB"),
    NodeSize("HIGHMEM_MEDIUM", 10.4, "Google instance-node specification, writable GB"),
    NodeSize("STANDARD_LARGE", 20.8, "Google instance-node specification, writable GB"),
    NodeSize("HIGHMEM_XLARGE", 46.4, "Google instance-node specification, writable GB"),
    NodeSize("HIGHMEM_2XLARGE", 88.0, "Google instance-node specification, writable GB"),
)
#: Region names, and the nearest to each OVH region.
REGIONS = RegionMap(
    form=re.compile(r"[a-z]+-[a-z]+\d+"),
    nearest={
        "GRA": "europe-west9",
        "SBG": "europe-west3",
        "RBX": "europe-west9",
        "DE": "europe-west3",
        "UK": "europe-west2",
        "WAW": "europe-central2",
        "BHS": "northamerica-northeast1",
        "SGP": "asia-southeast1",
        "EU-WEST-PAR": "europe-west9",
        "EU-SOUTH-MIL": "europe-west8",
        "AP-SOUTH-MUM": "asia-south1",
    },
)


class GcpTarget(BaseTarget):
    """Renders ``google_memorystore_instance`` and what it needs."""

    name = "gcp"
    title = "Google Cloud Memorystore for Valkey"
    providers = (PROVIDER,)
    nodes = NODES
    regions = REGIONS
    existing_network = True
    shape = Shape(250, 5, 250 * 6, "Memorystore for Valkey: 1-250 shards, 0-5 replicas per shard (Google's limits)")

    def context(self, spec: ServiceSpec, options: RenderOptions) -> dict[str, Any]:
        """Template context: node type, engine version, configs, windows, region."""
        context = self.base(spec, options)
        return context | {
            "node": self.node(spec, context["shards"]),
            "region": self.region(spec, options),
            "engine_version": "VALKEY_" + spec.engine.version.replace(".", "_"),
            "engine_configs": {k: v for k, v in sorted(context["settings"].items()) if k in ENGINE_CONFIGS},
            "backup_hour": time_hours(spec.backups.time, 2),
            "maintenance_hour": time_hours(spec.maintenance_time, 4),
            "retention_seconds": (spec.backups.retention_days or 1) * 86400,
            "persistence": context["settings"].get("save", "x") != "",
            "zone_mode": "MULTI_ZONE" if context["replicas"] > 0 else "SINGLE_ZONE",
            "connection_type": "CONNECTION_TYPE_DISCOVERY" if context["shards"] > 1 else "CONNECTION_TYPE_PRIMARY",
            "transit_encryption": "SERVER_AUTHENTICATION" if spec.tls else "TRANSIT_ENCRYPTION_DISABLED",
            "services": SERVICES,
            "users": with_default_user(context["users"]),
        }

    def rows(self, spec: ServiceSpec, context: dict[str, Any]) -> list[CompatRow]:
        """Compatibility of every attribute with Memorystore."""
        node, shards, replicas = context["node"], context["shards"], context["replicas"]
        decide: dict[str, compat.Decision] = {
            "engine.version": (EXACT, "engine_version", context["engine_version"]),
            "plan.flavor": (EXACT if node.fits else MANUAL, "node_type", node.note),
            "topology.mode": (EXACT, "mode", "CLUSTER" if shards > 1 else "CLUSTER_DISABLED"),
            "topology.shards": (EXACT if shards == spec.topology.shards else APPROX, "shard_count", f"{shards}"),
            "topology.replicas_per_shard": (
                EXACT,
                "replica_count",
                f"{replicas}, zone_distribution_config {context['zone_mode']}",
            ),
            "persistence": (EXACT, "persistence_config", "RDB snapshots" if context["persistence"] else "off"),
            "tls": (EXACT, "transit_encryption_mode", context["transit_encryption"]),
            **compat.network_decisions(spec, REACH, context["subnet_cidr"]),
            "source.region": (APPROX, "var.region", f"nearest GCP region: {context['region']}"),
            "backups.time": (EXACT, "automated_backup_config.start_time.hours", f"{context['backup_hour']:02d}:00"),
            "backups.regions": (MANUAL, "backup_collection", "cross-region copies are not automatic"),
            "backups.retention_days": (EXACT, "automated_backup_config.retention", f"{context['retention_seconds']}s"),
            "maintenance_time": (APPROX, "maintenance_policy", "daily at OVH, weekly (Sunday) here"),
            "deletion_protection": (EXACT, "deletion_protection_enabled", str(spec.deletion_protection).lower()),
            "feature.infrastructure_as_code": (EXACT, "this configuration", compat.IAC_NOTE),
            "feature.anti_ddos": (
                MANUAL,
                "Cloud Armor",
                "private endpoints only; Cloud Armor protects public load balancers",
            ),
        }
        if context["existing_network"]:
            decide |= compat.existing_network_decisions(spec, *EXISTING)
        rows = compat.build_rows(spec, decide, self._user_row, self._config_row)
        return compat.added_default(
            rows,
            context["users"],
            "google_memorystore_acl_policy.rules",
            "full rights, password from var.user_passwords",
        )

    @staticmethod
    def _user_row(user: User) -> compat.Decision:
        return EXACT, "google_memorystore_acl_policy.rules", f"{user.acl_rules} (password from var.user_passwords)"

    @staticmethod
    def _config_row(item: ConfigItem) -> compat.Decision:
        if item.valkey_name in ENGINE_CONFIGS:
            return EXACT, f"engine_configs[{item.valkey_name}]", item.value
        if item.valkey_name == "save":
            return EXACT, "persistence_config", "RDB persistence" if item.value != "off" else "persistence off"
        return NONE, "—", f"{item.valkey_name or item.source_name} is not in Memorystore's modifiable configs"
