"""The use cases behind the commands: inspect, the sandbox, the demo, and the data commands.

Each function takes plain, typed options, reports progress through a callback and returns data;
``cli.py`` decides how to show it. Files are written to a temporary name and renamed at the end, so a
failed command never leaves a half-written file behind.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from reproducer.data.copy import CopyOptions, CopyResult, Stats
from reproducer.data.copy import copy as copy_keys
from reproducer.data.endpoint import parse_endpoint
from reproducer.data.follow import Follower, FollowStats
from reproducer.data.formats import format_from_path, format_module
from reproducer.data.verify import VerifyOptions, VerifyReport
from reproducer.data.verify import verify as verify_keys
from reproducer.errors import InputError, OutputError, ReproducerError, SourceUnavailableError

if TYPE_CHECKING:  # the OVH client, pydantic and the sandbox load only for the commands that use them
    from reproducer.gitops.drift import Difference
    from reproducer.gitops.plan import AnsibleCheck, PlanReport, ResourcePlan
    from reproducer.model import ServiceSpec
    from reproducer.sources.ovh import RetryPolicy
    from reproducer.targets.base import Rendered, Target

Progress = Callable[[str], None]
_T = TypeVar("_T")
DataProgress = Callable[[Stats, int], None]


#: The admin user of targets reproducer stands up (the copy and the playbooks use it).
ADMIN_USER = "default"


def _quiet(_message: str) -> None:
    return None


@dataclass(frozen=True)
class InspectOptions:
    """What ``inspect`` reads and from where."""

    project: str
    service: str | None = None
    endpoint: str | None = None
    config_file: Path | None = None
    credentials: dict[str, str] | None = None
    retry: RetryPolicy | None = None


def inspect(options: InspectOptions, progress: Progress = _quiet) -> list[ServiceSpec]:
    """Read one service, or every Valkey service of the project, into specs."""
    if not options.project.strip():
        raise InputError("the project id is empty", hint="pass --project with the Public Cloud project id")
    from reproducer.sources.ovh import OvhApiClient, OvhSource, make_client

    client = make_client(options.endpoint, options.config_file, options.credentials)
    source = OvhSource(OvhApiClient(client, options.retry, progress), progress)
    if options.service:
        return [source.read(options.project, options.service)]
    specs = source.read_project(options.project)
    progress(f"read {len(specs)} Valkey service(s) of project {options.project}")
    return specs


def specs_to_yaml(specs: Sequence[ServiceSpec]) -> str:
    """One YAML document per spec, separated by ``---``."""
    return "---\n".join(spec.to_yaml() for spec in specs)


def write_specs(specs: Sequence[ServiceSpec], output: Path) -> list[Path]:
    """Write one spec to ``output``, or several to ``output/<service-id>.yaml``: all of them or none."""
    if len(specs) == 1 and not output.is_dir():
        atomic_write(output, specs[0].to_yaml())
        return [output]
    _make_directory(output)
    files = {output / f"{spec.source.service_id}.yaml": spec.to_yaml() for spec in specs}
    atomic_write_all(files)
    return list(files)


#: errno values of a file system that refuses a write: read-only, full, over quota, not permitted.
_WRITE_ERRNOS = frozenset(
    {errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EFBIG, errno.EISDIR, errno.ENOTDIR}
)


def output_error(path: Path, error: OSError) -> OutputError:
    """The error for a file that could not be written (the previous file, if any, is intact)."""
    return OutputError(
        f"cannot write {path}: {error.strerror or error}",
        hint="make room or choose a writable location; nothing was half-written",
    )


@contextlib.contextmanager
def atomic_output(path: Path) -> Iterator[Path]:
    """A temporary file beside ``path`` to write; renamed to ``path`` when the block succeeds, removed when not.

    This is the one way files are written here: readers never see a half-written file, and a read-only or
    full file system leaves the previous file as it was and raises ``OutputError``.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise InputError(f"cannot write {path}: directory {path.parent} does not exist", hint="create it first")
    try:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
    except OSError as error:
        raise output_error(path, error) from None
    tmp = Path(name)
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as error:
        if error.errno not in _WRITE_ERRNOS:
            raise
        raise output_error(path, error) from None
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same directory, then rename."""
    atomic_write_all({Path(path): text})


def atomic_write_all(files: dict[Path, str]) -> None:
    """Write every file to a temporary name first, then rename them all: a failure leaves every old file intact.

    Renames run from the last file to the first (put a file that must land first, such as a manifest, last).
    """
    with contextlib.ExitStack() as stack:
        staged = [(stack.enter_context(atomic_output(path)), text) for path, text in files.items()]
        for tmp, text in staged:
            with tmp.open("w", encoding="utf-8") as handle:
                handle.write(text)


def _make_directory(directory: Path) -> None:
    """Create ``directory`` (its parent must exist); a file in its place is bad input."""
    if directory.exists() and not directory.is_dir():
        raise InputError(f"{directory} exists and is not a directory", hint="choose another output path")
    parent = directory.parent
    if not parent.is_dir():
        raise InputError(f"cannot write {directory}: directory {parent} does not exist", hint="create it first")
    try:
        directory.mkdir(exist_ok=True)
    except OSError as error:
        raise output_error(directory, error) from None


# ---- sandbox and demo ----------------------------------------------------------------------------


def sandbox_root(root: Path | None) -> Path:
    """The sandbox directory: the given one, else the default state directory."""
    from reproducer.sandbox import control

    return Path(root) if root else control.default_root()


def sandbox_up(root: Path | None = None, progress: Progress = _quiet, *, keys: int = 2000) -> dict[str, Any]:
    """Start (or find) the sandbox and return its endpoint, credentials, project and services.

    A new sandbox's service is loaded with ``keys`` mixed keys; a running one is returned as it is.
    """
    from reproducer.sandbox import control

    running = control.status(sandbox_root(root))
    if running is not None:
        progress(f"using the sandbox already running at {running['endpoint']}")
        return running
    progress(
        f"starting the sandbox: OVH API emulator and a Business Valkey service (primary, replica, Sentinel) "
        f"holding {keys:,} keys"
    )
    return control.up(sandbox_root(root), dataset_keys=keys)


def sandbox_status(root: Path | None = None) -> dict[str, Any] | None:
    """The running sandbox's info, or None."""
    from reproducer.sandbox import control

    return control.status(sandbox_root(root))


