"""Self-managed Valkey on OpenStack instances (OVH Public Cloud is OpenStack), configured by Ansible.

Terraform creates the network, the security groups from the allow-list and the instances; its
``ansible_inventory`` output becomes the Ansible inventory of ``ansible/``: the roles shipped with reproducer,
a site playbook and group vars from the spec (no passwords: they come from a vault or extra vars at apply time).
"""

from __future__ import annotations

from typing import Any

import yaml

from reproducer.model import ConfigItem, ServiceSpec, User
from reproducer.resources import data_dir
from reproducer.targets import compat
from reproducer.targets.base import CompatRow, Rendered, RenderOptions, Support, TerraformProvider
from reproducer.targets.common import BaseTarget, Shape, check_config_lines, check_unique, generic_header
from reproducer.targets.render import hcl_ident, render_template
from reproducer.targets.sizing import NodeSize
from reproducer.untrusted import ansible_yaml

EXACT, APPROX, MANUAL, NONE = Support.EXACT, Support.APPROXIMATED, Support.MANUAL, Support.UNSUPPORTED

#: The Terraform provider of the rendered files: versions.tf, the offline mirror and its schema subset.
PROVIDER = TerraformProvider(
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
        "openstack_networking_router_v2",
        "openstack_networking_router_interface_v2",
        "openstack_networking_floatingip_v2",
        "openstack_networking_floatingip_associate_v2",
    ),
    data_sources=("openstack_networking_network_v2", "openstack_networking_subnet_v2"),
)
#: OVH Public Cloud (OpenStack) B3 instances; a quarter of the RAM is left to the OS and forks (BGSAVE).
NODES = tuple(
    NodeSize(f"b3-{gb}", gb * 0.75, f"OVH Public Cloud b3-{gb}: {gb} GB RAM, 75 % given to Valkey")
    for gb in (8, 16, 32, 64, 128, 256)
)
VALKEY_PORT, SENTINEL_PORT, BUS_OFFSET = 6379, 26379, 10000
#: The instances have floating IPs for SSH only: Valkey, Sentinel and the cluster announce private addresses.
REACH = compat.Reach(
    public=False,
    filters=True,
    filter_argument="openstack_networking_secgroup_rule_v2",
    inside="Valkey, Sentinel and the cluster announce the instances' private addresses (the floating IPs serve "
    "SSH for Ansible)",
    network_argument="openstack_networking_network_v2",
    network=(APPROX, "a new private network and subnet, not the source's VLAN; attach the project to a vRack on OVH"),
    subnet_argument="openstack_networking_subnet_v2",
    subnet=(APPROX, "same CIDR; OpenStack picks the gateway and allocation pool"),
)

#: ``--network existing``: the user's network and subnet, read by data sources (docs/reference/adoption.md#openstack).
EXISTING = (
    "var.network_id → data.openstack_networking_network_v2",
    "var.subnet_id → data.openstack_networking_subnet_v2",
    "the instances' ports go in it; no network, subnet or router is created, so the subnet must already be routed "
    "to var.external_network for the floating IPs",
)


