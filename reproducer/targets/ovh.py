"""OVHcloud Managed Valkey in another project or region: the inbound path for any spec."""

from __future__ import annotations

import re
from typing import Any

from reproducer.model import ConfigItem, ServiceSpec, User
from reproducer.targets import compat
from reproducer.targets.base import ALL_TYPES, CompatRow, RenderOptions, Support, TerraformProvider
from reproducer.targets.common import BaseTarget, has_full_rights, ovh_region, with_default_user
from reproducer.targets.sizing import NodeSize

EXACT, APPROX, MANUAL, NONE = Support.EXACT, Support.APPROXIMATED, Support.MANUAL, Support.UNSUPPORTED

#: The Terraform provider of the rendered files: versions.tf, the offline mirror and its schema subset.
PROVIDER = TerraformProvider(
    "registry.terraform.io/ovh/ovh", "2.19.0", constraint="~> 2.17", resources=ALL_TYPES, data_sources=ALL_TYPES
)
#: ``--network existing``: the user's private network and subnet, by id (docs/reference/adoption.md#ovh).
EXISTING = (
    "var.private_network_id (data.ovh_cloud_project_vrack)",
    "var.subnet_id",
    "the nodes go in it; the project's vRack is read, no network, subnet or vRack attachment is created",
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
#: Public Cloud (OpenStack) region of a private network, by database region: the two take different names
#: (docs/reference/targets.md#ovh-network-regions). A region not listed gets no default.
NETWORK_REGIONS = {
    "GRA": "GRA9",
    "BHS": "BHS5",
    "SBG": "SBG5",
    "DE": "DE1",
    "UK": "UK1",
    "WAW": "WAW1",
    "SGP": "SGP1",
    "EU-WEST-PAR": "EU-WEST-PAR",
    "EU-SOUTH-MIL": "EU-SOUTH-MIL",
    "AP-SOUTH-MUM": "AP-SOUTH-MUM",
}
#: A Public Cloud region id: letters and a number (GRA9), or a 3-AZ region's name (EU-WEST-PAR).
_OPENSTACK_REGION = re.compile(r"[A-Z]+\d+|[A-Z]+(?:-[A-Z]+){2}")
#: The provider ignores ACL arguments of the user named default (it only resets its password).
DEFAULT_SKIPPED = "the provider skips ACL updates of the default user, which keeps OVH's +@all ~* &*"
#: Where an empty channel list turning into all channels is documented.
EMPTY_CHANNELS = "OVH's API stores ['*'] when channels are left out, docs/reference/targets.md#empty-channel-lists"


class OvhTarget(BaseTarget):
    """Renders ``ovh_cloud_project_database`` (engine valkey), its users, and the vRack network."""

    name = "ovh"
    title = "OVHcloud Managed Valkey"
    providers = (PROVIDER,)
    nodes = NODES
    acl_form = "parts"
    user_resources = True
    existing_network = True

    def context(self, spec: ServiceSpec, options: RenderOptions) -> dict[str, Any]:
        """Template context: plan and flavor, nodes, network, raw advanced configuration."""
        context = self.base(spec, options)
        private = spec.network.private
        region = ovh_region(spec, options.region)
        subnet = private.subnet if private else None
        pool = (subnet.allocation_start, subnet.allocation_end) if subnet else (None, None)
        users = [user | {"acl": user_acl(user["user"])} for user in with_default_user(context["users"])]
        return context | {
            "plan": "business" if context["replicas"] > 0 else "essential",
            "node_count": 2 if context["replicas"] > 0 else 1,
            "flavor": self.node(spec, 1),
            "region": region,
            "private": private,
            "network_region": network_region(spec, region),
            "pool": pool if None not in pool else None,
            "gateway": subnet.gateway if subnet else None,
            "dhcp": subnet.dhcp if subnet and subnet.dhcp is not None else True,
            "advanced": {c.source_name: c.value for c in spec.configuration},
            "users": users,
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
            **compat.network_decisions(spec, _reach(spec, context), context["subnet_cidr"]),
            "source.region": (EXACT if same_region else APPROX, "nodes.region", context["region"]),
            "backups.time": (EXACT, "backup_time", spec.backups.time or "default"),
            "backups.regions": (EXACT, "backup_regions", ", ".join(spec.backups.regions) or "default"),
            "backups.retention_days": (EXACT, "plan", "fixed by the plan (1 or 3 days)"),
            "maintenance_time": (EXACT, "maintenance_time", spec.maintenance_time or "default"),
            "deletion_protection": (EXACT, "deletion_protection", str(spec.deletion_protection).lower()),
            "feature.infrastructure_as_code": (EXACT, "this configuration", "ovh/ovh provider resources"),
            "feature.anti_ddos": (EXACT, "—", "OVHcloud anti-DDoS is on by default"),
        }
        if context["existing_network"]:
            decide |= compat.existing_network_decisions(spec, *EXISTING)
        rows = compat.build_rows(spec, decide, lambda user: user_acl(user)["decision"], self._config_row)
        return compat.added_default(
            rows,
            context["users"],
            "ovh_cloud_project_database_valkey_user",
            "the target's built-in default user (full rights); its password is in output user_passwords",
        )

    @staticmethod
    def _config_row(item: ConfigItem) -> compat.Decision:
        return EXACT, f"advanced_configuration[{item.source_name}]", item.value


def network_region(spec: ServiceSpec, region: str) -> str | None:
    """The Public Cloud region of the private network: the source's when it is one and the region is kept."""
    private = spec.network.private
    if private and private.region and region == spec.source.region and _OPENSTACK_REGION.fullmatch(private.region):
        return private.region
    return NETWORK_REGIONS.get(region)


def user_acl(user: User) -> dict[str, Any]:
    """What to render of ``user`` (``categories``, whether its ACL is rendered) and its compatibility row."""
    resource = "ovh_cloud_project_database_valkey_user"
    if user.name == "default":
        full = has_full_rights(user)
        note = f"{DEFAULT_SKIPPED}; OVH generates its password (output user_passwords)"
        if not full:
            note += ": narrow its rights through OVH's API after the apply"
        return {
            "categories": user.categories,
            "rendered": False,
            "decision": (EXACT if full else MANUAL, resource, note),
        }
    categories, decision = compat.no_channels(user, EMPTY_CHANNELS)
    exact = (EXACT, resource, "categories, commands, keys, channels as in the source")
    return {"categories": categories, "rendered": True, "decision": decision or exact}


def _reach(spec: ServiceSpec, context: dict[str, Any]) -> compat.Reach:
    """OVH keeps the source's kind of network: public with IP restrictions, or the vRack."""
    exact_subnet = context["pool"] is not None and context["gateway"] is not None
    subnet_note = context["subnet_cidr"] + (
        ", allocation pool and gateway as in the source"
        if exact_subnet
        else "; the source's pool or gateway is unknown"
    )
    return compat.Reach(
        public=spec.network.private is None,
        filters=True,
        filter_argument="ip_restrictions",
        inside="the service is on the vRack",
        network_argument="ovh_cloud_project_network_private",
        network=(EXACT, "same VLAN id on the vRack"),
        subnet_argument="ovh_cloud_project_network_private_subnet_v2",
        subnet=(EXACT if exact_subnet else APPROX, subnet_note),
    )