def sandbox_down(root: Path | None = None) -> bool:
    """Stop the sandbox; False when it was not running."""
    from reproducer.sandbox import control

    return control.down(sandbox_root(root))


def credentials_of(info: dict[str, Any]) -> dict[str, str]:
    """The ``ovh`` client credentials of a sandbox info mapping."""
    return {k: info[k] for k in ("application_key", "application_secret", "consumer_key")}


# ---- render --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RenderRequest:
    """What to render: a spec file, a target, where, and the reshaping options."""

    spec: Path
    target: str
    out: Path
    shards: int | None = None
    replicas: int | None = None
    name: str | None = None
    region: str | None = None


def _render_in_memory(request: RenderRequest) -> tuple[ServiceSpec, Target, Rendered]:
    """Load the spec and render it for the target, without writing anything."""
    from reproducer.model import load_spec
    from reproducer.targets import get_target
    from reproducer.targets.base import RenderOptions

    target = get_target(request.target)
    spec = load_spec(request.spec)
    options = RenderOptions(shards=request.shards, replicas=request.replicas, name=request.name, region=request.region)
    return spec, target, target.render(spec, options)


def render(request: RenderRequest) -> Rendered:
    """Render a spec for a target into ``out`` (see ``write_tree``: it owns only the files it wrote there)."""
    _spec, _target, rendered = _render_in_memory(request)
    write_tree(request.out, rendered.files)
    return rendered


def write_tree(out: Path, files: dict[str, str]) -> None:
    """Write ``files`` (relative paths) into directory ``out``, touching only what an earlier render wrote there.

    ``out`` must be empty, absent, or hold the manifest (``.reproducer-manifest.json``) of an earlier render.
    Files the manifest lists are replaced, or removed when they are no longer rendered (unless edited since);
    anything else (``.git``, ``backend.tf``, ``*_override.tf``, notes, what a deployment added: state, tfvars,
    inventory, runs) is left alone. Every file is staged first and renamed after, so a failure midway leaves
    the previous files intact.
    """
    from reproducer.gitops.manifest import MANIFEST, digest, manifest_text, read_manifest

    out = Path(out)
    created: list[Path] = [] if out.is_dir() else [out]
    _make_directory(out)
    try:
        owned = read_manifest(out)
        if owned is None and any(out.iterdir()):
            raise InputError(
                f"{out} is not empty and holds no manifest of an earlier render",
                hint="choose an empty directory or one reproducer rendered",
            )
        owned = owned or {}
        _refuse_linked_entries(out, owned)
        paths = {relative: _owned_path(out, relative, owned) for relative in files}
        written = {relative: digest(text.encode("utf-8")) for relative, text in files.items()}
        _make_parents(out, paths.values(), created)
        staged = {paths[relative]: text for relative, text in files.items()}
        atomic_write_all({**staged, out / MANIFEST: manifest_text(owned | written)})  # the manifest lands first
    except BaseException:
        for directory in reversed(created):  # only directories this call made, and only when still empty
            with contextlib.suppress(OSError):
                directory.rmdir()
        raise
    kept = _remove_stale(out, {k: v for k, v in owned.items() if k not in files})
    atomic_write(out / MANIFEST, manifest_text(written | kept))


