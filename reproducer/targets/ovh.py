"""OVHcloud Managed Valkey in another project or region: the inbound path for any spec."""

from __future__ import annotations

from typing import Any

from reproducer.model import ConfigItem, ServiceSpec, User
from reproducer.targets import compat
from reproducer.targets.base import ALL_TYPES, CompatRow, RenderOptions, Support, TerraformProvider
from reproducer.targets.common import BaseTarget, ovh_region
from reproducer.targets.sizing import NodeSize

EXACT, APPROX, MANUAL, NONE = Support.EXACT, Support.APPROXIMATED, Support.MANUAL, Support.UNSUPPORTED

#: The Terraform provider of the rendered files: versions.tf, the offline mirror and its schema subset.
PROVIDER = TerraformProvider(
    "registry.terraform.io/ovh/ovh", "2.19.0", constraint="~> 2.17", resources=ALL_TYPES, data_sources=ALL_TYPES
)
#: Node sizes, smallest first, each with the source of its figure.
NODES = (
    NodeSize("db1-4", 4, "OVH flavor db1-X = X GB (docs/reference/ovh-api.md#flavors)"),
    NodeSize("db1-7", 7, "OVH flavor table (docs/reference/ovh-api.md#flavors)"),
    NodeSize("db1-15", 15, "OVH flavor table"),
    NodeSize("db1-30", 30, "OVH flavor table"),
    NodeSize("db1-60", 60, "OVH flavor table"),
    NodeSize("db1-120", 120, "OVH flavor table"),
)


class OvhTarget(BaseTarget):
    """Renders ``ovh_cloud_project_database`` (engine valkey), its users, and the vRack network."""

    name = "ovh"
    title = "OVHcloud Managed Valkey"
    providers = (PROVIDER,)
    nodes = NODES
    acl_form = "parts"
    user_resources = True

    def context(self, spec: ServiceSpec, options: RenderOptions) -> dict[str, Any]:
        """Template context: plan and flavor, nodes, network, raw advanced configuration."""
        context = self.base(spec, options)
        private = spec.network.private
        region = ovh_region(spec, options.region)
        return context | {
            "plan": "business" if context["replicas"] > 0 else "essential",
            "node_count": 2 if context["replicas"] > 0 else 1,
            "flavor": self.node(spec, 1),
            "region": region,
            "private": private,
            "network_region": (private.region if private and private.region else region),
            "advanced": {c.source_name: c.value for c in spec.configuration},
            "extra_users": [u for u in context["users"] if u["name"] != "default"],
        }

    def rows(self, spec: ServiceSpec, context: dict[str, Any]) -> list[CompatRow]:
        """Compatibility of every attribute with OVH (exact, except what OVH cannot do: shards)."""
        shards, replicas, flavor = context["shards"], context["replicas"], context["flavor"]
        same_region = context["region"] == spec.source.region
        decide: dict[str, compat.Decision] = {
            "engine.version": (EXACT, "version", spec.engine.version),
            "plan.flavor": (EXACT if flavor.fits else MANUAL, "flavor", flavor.note),
            "topology.mode": (EXACT if shards == 1 else NONE, "plan", f"{context['plan']} (Sentinel)"),
            "topology.shards": (
                EXACT if shards == 1 else NONE,
                "—",
                "one shard" if shards == 1 else "OVH offers no cluster mode: one node holds all data",
            ),
            "topology.replicas_per_shard": (
                EXACT if replicas <= 1 else APPROX,
                "plan / nodes",
                f"{context['node_count']} node(s)",
            ),
            "persistence": (EXACT, "advanced_configuration.redis_persistence", "as in the source"),
            "tls": (EXACT, "endpoints[].ssl", "TLS endpoints"),
            "allow_list": (EXACT, "ip_restrictions", f"{len(spec.allow_list)} CIDR(s)"),
            "network.private": (EXACT, "ovh_cloud_project_network_private", "same VLAN id on the vRack"),
            "network.private.subnet": (EXACT, "ovh_cloud_project_network_private_subnet_v2", context["subnet_cidr"]),
            "source.region": (EXACT if same_region else APPROX, "nodes.region", context["region"]),
            "backups.time": (EXACT, "backup_time", spec.backups.time or "default"),
            "backups.regions": (EXACT, "backup_regions", ", ".join(spec.backups.regions) or "default"),
            "backups.retention_days": (EXACT, "plan", "fixed by the plan (1 or 3 days)"),
            "maintenance_time": (EXACT, "maintenance_time", spec.maintenance_time or "default"),
            "deletion_protection": (EXACT, "deletion_protection", str(spec.deletion_protection).lower()),
            "feature.infrastructure_as_code": (EXACT, "this configuration", "ovh/ovh provider resources"),
            "feature.anti_ddos": (EXACT, "—", "OVHcloud anti-DDoS is on by default"),
        }
        return compat.build_rows(spec, decide, self._user_row, self._config_row)

    @staticmethod
    def _user_row(user: User) -> compat.Decision:
        if user.name == "default":
            return EXACT, "ovh_cloud_project_database_valkey_user (default)", "maps onto the existing default user"
        return EXACT, "ovh_cloud_project_database_valkey_user", "categories, commands, keys, channels as in the source"

    @staticmethod
    def _config_row(item: ConfigItem) -> compat.Decision:
        return EXACT, f"advanced_configuration[{item.source_name}]", item.value
