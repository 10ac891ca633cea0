"""``apply --target selfmanaged``: Terraform creates the instances, then Ansible configures Valkey on them.

With an inventory of hosts that already exist, Terraform is skipped. The rendered ``ansible/`` directory is
what runs (its ``site.yml``, roles and ``group_vars`` from the spec); passwords reach Ansible only through
the runner's one-time vault. Files a deployment adds to the output directory (Terraform state, the runner's
artifacts, the user's ``terraform.tfvars``, inventory and certificates) survive a re-render.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from reproducer.atomic import atomic_write
from reproducer.errors import InputError
from reproducer.pipeline.apply import ADMIN_USER
from reproducer.pipeline.files import write_tree
from reproducer.pipeline.progress import Progress, quiet
from reproducer.pipeline.render import RenderRequest, render_in_memory
from reproducer.run.ansible import changed_tasks, diff_text, run_playbook
from reproducer.targets import target_entry


@dataclass(frozen=True)
class SelfManagedApplyRequest:
    """Stand the spec's topology up on remote hosts."""

    render: RenderRequest
    #: An Ansible inventory (YAML) of hosts that already exist; without it, Terraform creates them.
    inventory: Path | None = None
    #: A YAML file of extra, non-secret Ansible variables (e.g. ``valkey_install_packages: false``).
    variables: Path | None = None
    passwords: dict[str, str] | None = field(default=None, repr=False)
    check: bool = False


@dataclass
class SelfManagedService:
    """What the playbook did, and where the target now runs."""

    topology: str
    data_hosts: dict[str, str]
    sentinel_hosts: dict[str, str]
    changed: int
    changed_tasks: list[str] = field(default_factory=list)
    diff: str = ""
    passwords: dict[str, str] = field(default_factory=dict, repr=False)


def apply_selfmanaged(request: SelfManagedApplyRequest, progress: Progress = quiet) -> SelfManagedService:
    """Render into ``out``; Terraform apply unless an inventory is given; then ``ansible/site.yml``."""
    if target_entry(request.render.target).applier != "hosts":
        raise InputError(f"not a self-managed target: {request.render.target!r}", hint="use --target selfmanaged")
    memory = render_in_memory(request.render)
    spec, rendered = memory.spec, memory.rendered
    passwords = _passwords(request.passwords, [u.name for u in spec.users])
    extravars = _variables(request.variables)
    out = request.render.out.resolve()
    write_tree(out, rendered.files)
    inventory = _inventory(request, out, progress)
    group_vars = read_group_vars(out / "ansible")
    progress(f"running ansible/site.yml on {len(_hosts(inventory, 'valkey'))} data host(s)")
    result = run_playbook(
        out / "ansible" / "site.yml",
        inventory,
        private_data_dir=out / "ansible" / "runner",
        extravars=extravars,
        secret_vars={"valkey_user_passwords": passwords},
        check=request.check,
        diff=request.check,
        progress=progress,
    )
    return SelfManagedService(
        str(group_vars["valkey_topology"]),
        _hosts(inventory, "valkey"),
        _hosts(inventory, "valkey_sentinel") or _hosts(inventory, "valkey"),
        result.changed,
        changed_tasks(result.events),
        diff_text(result.events),
        passwords,
    )


def read_group_vars(ansible_dir: Path) -> dict[str, Any]:
    """The variables a render wrote to ``ansible_dir/group_vars/all.yml`` (strings tagged ``!unsafe``)."""
    from reproducer.untrusted import load_ansible_yaml

    group_vars: dict[str, Any] = load_ansible_yaml((ansible_dir / "group_vars" / "all.yml").read_text(encoding="utf-8"))
    return group_vars


def _inventory(request: SelfManagedApplyRequest, out: Path, progress: Progress) -> dict[str, Any]:
    """The user's inventory, or one built from the Terraform outputs after ``terraform apply``."""
    if request.inventory is not None:
        return load_inventory(request.inventory)
    if request.check:
        raise InputError("a check of self-managed hosts needs their inventory", hint="pass --inventory FILE")
    progress("terraform init and apply in terraform/ (provider credentials from the environment)")
    return terraform_inventory(out, progress=progress)


