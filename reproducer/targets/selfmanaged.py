"""Self-managed Valkey on OpenStack instances (OVH Public Cloud is OpenStack), configured by Ansible.

Terraform creates the network, the security groups from the allow-list and the instances; its outputs
become the Ansible inventory (the playbooks themselves are a later step).
"""

from __future__ import annotations

from typing import Any

from reproducer.model import ConfigItem, ServiceSpec, User
from reproducer.targets import compat, sizing
from reproducer.targets.base import CompatRow, RenderOptions, Support
from reproducer.targets.common import BaseTarget, base_context

EXACT, APPROX, MANUAL, NONE = Support.EXACT, Support.APPROXIMATED, Support.MANUAL, Support.UNSUPPORTED
VALKEY_PORT, SENTINEL_PORT, BUS_OFFSET = 6379, 26379, 10000


class SelfManagedTarget(BaseTarget):
    """Renders OpenStack instances, network and security groups for a self-managed Valkey."""

    name = "selfmanaged"
    title = "Self-managed Valkey on OpenStack instances"
    terraform_providers = ("openstack",)

    def context(self, spec: ServiceSpec, options: RenderOptions) -> dict[str, Any]:
        """Template context: instance count and flavor, ports to open."""
        context = base_context(spec, options)
        shards, replicas = context["shards"], context["replicas"]
        data_nodes = shards * (1 + replicas)
        cluster = shards > 1
        # Sentinel needs three voters: a small arbiter instance joins when there are fewer data nodes.
        arbiter = not cluster and replicas > 0 and data_nodes < 3
        ports = [VALKEY_PORT, VALKEY_PORT + BUS_OFFSET] if cluster else [VALKEY_PORT, SENTINEL_PORT]
        return context | {
            "flavor": sizing.choose(sizing.OPENSTACK, spec.plan.memory_gb or 0, shards),
            "data_nodes": data_nodes,
            "arbiter": arbiter,
            "cluster": cluster,
            "ports": ports,
            "region": options.region or "",
        }

    def rows(self, spec: ServiceSpec, context: dict[str, Any]) -> list[CompatRow]:
        """Compatibility of every attribute with self-managed instances."""
        flavor, shards, replicas = context["flavor"], context["shards"], context["replicas"]
        ansible = "set by the Ansible playbooks (next step)"
        decide: dict[str, compat.Decision] = {
            "engine.version": (
                APPROX,
                "Ansible: valkey package",
                f"the distribution's Valkey; source {spec.engine.version}",
            ),
            "plan.flavor": (EXACT if flavor.fits else MANUAL, "var.flavor_name", flavor.note),
            "topology.mode": (EXACT, "Ansible", "cluster" if context["cluster"] else "primary + replicas + Sentinel"),
            "topology.shards": (EXACT if shards == spec.topology.shards else APPROX, "instance count", f"{shards}"),
            "topology.replicas_per_shard": (
                EXACT,
                "instance count",
                f"{replicas}; {context['data_nodes']} data node(s)",
            ),
            "persistence": (EXACT, "Ansible: valkey.conf save", ansible),
            "tls": (EXACT, "Ansible: tls-port", ansible),
            "allow_list": (EXACT, "openstack_networking_secgroup_rule_v2", "one rule per CIDR and port"),
            "network.private": (EXACT, "openstack_networking_network_v2", "attach the project to a vRack on OVH"),
            "network.private.subnet": (EXACT, "openstack_networking_subnet_v2", context["subnet_cidr"]),
            "source.region": (APPROX, "OS_REGION_NAME", "the OpenStack region comes from the environment"),
            "backups.time": (MANUAL, "Ansible: cron BGSAVE", "schedule and ship RDB snapshots yourself"),
            "backups.regions": (MANUAL, "object storage", "copy snapshots to another region yourself"),
            "backups.retention_days": (MANUAL, "object storage lifecycle", "keep snapshots as long as you need"),
            "maintenance_time": (MANUAL, "—", "you run the maintenance"),
            "deletion_protection": (APPROX, "lifecycle.prevent_destroy", "on the instances"),
            "feature.infrastructure_as_code": (EXACT, "this configuration + Ansible", compat.IAC_NOTE),
            "feature.anti_ddos": (MANUAL, "—", "OVH Public Cloud includes anti-DDoS; elsewhere order it"),
        }
        return compat.build_rows(spec, decide, self._user_row, self._config_row)

    @staticmethod
    def _user_row(user: User) -> compat.Decision:
        return EXACT, "Ansible: ACL SETUSER", user.acl_rules

    @staticmethod
    def _config_row(item: ConfigItem) -> compat.Decision:
        if item.valkey_name:
            return EXACT, f"Ansible: valkey.conf {item.valkey_name}", item.value
        return APPROX, "Ansible", f"{item.source_name}={item.value} has no single directive"