def _refuse_linked_entries(out: Path, owned: dict[str, str]) -> None:
    """Refuse a manifest (from a pull request, maybe) whose entries reach through a link, before anything changes."""
    for relative in sorted(owned):
        _check_inside(out, relative)


def _check_inside(out: Path, relative: str) -> None:
    """Refuse ``relative`` when any existing component of it under ``out`` is a link or resolves outside ``out``."""
    root, current = out.resolve(), out
    for part in relative.split("/"):
        current = current / part
        if current.is_symlink() or (current.exists() and not current.resolve().is_relative_to(root)):
            raise InputError(
                f"the render manifest in {out} names {relative!r}, but {current} is a link: "
                "a render never removes or replaces anything through a link",
                hint="remove the link (or the entry from the manifest), or choose another --out",
            )
        if not current.exists():
            return  # nothing further down exists either


def _owned_path(out: Path, relative: str, owned: dict[str, str]) -> Path:
    """Where a rendered file goes; refused when that would write through a link or over a file not ours."""
    from reproducer.gitops.manifest import safe_relative
    from reproducer.gitops.plan import deployment_file

    if not safe_relative(relative):
        raise InputError(f"refusing to write {relative!r} outside {out}", hint="this is a bug; please report it")
    path = out / relative
    for parent in [*reversed(PurePosixPath(relative).parents)][1:]:
        if (out / parent).is_symlink() or (out / parent).is_file():
            raise InputError(
                f"{out / parent} is a link or a file, where the render puts directory {parent}",
                hint="remove it, or choose another --out",
            )
    foreign = path.exists() or path.is_symlink()
    if foreign and relative not in owned and not deployment_file(relative):
        raise InputError(
            f"{path} exists and was not written by reproducer; the render would replace it",
            hint="move it away (or choose another --out): a render never overwrites files it did not write",
        )
    return path


def _make_parents(out: Path, paths: Iterable[Path], created: list[Path]) -> None:
    """Create the parent directories of ``paths``, appending each to ``created`` (removed after a failure)."""
    for parent in sorted({p.parent for p in paths}, key=lambda p: len(p.parts)):
        for directory in [*reversed(parent.relative_to(out).parents), parent.relative_to(out)]:
            if not (out / directory).exists():
                try:
                    (out / directory).mkdir()
                except OSError as error:
                    raise output_error(out / directory, error) from None
                created.append(out / directory)


def _remove_stale(out: Path, previous: dict[str, str]) -> dict[str, str]:
    """Remove files an earlier render wrote and this one does not, unless edited since or a deployment file.

    Returns the entries that stay in the manifest (deployment files a render or apply wrote, still ours).
    """
    from reproducer.gitops.manifest import digest
    from reproducer.gitops.plan import deployment_file

    kept: dict[str, str] = {}
    for relative, recorded in previous.items():
        path = out / relative
        if deployment_file(relative):
            kept[relative] = recorded
            continue
        _check_inside(out, relative)
        if not path.is_file() or digest(path.read_bytes()) != recorded:
            continue  # gone already, or the user's now (edited): not ours to remove
        try:
            path.unlink()
            for parent in path.relative_to(out).parents:
                if str(parent) != "." and not any((out / parent).iterdir()):
                    (out / parent).rmdir()
        except OSError as error:
            raise output_error(path, error) from None
    return kept


# ---- apply (local) --------------------------------------------------------------------------------


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
    #: Users whose passwords were generated here (kept in memory only).
    generated_passwords: list[str] = field(default_factory=list)
    #: ``host: task`` of the tasks that changed (or, with ``check``, would change), and their ``--diff``.
    changed_tasks: list[str] = field(default_factory=list)
    diff: str = ""


def apply_local(request: LocalApplyRequest, progress: Progress = _quiet) -> LocalService:
    """Render for ``local`` into ``out``, then run ``playbooks/local.yml`` (users' passwords vaulted in memory)."""
    import yaml

    from reproducer.resources import data_dir
    from reproducer.run.ansible import changed_tasks, diff_text, run_playbook
    from reproducer.targets.base import RenderOptions
    from reproducer.targets.common import base_context
    from reproducer.targets.local import DEPLOYMENT_KEYS, ansible_vars

    if request.render.target != "local":
        raise InputError(
            f"apply supports the local target here, not {request.render.target!r}",
            hint="apply with Terraform and Ansible on remote hosts is not implemented yet",
        )
    spec, _target, rendered = _render_in_memory(request.render)
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
    passwords |= {name: secrets.token_urlsafe(18) for name in generated}
    if "default" not in passwords:
        passwords["default"] = secrets.token_urlsafe(18)
    if "default" not in {u.name for u in spec.users}:
        variables["valkey_users"].append({"name": "default", "rules": "~* &* +@all"})
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


def destroy_local(out: Path, progress: Progress = _quiet) -> None:
    """Stop every process ``apply --target local`` started under ``out`` and remove its data."""
    from reproducer.resources import data_dir
    from reproducer.run.ansible import run_playbook

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