class SelfManagedTarget(BaseTarget):
    """Renders OpenStack instances, network and security groups for a self-managed Valkey."""

    name = "selfmanaged"
    title = "Self-managed Valkey on OpenStack instances"
    providers = (PROVIDER,)
    nodes = NODES
    existing_network = True
    shape = Shape(500, 5, 1000, "Valkey Cluster: at most 1000 nodes (valkey.io cluster specification)")

    def render(self, spec: ServiceSpec, options: RenderOptions) -> Rendered:
        """The Terraform files, the compatibility report and the ``ansible/`` directory."""
        rendered = super().render(spec, options)
        files = rendered.files | ansible_files(self.context(spec, options))
        return Rendered(files=dict(sorted(files.items())), rows=rendered.rows)

    def context(self, spec: ServiceSpec, options: RenderOptions) -> dict[str, Any]:
        """Template context: instance count and flavor, ports to open."""
        context = self.base(spec, options)
        check_config_lines(context["settings"], self.title)
        labels = [(hcl_ident(f"{context['ident']}_{entry['cidr']}"), entry["cidr"]) for entry in context["allow_list"]]
        check_unique("allow-list entries", labels, self.title)
        shards, replicas = context["shards"], context["replicas"]
        data_nodes = shards * (1 + replicas)
        cluster = shards > 1
        sentinel = not cluster and replicas > 0
        # Sentinel needs three voters: a small arbiter instance joins when there are fewer data nodes.
        arbiter = sentinel and data_nodes < 3
        client_ports = [VALKEY_PORT, SENTINEL_PORT] if sentinel else [VALKEY_PORT]
        peer_ports = [*client_ports, VALKEY_PORT + BUS_OFFSET] if cluster else client_ports
        return context | {
            "flavor": self.node(spec, shards),
            "data_nodes": data_nodes,
            "instances": data_nodes + (1 if arbiter else 0),
            "arbiter": arbiter,
            "cluster": cluster,
            "client_ports": client_ports,
            "peer_ports": sorted(peer_ports),
            "region": options.region or "",
        }

    def rows(self, spec: ServiceSpec, context: dict[str, Any]) -> list[CompatRow]:
        """Compatibility of every attribute with self-managed instances."""
        flavor, shards, replicas = context["flavor"], context["shards"], context["replicas"]
        ansible = "set by ansible/site.yml"
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
            **compat.network_decisions(spec, REACH, context["subnet_cidr"]),
            "source.region": (APPROX, "OS_REGION_NAME", "the OpenStack region comes from the environment"),
            "backups.time": (MANUAL, "Ansible: cron BGSAVE", "schedule and ship RDB snapshots yourself"),
            "backups.regions": (MANUAL, "object storage", "copy snapshots to another region yourself"),
            "backups.retention_days": (MANUAL, "object storage lifecycle", "keep snapshots as long as you need"),
            "maintenance_time": (MANUAL, "—", "you run the maintenance"),
            "deletion_protection": (APPROX, "lifecycle.prevent_destroy", "on the instances"),
            "feature.infrastructure_as_code": (EXACT, "this configuration + Ansible", compat.IAC_NOTE),
            "feature.anti_ddos": (MANUAL, "—", "OVH Public Cloud includes anti-DDoS; elsewhere order it"),
        }
        if context["existing_network"]:
            decide |= compat.existing_network_decisions(spec, *EXISTING)
        return compat.build_rows(spec, decide, self._user_row, self._config_row)

    @staticmethod
    def _user_row(user: User) -> compat.Decision:
        return EXACT, "Ansible: valkey_users", user.acl_rules

    @staticmethod
    def _config_row(item: ConfigItem) -> compat.Decision:
        if item.valkey_name:
            return EXACT, f"Ansible: valkey.conf {item.valkey_name}", item.value
        return APPROX, "Ansible", f"{item.source_name}={item.value} has no single directive"


def group_vars(context: dict[str, Any]) -> dict[str, Any]:
    """The variables of ``ansible/site.yml`` from the spec (no passwords); every string is data for Ansible."""
    spec = context["spec"]
    topology = "cluster" if context["cluster"] else ("sentinel" if context["replicas"] > 0 else "standalone")
    return {
        "valkey_topology": topology,
        "valkey_primary_name": str(context["name"]),
        "valkey_replicas": context["replicas"],
        "valkey_config": dict(sorted(context["settings"].items())),
        "valkey_users": [
            {"name": user["name"], "rules": user["user"].acl_rules.removeprefix("on ")} for user in context["users"]
        ],
        "valkey_admin_user": "default",
        "valkey_allowlist_cidrs": [entry["cidr"] for entry in context["allow_list"]],
        "valkey_tls": bool(spec.tls),
    }


