"""AWS ElastiCache for Valkey: replication group (cluster mode when sharded), users, network, parameters."""

from __future__ import annotations

import re
from typing import Any

from reproducer.model import ConfigItem, ServiceSpec, User
from reproducer.targets import compat
from reproducer.targets.base import CompatRow, RenderOptions, Support, TerraformProvider
from reproducer.targets.common import BaseTarget, RegionMap, check_unique, time_hours, with_default_user
from reproducer.targets.render import hcl_ident, slug
from reproducer.targets.sizing import NodeSize

#: Valkey directives an ElastiCache parameter group accepts (the rest is managed by AWS).
PARAMETERS = frozenset(
    {
        "notify-keyspace-events",
        "timeout",
        "lfu-log-factor",
        "lfu-decay-time",
        "maxmemory-policy",
        "acl-pubsub-default",
        "databases",
    }
)
EXACT, APPROX, MANUAL, NONE = Support.EXACT, Support.APPROXIMATED, Support.MANUAL, Support.UNSUPPORTED

#: The Terraform provider of the rendered files: versions.tf, the offline mirror and its schema subset.
PROVIDER = TerraformProvider(
    "registry.terraform.io/hashicorp/aws",
    "6.69.1",
    constraint="~> 6.0",
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
    data_sources=("aws_availability_zones", "aws_subnet", "aws_vpc"),
)
#: ``maintenance_window`` days, in the order of a week (the window is weekly, OVH's is daily).
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
#: Where the allow-list and the private network go: ElastiCache runs only inside a VPC
#: (docs/reference/targets.md#reachability).
REACH = compat.Reach(
    public=False,
    filters=True,
    filter_argument="aws_vpc_security_group_ingress_rule",
    inside="ElastiCache is reachable only inside its VPC, which has no internet gateway",
    network_argument="aws_vpc",
    network=(APPROX, "the vRack network becomes a VPC; peer or VPN it to your apps"),
    subnet_argument="aws_subnet",
    subnet=(APPROX, "the subnet CIDR is split across up to 3 of the region's availability zones"),
)
#: ``--network existing``: the user's VPC and subnets, read by data sources (docs/reference/adoption.md#aws).
EXISTING = (
    "var.vpc_id → data.aws_vpc",
    "var.subnet_ids → data.aws_subnet",
    "the cache nodes, their subnet group and security group go in it; nothing of the network is created",
)
#: Node sizes, smallest first, each with the source of its figure.
NODES = (
    NodeSize("cache.t4g.small", 1.37, "not in the research notes, unverified (docs/reference/targets.md#node-sizes)"),
    NodeSize("cache.t4g.medium", 3.09, "third-party table (docs/reference/targets.md#node-sizes)"),
    NodeSize("cache.m7g.large", 6.38, "third-party table (docs/reference/targets.md#node-sizes)"),
    NodeSize("cache.r7g.large", 13.07, "commonly published, unverified (docs/reference/targets.md#node-sizes)"),
    NodeSize("cache.r7g.xlarge", 26.32, "commonly published, unverified (docs/reference/targets.md#node-sizes)"),
    NodeSize("cache.r7g.2xlarge", 52.82, "commonly published, unverified (docs/reference/targets.md#node-sizes)"),
    NodeSize("cache.r7g.4xlarge", 105.81, "commonly published, unverified (docs/reference/targets.md#node-sizes)"),
    NodeSize("cache.r7g.8xlarge", 209.55, "commonly published, unverified (docs/reference/targets.md#node-sizes)"),
)
#: Region names, and the nearest to each OVH region.
REGIONS = RegionMap(
    form=re.compile(r"[a-z]{2}(?:-gov|-iso[a-z]?)?-[a-z]+-\d+"),
    nearest={
        "GRA": "eu-west-3",
        "SBG": "eu-central-1",
        "RBX": "eu-west-3",
        "DE": "eu-central-1",
        "UK": "eu-west-2",
        "WAW": "eu-central-1",
        "BHS": "ca-central-1",
        "SGP": "ap-southeast-1",
        "EU-WEST-PAR": "eu-west-3",
        "EU-SOUTH-MIL": "eu-south-1",
        "AP-SOUTH-MUM": "ap-south-1",
    },
)