@contextlib.contextmanager
def scratch_dir(prefix: str) -> Iterator[Path]:
    """A private temporary directory (mode 0700), removed on every way out of the ``with`` block."""
    with tempfile.TemporaryDirectory(prefix=prefix, ignore_cleanup_errors=True) as name:
        yield Path(name)


def local_data_dir(out: Path) -> Path:
    """Where the local target's instances keep their files: beside the output directory, never inside it."""
    return out.with_name(f"{out.name}.valkey-data")


def _local_host() -> dict[str, str]:
    import sys

    return {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}


# ---- plan ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlanRequest:
    """What ``plan`` compares: a fresh render (in memory) against the committed directory ``render.out``."""

    render: RenderRequest
    terraform: str = "offline"
    #: Users' passwords for an Ansible check of a deployed target (the same as ``apply`` was given).
    passwords: dict[str, str] | None = field(default=None, repr=False)
    #: selfmanaged: the hosts to check with ``--check --diff`` (and extra variables, as given to ``apply``).
    inventory: Path | None = None
    variables: Path | None = None


def plan(request: PlanRequest, progress: Progress = _quiet) -> PlanReport:
    """Render into memory, diff against ``out``, and plan the Terraform (offline: schema-checked, empty state)."""
    from reproducer.gitops.plan import PlanReport, file_diffs
    from reproducer.targets.compat import summary

    if request.terraform not in ("offline", "none"):
        raise InputError(f"unknown --terraform mode {request.terraform!r}", hint="use offline or none")
    spec, target, rendered = _render_in_memory(request.render)
    committed = request.render.out
    mode = request.terraform if target.terraform_providers else "none"
    report = PlanReport(
        target=request.render.target,
        source=f"{spec.source.provider}:{spec.source.service_id}",
        files=file_diffs(rendered.files, committed),
        terraform_mode=mode,
        compatibility=summary(rendered.rows),
    )
    if mode == "offline":
        progress("planning the committed and the new Terraform offline (real provider schemas)")
        report.resources = _offline_comparison(rendered.files, committed, target.terraform_providers)
        report.notes.append(
            "Offline plan: both the committed and the new output are planned against the real provider schemas "
            "and compared resource by resource (no cloud account is read)."
        )
    if request.render.target == "local":
        report.ansible = _local_check(request, progress)
    elif request.render.target == "selfmanaged" and request.inventory is not None:
        report.ansible = _selfmanaged_check(request, progress)
    return report


def _selfmanaged_check(request: PlanRequest, progress: Progress) -> AnsibleCheck:
    """``--check --diff`` of the new render's ``ansible/site.yml`` on the inventory's hosts (nothing changes)."""
    from reproducer.gitops.plan import AnsibleCheck
    from reproducer.pipeline.selfmanaged import SelfManagedApplyRequest, apply_selfmanaged

    with scratch_dir("reproducer-check-") as scratch:
        check = SelfManagedApplyRequest(
            replace(request.render, out=scratch / "out"),
            request.inventory,
            request.variables,
            request.passwords,
            check=True,
        )
        service = apply_selfmanaged(check, progress)
    where = f"{len(set(service.data_hosts) | set(service.sentinel_hosts))} host(s)"
    return AnsibleCheck(service.changed, service.changed_tasks, service.diff, where)