#: Variables that Ansible must template (paths under the playbook): constants, never a spec value.
TEMPLATED_VARS: dict[str, Any] = {
    "valkey_tls_ca_file": "{{ playbook_dir }}/files/tls/ca.crt",
    "valkey_tls_cert_file": "{{ playbook_dir }}/files/tls/{{ inventory_hostname }}.crt",
    "valkey_tls_key_file": "{{ playbook_dir }}/files/tls/{{ inventory_hostname }}.key",
    "valkey_install_packages": True,
    "valkey_packages_release": "bookworm-backports",
}


def ansible_files(context: dict[str, Any]) -> dict[str, str]:
    """``ansible/``: site playbook, group vars, inventory helper and a copy of the roles (deterministic)."""
    playbooks = data_dir("playbooks")
    header = context["header"] + "\n"
    spec_free = context | {"header": generic_header()}
    files = {
        "ansible/site.yml": (playbooks / "site.yml").read_text(encoding="utf-8"),
        "ansible/.ansible-lint": (playbooks / ".ansible-lint").read_text(encoding="utf-8"),
        "ansible/ansible.cfg": render_template("selfmanaged/ansible.cfg.j2", spec_free),
        "ansible/inventory_from_terraform.py": render_template("selfmanaged/inventory_from_terraform.py.j2", spec_free),
        "ansible/inventory.example.yml": inventory_example(context),
        "ansible/group_vars/all.yml": "---\n" + header + "# Passwords are not here: pass valkey_user_passwords "
        "from a vault or extra vars.\n# From the spec: every string is tagged !unsafe (Ansible never templates it).\n"
        + ansible_yaml(group_vars(context))
        + "# Constants Ansible templates on purpose (no spec value):\n"
        + yaml.safe_dump(TEMPLATED_VARS, sort_keys=True),
    }
    for path in sorted((playbooks / "roles").rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            files[f"ansible/{path.relative_to(playbooks).as_posix()}"] = path.read_text(encoding="utf-8")
    return files


def inventory_example(context: dict[str, Any]) -> str:
    """``inventory.example.yml``: the hosts to list when they already exist (host names are slugs)."""
    name, data_nodes = str(context["name"]), context["data_nodes"]
    nodes = {f"{name}-{index}": {"ansible_host": f"192.0.2.{10 + index}"} for index in range(data_nodes)}
    children: dict[str, Any] = {"valkey": {"hosts": nodes}}
    if not context["cluster"] and context["replicas"] > 0:
        sentinels: dict[str, Any] = dict.fromkeys(nodes)
        if context["arbiter"]:
            sentinels[f"{name}-arbiter"] = {"ansible_host": f"192.0.2.{10 + data_nodes}"}
        children["valkey_sentinel"] = {"hosts": sentinels}
    inventory = {"all": {"vars": {"ansible_user": "debian", "ansible_become": True}, "children": children}}
    primary = "" if context["cluster"] else " (the first is the initial primary)"
    return (
        "---\n"
        + str(context["header"])
        + "\n# Hosts that already exist: list them here (or write inventory.yml with inventory_from_terraform.py)."
        + f"\n# valkey: the data nodes{primary}; valkey_sentinel: the Sentinel hosts.\n"
        + yaml.safe_dump(inventory, sort_keys=False)
    )


def inventory_from_outputs(outputs: dict[str, Any]) -> dict[str, Any]:
    """An Ansible inventory (YAML-ready dict) from ``terraform output -json`` of the rendered configuration.

    Ansible logs in at ``ansible_inventory``'s addresses (floating IPs); ``valkey_addresses`` (private IPs), when
    present, are what the nodes and their clients use.
    """
    groups = outputs["ansible_inventory"]["value"]
    private = outputs.get("valkey_addresses", {}).get("value") or {}
    hosts = {
        name: {"ansible_host": ip} | ({"valkey_address": private[name]} if name in private else {})
        for group in groups.values()
        for name, ip in group.items()
    }
    children: dict[str, Any] = {group: {"hosts": {name: {} for name in members}} for group, members in groups.items()}
    return {"all": {"hosts": dict(sorted(hosts.items())), "children": children}}