class AwsTarget(BaseTarget):
    """Renders ``aws_elasticache_replication_group`` and what it needs."""

    name = "aws"
    title = "AWS ElastiCache for Valkey"
    providers = (PROVIDER,)
    nodes = NODES
    regions = REGIONS
    user_resources = True
    existing_network = True

    def context(self, spec: ServiceSpec, options: RenderOptions) -> dict[str, Any]:
        """Template context: node type, windows, parameters, region."""
        context = self.base(spec, options)
        user_ids = [(slug(f"{context['name']}-{u.name}"), u.name) for u in spec.users]
        check_unique("users", user_ids, self.title)
        labels = [(hcl_ident(f"{context['ident']}_{entry['cidr']}"), entry["cidr"]) for entry in context["allow_list"]]
        check_unique("allow-list entries", labels, self.title)
        node = self.node(spec, context["shards"])
        backup_hour = time_hours(spec.backups.time, 2)
        region = self.region(spec, options)
        parameters = {k: v for k, v in context["settings"].items() if k in PARAMETERS}
        shards, replicas = context["shards"], context["replicas"]
        if shards > 1:
            parameters["cluster-enabled"] = "yes"
        return context | {
            "node": node,
            "region": region,
            "family": f"valkey{spec.engine.version.split('.')[0]}",
            "snapshot_window": f"{backup_hour:02d}:00-{(backup_hour + 1) % 24:02d}:00",
            "maintenance_window": maintenance_window(time_hours(spec.maintenance_time, 4), backup_hour),
            "parameters": dict(sorted(parameters.items())),
            "failover": shards > 1 or replicas > 0,
            "multi_az": replicas > 0,
            "users": with_default_user(context["users"]),
        }

    def rows(self, spec: ServiceSpec, context: dict[str, Any]) -> list[CompatRow]:
        """Compatibility of every attribute with ElastiCache."""
        node, shards, replicas = context["node"], context["shards"], context["replicas"]
        resharded = shards != spec.topology.shards
        failover = "automatic failover" if context["failover"] else "no automatic failover"
        placement = ", Multi-AZ" if context["multi_az"] else ""
        decide: dict[str, compat.Decision] = {
            "engine.version": (EXACT, "engine_version", f"valkey {spec.engine.version}"),
            "plan.flavor": (EXACT if node.fits else MANUAL, "node_type", node.note),
            "topology.mode": (EXACT, "cluster_mode", "enabled" if shards > 1 else "disabled"),
            "topology.shards": (APPROX if resharded else EXACT, "num_node_groups", f"{shards} shard(s)"),
            "topology.replicas_per_shard": (
                EXACT,
                "replicas_per_node_group",
                f"{replicas} replica(s), {failover}{placement}",
            ),
            "persistence": (APPROX, "snapshot_window", "ElastiCache snapshots replace RDB persistence"),
            "tls": (EXACT, "transit_encryption_enabled", "TLS required; at-rest encryption on"),
            **compat.network_decisions(spec, REACH, context["subnet_cidr"]),
            "source.region": (APPROX, "var.region", f"nearest AWS region: {context['region']}"),
            "backups.time": (EXACT, "snapshot_window", context["snapshot_window"]),
            "backups.regions": (
                MANUAL,
                "aws_elasticache_global_replication_group",
                "copy snapshots to other regions yourself",
            ),
            "backups.retention_days": (EXACT, "snapshot_retention_limit", f"{spec.backups.retention_days or 0} day(s)"),
            "maintenance_time": (
                APPROX,
                "maintenance_window",
                "OVH's window is daily, AWS's weekly: " + context["maintenance_window"],
            ),
            "deletion_protection": (APPROX, "lifecycle.prevent_destroy", "no deletion protection argument"),
            "feature.infrastructure_as_code": (EXACT, "this configuration", compat.IAC_NOTE),
            "feature.anti_ddos": (
                MANUAL,
                "aws_shield_protection",
                "AWS Shield Standard is on by default; Advanced is a subscription",
            ),
        }
        if context["existing_network"]:
            decide |= compat.existing_network_decisions(spec, *EXISTING)
        rows = compat.build_rows(spec, decide, self._user_row, self._config_row)
        return compat.added_default(
            rows, context["users"], "aws_elasticache_user", "full rights, password from var.user_passwords"
        )

    @staticmethod
    def _user_row(user: User) -> compat.Decision:
        return EXACT, "aws_elasticache_user.access_string", f"{user.acl_rules}; password from var.user_passwords"

    @staticmethod
    def _config_row(item: ConfigItem) -> compat.Decision:
        if item.valkey_name in PARAMETERS:
            return EXACT, f"parameter {item.valkey_name}", f"{item.valkey_name} = {item.value}"
        if item.valkey_name == "save":
            return APPROX, "snapshot_window", "ElastiCache manages RDB snapshots itself"
        return NONE, "—", f"{item.source_name} has no ElastiCache parameter"


def maintenance_window(hour: int, backup_hour: int) -> str:
    """The weekly ``ddd:hh24:mi-ddd:hh24:mi`` hour from Sunday ``hour``, moved past the daily snapshot window.

    The hour after the start can be the next day (Sunday 23:00 ends Monday 00:00), and so can a start moved off
    the snapshot window.
    """
    start = 6 * 24 + hour
    if hour in (backup_hour, (backup_hour + 1) % 24):
        start = 6 * 24 + backup_hour + 2
    week = 7 * 24
    return "-".join(f"{DAYS[h // 24 % 7]}:{h % 24:02d}:00" for h in (start % week, (start + 1) % week))