def _deployed_base_port(deployment: Path) -> int:
    """The first port of the instances ``apply`` recorded in ``ansible/deployment.yml``.

    The file may come from a pull request: every port and directory in it is checked before anything runs.
    """
    import yaml

    try:
        return _checked_deployment(yaml.safe_load(deployment.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        reason = type(error).__name__
    except ValueError as error:
        reason = str(error)
    raise InputError(
        f"{deployment} does not say where the local target runs ({reason})",
        hint="'reproducer apply --target local' writes it: apply again, or remove the file to plan without the "
        "Ansible check",
    )


def _checked_deployment(data: Any) -> int:
    """The base port of a deployment record; ValueError naming the first field that is not a port or a directory."""
    instances = data.get("valkey_instances") if isinstance(data, dict) else None
    if not isinstance(instances, list) or not instances:
        raise ValueError("valkey_instances is not a non-empty list")
    for index, instance in enumerate(instances):
        if not isinstance(instance, dict):
            raise ValueError(f"valkey_instances[{index}] is not a mapping")
        _check_port(instance.get("port"), f"valkey_instances[{index}].port")
        if "primary_port" in instance:
            _check_port(instance["primary_port"], f"valkey_instances[{index}].primary_port")
    sentinels = data.get("valkey_sentinel_ports", [])
    if not isinstance(sentinels, list):
        raise ValueError("valkey_sentinel_ports is not a list")
    for index, port in enumerate(sentinels):
        _check_port(port, f"valkey_sentinel_ports[{index}]")
    if "valkey_base_dir" in data:
        _check_directory(data["valkey_base_dir"], "valkey_base_dir")
    base_port: int = instances[0]["port"]
    return base_port


def _check_port(value: Any, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise ValueError(f"{name} is not a port number (1-65535)")


def _check_directory(value: Any, name: str) -> None:
    if not isinstance(value, str) or not PurePosixPath(value).is_absolute():
        raise ValueError(f"{name} is not an absolute path")
    if any(ord(char) < 32 or ord(char) == 127 for char in value):
        raise ValueError(f"{name} holds a control character")


def _check_local_ports(variables: dict[str, Any], base_port: int) -> None:
    """Refuse a base port that puts an instance or a Sentinel outside 1-65535 (before Ansible runs)."""
    ports = [i["port"] for i in variables["valkey_instances"]] + list(variables["valkey_sentinel_ports"])
    if ports and not 1 <= min(ports) <= max(ports) <= 65535:
        raise InputError(
            f"base port {base_port} puts the local instances on ports {min(ports)}-{max(ports)}, beyond 1-65535",
            hint="use a lower base port (a plan reads it from the committed ansible/deployment.yml)",
        )


def _local_check(request: PlanRequest, progress: Progress) -> AnsibleCheck | None:
    """``--check --diff`` of the local playbook against the target deployed from the committed directory."""
    from reproducer.gitops.plan import AnsibleCheck

    committed = request.render.out.resolve()
    deployed, deployment = local_data_dir(committed), committed / "ansible" / "deployment.yml"
    if not deployed.is_dir() or not deployment.is_file():
        return None
    base_port = _deployed_base_port(deployment)
    progress(f"Ansible --check --diff against the instances in {deployed}")
    with scratch_dir("reproducer-check-") as scratch:
        check = LocalApplyRequest(
            render=replace(request.render, out=scratch / "out"),
            base_port=base_port,
            passwords=request.passwords,
            check=True,
            data_dir=deployed,
        )
        service = apply_local(check, progress)
    return AnsibleCheck(service.changed, service.changed_tasks, service.diff, "this machine")


def _offline_comparison(files: dict[str, str], committed: Path, providers: tuple[str, ...]) -> list[ResourcePlan]:
    """Resources added, changed or removed between the committed output and the new render."""
    from reproducer.gitops.plan import committed_files, compare_resources
    from reproducer.offline import install_mirror

    with scratch_dir("reproducer-plan-") as scratch:
        cli_config = install_mirror(scratch / "mirror", list(providers))
        new = _planned_resources(files, scratch / "new", cli_config)
        owned = committed_files(committed).items()
        old_files = {k: p.read_text() for k, p in owned if k.startswith("terraform/") and k.count("/") == 1}
        old = _planned_resources(old_files, scratch / "old", cli_config) if "terraform/main.tf" in old_files else {}
        return compare_resources(old, new)


def _planned_resources(files: dict[str, str], root: Path, cli_config: Path) -> dict[str, Any]:
    """``address → planned values`` of a configuration planned offline against an empty state."""
    from reproducer.run.terraform import Terraform

    workdir = root / "terraform"
    for relative, text in files.items():
        if relative.startswith("terraform/") and not relative.endswith(("terraform.tfvars", ".tfstate")):
            (root / relative).parent.mkdir(parents=True, exist_ok=True)
            (root / relative).write_text(text, encoding="utf-8")
    if (workdir / "terraform.tfvars.example").exists():
        shutil.copy(workdir / "terraform.tfvars.example", workdir / "terraform.tfvars")
    tf = Terraform(workdir, cli_config=cli_config)
    tf.init(backend=False)
    changes = tf.plan().raw.get("resource_changes", [])
    return {c["address"]: c["change"].get("after") for c in changes if c.get("mode", "managed") == "managed"}


def drift(spec_path: Path, options: InspectOptions, progress: Progress = _quiet) -> list[Difference]:
    """Compare a committed spec with the live service it was read from."""
    from reproducer.gitops.drift import differences
    from reproducer.model import load_spec

    committed = load_spec(spec_path)
    if options.project != committed.source.project and options.project:
        progress(f"note: the spec comes from project {committed.source.project}, reading {options.project}")
    request = replace(
        options,
        project=options.project or committed.source.project,
        service=options.service or committed.source.service_id,
    )
    [live] = inspect(request, progress)
    return differences(committed.to_dict(), live.to_dict())


# ---- migrate (data) -------------------------------------------------------------------------------

MIGRATION_USER = "reproducer-migration"
_TARGET_PASSWORD = "REPRODUCER_TARGET_PASSWORD"
_PASSWORD_VARIABLE = "REPRODUCER_MIGRATION_PASSWORD"


@dataclass(frozen=True)
class MigrateRequest:
    """Move the data of an OVH service into an existing target, with temporary access that is always undone."""

    inspect: InspectOptions
    target_url: str
    run_dir: Path
    allow_cidr: str | None = None
    source_ca: Path | None = None
    copy: CopyOptions = field(default_factory=CopyOptions)
    follow: FollowOptions | None = None
    resume: bool = False
    #: Extra variables for the endpoints' ``password_env`` (kept in memory, e.g. a target's password).
    environ: dict[str, str] = field(default_factory=dict, repr=False)
    data_progress: DataProgress | None = None


@dataclass
class MigrateResult:
    """What a migration did."""

    copy: CopyResult
    verify: VerifyReport
    run_dir: Path


def migrate_data(request: MigrateRequest, progress: Progress = _quiet) -> MigrateResult:
    """Inspect → temporary access (allow-list entry, migration user) → copy (→ follow) → verify → undo access.

    Every grant is written to ``run.json`` before it is asked for, and undone at the end, on failure, and by a
    ``--resume`` after a crash. The ``default`` user is never touched.
    """
    from reproducer.sources.ovh import OvhApiClient, OvhServiceAccess, make_client

    [spec] = inspect(request.inspect, progress)
    state = _run_state(request.run_dir, resume=request.resume)
    atomic_write(request.run_dir / "spec.yaml", spec.to_yaml())
    client = make_client(request.inspect.endpoint, request.inspect.config_file, request.inspect.credentials)
    access = OvhServiceAccess(OvhApiClient(client, request.inspect.retry, progress), *_service_of(spec))
    _undo_access(access, state, request.run_dir, progress)  # what a crashed run left behind
    try:
        source_url, password = _grant_access(access, spec, request, state, progress)
        options = replace(request.copy, resume=request.resume and (request.run_dir / "data").exists())
        result = copy_data(
            source_url,
            request.target_url,
            options,
            request.run_dir,
            request.data_progress,
            request.follow,
            environ={**request.environ, _PASSWORD_VARIABLE: password},
        )
        env = {**os.environ, **request.environ, _PASSWORD_VARIABLE: password}
        report = verify_keys(
            parse_endpoint(source_url, environ=env),
            parse_endpoint(request.target_url, environ=env),
            VerifyOptions(dbs=options.dbs, match=options.match),
        )
        atomic_write(request.run_dir / "data" / "verify.json", json.dumps(report.to_dict(), indent=2) + "\n")
    except BaseException as failure:  # Ctrl-C and SIGTERM (Interrupted) included
        _undo_after_failure(access, state, request.run_dir, progress, failure)
        raise
    _undo_access(access, state, request.run_dir, progress)
    return MigrateResult(result, report, request.run_dir)


def _service_of(spec: ServiceSpec) -> tuple[str, str]:
    return spec.source.project, spec.source.service_id


def _run_state(run_dir: Path, *, resume: bool) -> dict[str, Any]:
    path = run_dir / "run.json"
    if resume and not path.exists():
        raise InputError(f"nothing to resume in {run_dir}", hint="pass the --run-dir of the interrupted migration")
    if not resume and path.exists():
        raise InputError(f"{run_dir} already holds a migration", hint="pass --resume, or choose a new --run-dir")
    run_dir.mkdir(parents=True, exist_ok=True)
    if not resume:
        return {"format_version": "1.0", "grants": {}}
    state = read_state_file(path, {"grants": dict})
    if not all(isinstance(grant, dict) for grant in state["grants"].values()):
        raise InputError(f"{path} is not the state of a migration", hint=_STATE_HINT)
    return state


_STATE_HINT = "it was changed or damaged: remove any temporary access by hand, then start with a new --run-dir"


def read_state_file(path: Path, fields: dict[str, type]) -> dict[str, Any]:
    """A run directory's JSON state (``run.json``, ``job.json``): a mapping whose ``fields`` have their types.

    The run directory may have been damaged or edited: anything else is an ``InputError``, never a crash.
    """
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(f"cannot read {path}: {type(error).__name__}", hint=_STATE_HINT) from None
    if not isinstance(state, dict) or not all(isinstance(state.get(k), t) for k, t in fields.items()):
        raise InputError(f"{path} is not a state file reproducer wrote", hint=_STATE_HINT)
    return state


def _save_state(run_dir: Path, state: dict[str, Any]) -> None:
    atomic_write(run_dir / "run.json", json.dumps(state, indent=2, sort_keys=True) + "\n")


def _grant_access(
    access: Any, spec: ServiceSpec, request: MigrateRequest, state: dict[str, Any], progress: Progress
) -> tuple[str, str]:
    """Record, then make, the allow-list entry and the migration user; return the source URL and password."""
    if request.allow_cidr:
        state["grants"]["allow_cidr"] = {"cidr": request.allow_cidr, "added": None}
        _save_state(request.run_dir, state)
        added = access.allow(request.allow_cidr, "reproducer migration (temporary)")
        state["grants"]["allow_cidr"]["added"] = added
        progress(f"allow-list: {request.allow_cidr} {'added' if added else 'was already allowed'}")
    state["grants"]["user"] = {"name": MIGRATION_USER, "id": None}
    _save_state(request.run_dir, state)
    user_id, password = access.create_user(MIGRATION_USER)
    state["grants"]["user"]["id"] = user_id
    _save_state(request.run_dir, state)
    progress(f"temporary user {MIGRATION_USER} created (read, scan, dump, follow)")
    return _source_url(spec, request.source_ca), password


def _source_url(spec: ServiceSpec, ca: Path | None) -> str:
    endpoint = next((e for e in spec.endpoints if e.component == "valkey"), None)
    if endpoint is None:
        raise InputError("the service lists no valkey endpoint", hint="check the service in the OVH control panel")
    scheme = "valkeys" if endpoint.tls else "valkey"
    query = f"password_env={_PASSWORD_VARIABLE}" + (f"&ca={ca}" if ca else "")
    return f"{scheme}://{MIGRATION_USER}@{endpoint.host}:{endpoint.port}?{query}"


def _undo_access(access: Any, state: dict[str, Any], run_dir: Path, progress: Progress) -> None:
    """Remove the migration user and the allow-list entry this run (or a crashed one) added.

    Each grant is undone on its own (the API client retries 429/5xx with backoff, bounded) and leaves
    ``run.json`` only once removed, so a failure on one still tries the other, and what remains is undone by
    ``--resume``: the error's hint says so.
    """
    grants = state.setdefault("grants", {})
    failures: list[str] = []
    for name, undo in (("user", _undo_user), ("allow_cidr", _undo_cidr)):
        if grants.get(name) is None:
            continue
        try:
            undo(access, grants[name], progress)
        except ReproducerError as error:
            failures.append(error.message)
            continue
        del grants[name]
        _save_state(run_dir, state)
    _save_state(run_dir, state)
    if failures:
        raise SourceUnavailableError(
            f"the temporary access on the source could not be removed: {'; '.join(failures)}",
            hint=f"{run_dir / 'run.json'} lists it; run the same 'reproducer migrate ...' command with "
            f"--resume --run-dir {run_dir} to remove it (or remove it in the OVH control panel)",
            retryable=True,
        )


def _undo_user(access: Any, user: dict[str, Any], progress: Progress) -> None:
    user_id = user.get("id") or access.find_user(user["name"])
    if user_id:
        access.delete_user(user_id)
        progress(f"temporary user {user['name']} removed")


def _undo_cidr(access: Any, cidr: dict[str, Any], progress: Progress) -> None:
    if cidr.get("added") is not False:
        access.revoke(cidr["cidr"])
        progress(f"allow-list: {cidr['cidr']} removed")


def _undo_after_failure(
    access: Any, state: dict[str, Any], run_dir: Path, progress: Progress, failure: BaseException
) -> None:
    """Undo the grants after ``failure``; if that fails too, say so without hiding the first failure."""
    try:
        _undo_access(access, state, run_dir, progress)
    except ReproducerError as cleanup:
        if isinstance(failure, ReproducerError):
            failure.hint = f"{failure.hint}; also: {cleanup.message} ({cleanup.hint})".lstrip("; ")
        else:
            progress(f"{cleanup.message}: {cleanup.hint}")


# ---- data: copy, verify, export, import ----------------------------------------------------------


def new_run_dir(base: Path | None = None) -> Path:
    """A fresh run directory path ``runs/<timestamp>-<random>`` (created when a phase first writes to it)."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    return (base or Path("runs")) / f"{stamp}-{secrets.token_hex(2)}"


@dataclass(frozen=True)
class FollowOptions:
    """Keep following the source after the copy until ``stop`` is set (or ``seconds`` pass)."""

    stop: threading.Event
    seconds: float | None = None
    progress: Callable[[FollowStats], None] | None = None
    #: Set once the bulk copy is done and following began (before that, a signal interrupts the copy).
    following: threading.Event = field(default_factory=threading.Event)


def copy_data(
    source_url: str,
    target_url: str,
    options: CopyOptions,
    run_dir: Path,
    progress: DataProgress | None = None,
    follow: FollowOptions | None = None,
    environ: dict[str, str] | None = None,
) -> CopyResult:
    """Copy keys between two endpoints, checkpointing in ``run_dir/data``; stats land in ``stats.json``.

    With ``follow``, keyspace notifications are subscribed to before the copy starts, and changes are
    re-copied until ``follow.stop`` is set; what the follower did is added to the result's notes.
    """
    env = {**os.environ, **environ} if environ else None
    source, target = parse_endpoint(source_url, environ=env), parse_endpoint(target_url, environ=env)
    # Saved after every confirmed batch: a signal cannot wait for the copy's threads to save it at their end.
    options = replace(options, checkpoint=run_dir / "data" / "checkpoint.json", checkpoint_every=1)
    follower = Follower(source, target, dbs=options.dbs) if follow else None
    if follower is not None:
        follower.start()
    try:
        result = in_background(lambda: copy_keys(source, target, options, progress), "reproducer-copy")
    except BaseException:
        if follower is not None:
            with contextlib.suppress(Exception):
                follower.stop()
        raise
    if follower is not None and follow is not None:
        follower.copy_done.set()
        result.notes.extend(_follow_until(follower, follow))
    stats = {
        "format_version": "1.0",
        "source": source.url,
        "target": target.url,
        "seconds": round(result.seconds, 3),
        "keys_per_second": round(result.keys_per_second),
        "source_keys": result.source_keys,
        "total": asdict(result.total),
        "per_node": {k: asdict(v) for k, v in result.per_node.items()},
        "notes": result.notes,
    }
    (run_dir / "data").mkdir(parents=True, exist_ok=True)
    atomic_write(run_dir / "data" / "stats.json", json.dumps(stats, indent=2) + "\n")
    return result


def in_background(work: Callable[[], _T], name: str) -> _T:
    """Run ``work`` in a daemon thread while this (main) thread waits in short slices, and return its result.

    A signal handler runs only in the main thread, and only between its own steps: a thread pool's
    ``result()`` and ``shutdown()`` would hold it until the whole copy ends. Waiting here, an ``Interrupted``
    is raised within a fraction of a second; the copy's own threads keep only confirmed keys in its checkpoint.
    """
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = work()
        except BaseException as error:  # handed to the waiting thread, raised there
            outcome["error"] = error

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    while thread.is_alive():
        thread.join(0.2)
    if "error" in outcome:
        raise outcome["error"]
    value: _T = outcome["value"]
    return value


def enable_ovh_notifications(
    project: str, service: str, endpoint: str | None = None, config_file: Path | None = None
) -> tuple[str | None, str]:
    """Switch keyspace notifications on for an OVH service through its advanced configuration.

    Returns (previous value, value now); the caller tells the user how to put the previous value back.
    """
    from reproducer.sources.ovh import OvhApiClient, enable_keyspace_notifications, make_client

    api = OvhApiClient(make_client(endpoint, config_file))
    return enable_keyspace_notifications(api, project, service)


def _follow_until(follower: Follower, follow: FollowOptions) -> list[str]:
    """Wait for the stop signal (or the time limit), drain, and describe what the follower did."""
    deadline = time.monotonic() + follow.seconds if follow.seconds is not None else None
    follow.following.set()
    while not follow.stop.is_set() and not follower.stop_event.is_set():
        if deadline is not None and time.monotonic() >= deadline:
            break
        if follow.progress:
            follow.progress(follower.stats)
        follow.stop.wait(0.5)
    stats = follower.stop()
    summary = (
        f"follow: {stats.events} event(s), {stats.recopied} key(s) re-copied, {stats.deleted} deleted, "
        f"max lag {stats.max_lag_ms} ms"
    )
    return [summary, *stats.warnings]


def verify_data(source_url: str, target_url: str, options: VerifyOptions, run_dir: Path | None = None) -> VerifyReport:
    """Compare two endpoints; the report also lands in ``run_dir/data/verify.json`` when given."""
    report = verify_keys(parse_endpoint(source_url), parse_endpoint(target_url), options)
    if run_dir is not None:
        (run_dir / "data").mkdir(parents=True, exist_ok=True)
        atomic_write(run_dir / "data" / "verify.json", json.dumps(report.to_dict(), indent=2) + "\n")
    return report


def export_data(
    source_url: str,
    path: Path,
    fmt: str | None = None,
    *,
    dbs: tuple[int, ...] | None = None,
    match: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Export every key of an endpoint to a JSONL, RDB or AOF file (written whole, then renamed)."""
    module = format_module(fmt or format_from_path(str(path)))
    with atomic_output(path) as tmp:
        count: int = module.export(parse_endpoint(source_url), tmp, dbs=dbs, match=match, progress=progress)
    return count


def import_data(
    path: Path,
    target_url: str,
    fmt: str | None = None,
    *,
    conflict: Literal["refuse", "replace", "skip"] = "refuse",
    progress: Callable[[int], None] | None = None,
) -> tuple[int, int, int]:
    """Import a JSONL, RDB or AOF file into an endpoint; returns (written, expired, skipped).

    ``conflict`` is copy's policy: a non-empty target is refused unless keys are replaced or skipped.
    """
    if not path.exists():
        raise InputError(f"{path} does not exist", hint="check the path")
    module = format_module(fmt or format_from_path(str(path)))
    target = parse_endpoint(target_url)
    written: tuple[int, int, int] = module.load(path, target, conflict=conflict, progress=progress)
    return written
