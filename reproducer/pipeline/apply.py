"""``apply --target local`` and ``destroy``: the spec's topology on this machine, run by the Ansible roles.

Instances keep their files in ``<out>.valkey-data/``, beside the output, so re-rendering never touches them.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import stat
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from reproducer.atomic import atomic_write
from reproducer.errors import InputError
from reproducer.pipeline.files import scratch_dir, write_tree
from reproducer.pipeline.progress import Progress, quiet
from reproducer.pipeline.render import RenderRequest, render_in_memory
from reproducer.resources import data_dir
from reproducer.run.ansible import changed_tasks, diff_text, run_playbook
from reproducer.targets import target_entry
from reproducer.targets.base import RenderOptions

#: The admin user of targets reproducer stands up (the copy and the playbooks use it).
ADMIN_USER = "default"


@dataclass(frozen=True)
class LocalApplyRequest:
    """Stand the spec's topology up on this machine with the Ansible roles (the ``local`` target)."""

    render: RenderRequest
    base_port: int = 7100
    passwords: dict[str, str] | None = None
    check: bool = False
    #: Where the instances live (default: beside ``render.out``); a check points it at a deployed target.
    data_dir: Path | None = None


@dataclass
class LocalService:
    """What ``apply --target local`` stood up (passwords stay in memory)."""

    topology: str
    ports: list[int]
    sentinel_ports: list[int]
    primary_name: str
    data_dir: Path
    passwords: dict[str, str] = field(repr=False, default_factory=dict)
    changed: int = 0
    #: Users given no password: theirs were generated here, or kept from an earlier apply (``PASSWORDS_FILE``).
    generated_passwords: list[str] = field(default_factory=list)
    #: ``host: task`` of the tasks that changed (or, with ``check``, would change), and their ``--diff``.
    changed_tasks: list[str] = field(default_factory=list)
    diff: str = ""


def apply_local(request: LocalApplyRequest, progress: Progress = quiet) -> LocalService:
    """Render for ``local`` into ``out``, then run ``playbooks/local.yml`` (users' passwords vaulted in memory)."""
    from reproducer.targets.common import base_context
    from reproducer.targets.local import DEPLOYMENT_KEYS, ansible_vars

    if target_entry(request.render.target).applier != "local":
        raise InputError(
            f"apply supports the local target here, not {request.render.target!r}",
            hint="apply with Terraform and Ansible on remote hosts is not implemented yet",
        )
    memory = render_in_memory(request.render)
    spec, rendered = memory.spec, memory.rendered
    options = RenderOptions(shards=request.render.shards, replicas=request.render.replicas, name=request.render.name)
    variables = ansible_vars(base_context(spec, options), request.base_port)
    _check_local_ports(variables, request.base_port)
    out = request.render.out.resolve()
    instances_dir = request.data_dir or local_data_dir(out)
    variables["valkey_base_dir"] = str(instances_dir)
    deployment = {k: v for k, v in variables.items() if k in DEPLOYMENT_KEYS}
    write_tree(out, dict(rendered.files) | {"ansible/deployment.yml": yaml.safe_dump(deployment, sort_keys=True)})
    passwords = dict(request.passwords or {})
    generated = sorted({u.name for u in spec.users} - set(passwords))
    passwords |= _generated_passwords(instances_dir, {*generated, ADMIN_USER} - set(passwords), save=not request.check)
    if ADMIN_USER not in {u.name for u in spec.users}:
        variables["valkey_users"].append({"name": ADMIN_USER, "rules": "~* &* +@all"})
    progress(
        f"running playbooks/local.yml: {variables['valkey_topology']}, {len(variables['valkey_instances'])} instance(s)"
    )
    result = run_playbook(
        data_dir("playbooks") / "local.yml",
        {"all": {"hosts": {"localhost": _local_host()}}},
        private_data_dir=out / "ansible" / "runner",
        extravars=variables,
        secret_vars={"valkey_user_passwords": passwords},
        check=request.check,
        diff=request.check,
        progress=progress,
    )
    return LocalService(
        variables["valkey_topology"],
        [i["port"] for i in variables["valkey_instances"]],
        variables["valkey_sentinel_ports"],
        variables["valkey_primary_name"],
        instances_dir,
        passwords,
        result.changed,
        generated,
        changed_tasks(result.events),
        diff_text(result.events),
    )