def terraform_inventory(out: Path, *, cli_config: Path | None = None, progress: Progress = quiet) -> dict[str, Any]:
    """``terraform apply`` in ``out/terraform``, then the inventory from its ``ansible_inventory`` output.

    The inventory is also written to ``out/ansible/inventory.yml`` (for plain ``ansible-playbook``).
    ``cli_config`` is a Terraform CLI configuration, e.g. one that installs providers from a mirror.
    """
    from reproducer.run.terraform import Terraform
    from reproducer.targets.selfmanaged import inventory_from_outputs

    if not (out / "terraform" / "terraform.tfvars").is_file():
        raise InputError(
            f"{out / 'terraform' / 'terraform.tfvars'} does not exist",
            hint="copy terraform.tfvars.example to terraform.tfvars and fill it in (it survives re-renders)",
        )
    terraform = Terraform(out / "terraform", cli_config=cli_config, progress=progress)
    terraform.init()
    terraform.apply()
    outputs = {name: {"value": output.value} for name, output in terraform.output().items()}
    inventory = inventory_from_outputs(outputs)
    atomic_write(out / "ansible" / "inventory.yml", yaml.safe_dump(inventory, sort_keys=True))
    return inventory


def load_inventory(path: Path) -> dict[str, Any]:
    """A YAML inventory with a ``valkey`` group (and optionally ``valkey_sentinel``)."""
    try:
        inventory = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise InputError(
            f"cannot read inventory {path}: {type(error).__name__}", hint="give a YAML Ansible inventory"
        ) from None
    if not isinstance(inventory, dict) or not _checked_hosts(inventory, "valkey", path):
        raise InputError(
            f"inventory {path} has no host in group 'valkey'",
            hint="list the data nodes under all.children.valkey.hosts (see ansible/inventory.example.yml)",
        )
    return inventory


def _checked_hosts(inventory: dict[str, Any], group: str, path: Path) -> dict[str, str]:
    """``_hosts`` of a user's inventory, whose shape is checked here (groups and hosts are mappings)."""
    try:
        _hosts(inventory, "valkey_sentinel")  # read later: its shape is checked now
        return _hosts(inventory, group)
    except (AttributeError, TypeError) as error:
        raise InputError(
            f"inventory {path} is not shaped like an Ansible YAML inventory ({error})",
            hint="all: {hosts: {NAME: {ansible_host: ADDRESS}}, children: {valkey: {hosts: {NAME: {}}}}}",
        ) from None


def _hosts(inventory: dict[str, Any], group: str) -> dict[str, str]:
    """``name → address`` of a group's hosts (the address is ``ansible_host``, else the name)."""
    root = inventory.get("all", inventory)
    members = ((root.get("children") or {}).get(group) or {}).get("hosts") or {}
    known = root.get("hosts") or {}
    return {
        name: str(((vars_ or {}) | (known.get(name) or {})).get("ansible_host", name))
        for name, vars_ in members.items()
    }


def _variables(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise InputError(
            f"cannot read variables file {path}: {type(error).__name__}", hint="give a YAML mapping"
        ) from None
    if not isinstance(loaded, dict) or "valkey_user_passwords" in loaded:
        raise InputError(
            f"{path} must be a YAML mapping of non-secret variables",
            hint="passwords come from REPRODUCER_PASSWORD_<USER>, never from a file of variables",
        )
    return loaded


def _passwords(given: dict[str, str] | None, users: list[str]) -> dict[str, str]:
    """Every user's password, ``default`` included: hosts outlive this process, so none is made up here."""
    passwords = dict(given or {})
    missing = sorted({*users, ADMIN_USER} - set(passwords))
    if missing:
        names = ", ".join(f"REPRODUCER_PASSWORD_{name.upper()}" for name in missing)
        raise InputError(
            f"no password for user(s) {', '.join(missing)} of the self-managed target",
            hint=f"set {names} (from your secret store); they reach Ansible only through a one-time vault",
        )
    return passwords