#: The passwords ``apply`` generated for users given none, kept (0600) with the instances so a second apply
#: reuses them and changes nothing; ``destroy`` removes them with the instances' files.
PASSWORDS_FILE = "generated-passwords.json"
_PASSWORD = re.compile(r"[A-Za-z0-9_-]{16,128}")
_USER = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def _generated_passwords(instances_dir: Path, users: set[str], *, save: bool) -> dict[str, str]:
    """A password for each of ``users``: the one kept from an earlier apply, else a new one (then kept)."""
    path = instances_dir / PASSWORDS_FILE
    kept = _read_passwords(path)
    passwords = {name: kept.get(name) or secrets.token_urlsafe(18) for name in sorted(users)}
    if save and passwords and passwords != {name: kept.get(name) for name in passwords}:
        instances_dir.mkdir(parents=True, exist_ok=True)
        atomic_write(path, json.dumps({**kept, **passwords}, indent=2, sort_keys=True) + "\n")  # mkstemp: 0600
    return passwords


def _read_passwords(path: Path) -> dict[str, str]:
    """The kept passwords (none when the file is absent); a file that is not one reproducer wrote is refused."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return {}
    except OSError as error:
        raise InputError(f"cannot read {path}: {error.strerror}", hint=_PASSWORDS_HINT) from None
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise InputError(f"{path} is not a regular file", hint=_PASSWORDS_HINT)
        raw = handle.read(65536)
    try:
        kept = json.loads(raw)
    except ValueError:
        kept = None
    if not isinstance(kept, dict) or not all(
        isinstance(k, str) and _USER.fullmatch(k) and isinstance(v, str) and _PASSWORD.fullmatch(v)
        for k, v in kept.items()
    ):
        raise InputError(f"{path} is not a password file reproducer wrote", hint=_PASSWORDS_HINT)
    return kept


_PASSWORDS_HINT = "remove it (the next apply generates new passwords and restarts the instances) or fix it"


def destroy_local(out: Path, progress: Progress = quiet) -> None:
    """Stop every process ``apply --target local`` started under ``out`` and remove its data."""
    out = out.resolve()
    if not local_data_dir(out).exists():
        progress(f"nothing runs from {out}: {local_data_dir(out)} does not exist")
        return
    with scratch_dir("reproducer-teardown-") as scratch:  # ansible-runner's artifacts: nothing to keep
        run_playbook(
            data_dir("playbooks") / "local-teardown.yml",
            {"all": {"hosts": {"localhost": _local_host()}}},
            private_data_dir=scratch,
            extravars={"valkey_base_dir": str(local_data_dir(out))},
            progress=progress,
        )


def local_data_dir(out: Path) -> Path:
    """Where the local target's instances keep their files: beside the output directory, never inside it."""
    return out.with_name(f"{out.name}.valkey-data")


def _local_host() -> dict[str, str]:
    return {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}


def _check_local_ports(variables: dict[str, Any], base_port: int) -> None:
    """Refuse a base port that puts an instance or a Sentinel outside 1-65535 (before Ansible runs)."""
    ports = [i["port"] for i in variables["valkey_instances"]] + list(variables["valkey_sentinel_ports"])
    if ports and not 1 <= min(ports) <= max(ports) <= 65535:
        raise InputError(
            f"base port {base_port} puts the local instances on ports {min(ports)}-{max(ports)}, beyond 1-65535",
            hint="use a lower base port (a plan reads it from the committed ansible/deployment.yml)",
        )
