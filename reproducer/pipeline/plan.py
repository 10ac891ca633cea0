"""``plan``: what a new render would change in a committed output directory, for a pull request.

The new render stays in memory. The committed Terraform is applied offline (providers serving the real schemas,
fake computed values) and the new one is planned against that state, so Terraform itself says what is created,
updated, replaced (the offline providers name the attributes that force it) or destroyed. For a target
reproducer applies, the playbook also runs with ``--check --diff`` against what was deployed from the committed
directory.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from reproducer.errors import InputError
from reproducer.gitops.manifest import read_manifest
from reproducer.gitops.plan import (
    AnsibleCheck,
    PlanReport,
    ResourcePlan,
    committed_files,
    file_diffs,
    stable_paths,
    terraform_resources,
    to_json,
    to_markdown,
)
from reproducer.offline import install_mirror, offline_provider
from reproducer.offline.replace import forcing_attributes
from reproducer.offline.schema import ProviderSchema
from reproducer.offline.schema import load as load_schema
from reproducer.pipeline.apply import LocalApplyRequest, apply_local, local_data_dir
from reproducer.pipeline.backend import BACKEND_FILE, declared_backends
from reproducer.pipeline.files import scratch_dir, user_named
from reproducer.pipeline.progress import Progress, quiet
from reproducer.pipeline.render import RenderRequest, render_in_memory
from reproducer.pipeline.selfmanaged import SelfManagedApplyRequest, apply_selfmanaged
from reproducer.run.terraform import BACKEND_CREDENTIALS, Terraform, TerraformError
from reproducer.targets import target_entry
from reproducer.targets.compat import summary


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
    #: ``--terraform state``: files of backend settings for ``terraform init -backend-config`` (the environment
    #: gives the rest, credentials included).
    backend_configs: tuple[Path, ...] = ()
    #: ``--new``: ``render.out`` is meant to hold no render yet (a first render: every file and resource added).
    new: bool = False


#: The ``--terraform`` modes: against the committed output applied offline, against the real state, or files only.
MODES = ("offline", "state", "none")


def plan(request: PlanRequest, progress: Progress = quiet) -> PlanReport:
    """Render into memory, diff against ``out``, plan the Terraform against the committed output (or the real state)."""
    if request.terraform not in MODES:
        raise InputError(f"unknown --terraform mode {request.terraform!r}", hint=f"use one of {', '.join(MODES)}")
    configs = _checked_backend_configs(request.backend_configs, request.terraform)
    memory = render_in_memory(request.render)
    _check_committed(request.render.out, request.new)
    spec, target, rendered = memory.spec, memory.target, memory.rendered
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
        progress("applying the committed Terraform offline, then planning the new one against it")
        report.resources = _offline_comparison(rendered.files, committed, target.terraform_providers)
        report.notes.append(
            "Offline plan: the committed output is applied with offline providers that serve the real schemas, "
            "then the new output is planned against that state (no cloud account is read). Replacements follow "
            "the providers' ForceNew facts (docs/reference/terraform-offline.md#replacements); a renamed resource, "
            "which Terraform plans as a destroy and a create, is shown as one replacement."
        )
    elif mode == "state":
        progress("planning the new render against the real state in the committed output's backend (read-only)")
        kind, report.resources = _state_comparison(rendered.files, committed, target.terraform_providers, configs)
        report.notes.append(
            f"Planned against the real state in the {kind} backend, read-only: terraform init and plan with "
            "-lock=false (no lock is taken, so none can outlive the run) and -refresh=false (the state as recorded; "
            "no cloud API is read: `reproducer drift` compares with the live service); nothing is applied or written "
            "to the state."
        )
    applier = target_entry(request.render.target).applier
    if applier == "local":
        report.ansible = _local_check(request, progress)
    elif applier == "hosts" and request.inventory is not None:
        report.ansible = _hosts_check(request, progress)
    return report


def _check_committed(out: Path, new: bool) -> None:
    """Refuse an ``--out`` that is missing or empty (a mistyped path would plan "everything added"), unless ``new``.

    Raises:
        InputError: nothing in ``out`` without ``new``, or a render there with ``new``.
    """
    if new:
        if out.is_dir() and committed_files(out):
            raise InputError(
                f"--new says {out} holds no render yet, but it holds one",
                hint="drop --new to plan against the committed render there",
            )
        return
    if out.is_dir() and any(out.iterdir()):
        return
    state = "does not exist" if not out.exists() else "is not a directory" if not out.is_dir() else "is empty"
    raise InputError(
        f"{out} {state}: there is no committed render to compare with, so every file and resource would show as added",
        hint="check the --out path (the directory 'reproducer render' wrote and you committed), or pass --new for "
        "a first render into a new directory",
    )


def plan_text(report: PlanReport, fmt: str) -> str:
    """The report as the pull-request comment (``markdown``) or as JSON (``json``)."""
    return to_json(report) if fmt == "json" else to_markdown(report)


def _hosts_check(request: PlanRequest, progress: Progress) -> AnsibleCheck:
    """``--check --diff`` of the new render's ``ansible/site.yml`` on the inventory's hosts (nothing changes)."""
    with scratch_dir("reproducer-check-") as scratch:
        check = SelfManagedApplyRequest(
            replace(request.render, out=scratch / "out"),
            request.inventory,
            request.variables,
            request.passwords,
            check=True,
        )
        service = apply_selfmanaged(check, progress)
        tasks = [stable_paths(task, scratch) for task in service.changed_tasks]
        diff = stable_paths(service.diff, scratch)
    where = f"{len(set(service.data_hosts) | set(service.sentinel_hosts))} host(s)"
    return AnsibleCheck(service.changed, tasks, diff, where)


def _deployed_base_port(deployment: Path) -> int:
    """The first port of the instances ``apply`` recorded in ``ansible/deployment.yml``.

    The file may come from a pull request: every port and directory in it is checked before anything runs.
    """
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


def _local_check(request: PlanRequest, progress: Progress) -> AnsibleCheck | None:
    """``--check --diff`` of the local playbook against the target deployed from the committed directory."""
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
        tasks = [stable_paths(task, scratch) for task in service.changed_tasks]
        diff = stable_paths(service.diff, scratch)
    return AnsibleCheck(service.changed, tasks, diff, "this machine")


def _offline_comparison(files: dict[str, str], committed: Path, providers: tuple[str, ...]) -> list[ResourcePlan]:
    """What applying the new render does to what the committed output made (applied offline first).

    The committed Terraform is applied with the offline providers into a scratch state, then the new render is
    planned against that state: Terraform itself then says create, update, replace (the offline providers
    return the attributes that force replacement) or destroy, attribute by attribute. Outputs are left out of
    both (their fake values mean nothing; ``outputs.tf`` is compared as a file).
    """
    owned = committed_files(committed).items()
    old_files = {k: p.read_text(encoding="utf-8") for k, p in owned if _terraform_file(k) and not user_named(k)}
    with scratch_dir("reproducer-plan-") as scratch:
        mirror = install_mirror(scratch / "mirror", list(providers))
        tf = Terraform(scratch / "terraform", cli_config=mirror, backend_credentials=False)
        _local_backend(scratch / "terraform")
        if "terraform/main.tf" in old_files:
            _apply_committed(tf, old_files, scratch, committed)
        _write_terraform(files, scratch)
        if "terraform/main.tf" not in old_files or old_files.get(_VERSIONS) != files.get(_VERSIONS):
            tf.init()  # the providers changed (versions.tf holds required_providers)
        changes = tf.plan().raw.get("resource_changes", [])
    schemas = _schemas(providers)
    return terraform_resources(changes, sensitive=lambda *a: _schema_sensitive(schemas, *a), forces=_forces)


_VERSIONS = "terraform/versions.tf"
#: What the committed files may not hold, refused before ``init`` (which fetches modules) and ``plan`` (which
#: reads remote states and evaluates functions): a ``module`` block (labels may be quoted or bare in HCL), a
#: remote state data source, a call of a function that reads this machine's files (its content would land in an
#: attribute the plan comment shows).
_BEFORE_INIT = {
    "a module block": re.compile(r'^\s*module(?:\s+["A-Za-z_]|")', re.MULTILINE),
    "a terraform_remote_state data source": re.compile(r'^\s*data\s*"?terraform_remote_state\b', re.MULTILINE),
}
_FILE_FUNCTION = re.compile(
    r"\b(?:file|filebase64|filebase64sha256|filebase64sha512|filemd5|filesha1|filesha256|filesha512|fileexists"
    r"|fileset|templatefile|abspath|pathexpand)\s*\("
)
#: A quoted HCL string, and an interpolation inside one (``$${`` is an escaped, literal ``${``).
_STRING = re.compile(r'"(?:[^"\\\n]|\\.)*"')
_INTERPOLATION = re.compile(r"(?<!\$)\$\{")
_COMMENT = re.compile(r"(?:#|//).*$", re.MULTILINE)


def _expressions(text: str) -> str:
    """``text`` without its literal strings and comments: what Terraform evaluates (interpolated strings stay)."""
    kept = _STRING.sub(lambda m: m.group(0) if _INTERPOLATION.search(m.group(0)) else '""', text)
    return _COMMENT.sub("", kept)


def _apply_committed(tf: Terraform, files: dict[str, str], scratch: Path, committed: Path) -> None:
    """Apply the committed Terraform offline (the state the new render is planned against), then remove its files.

    The committed files come from a pull request: what would fetch code or read other states is refused before
    ``init``, and a plan with provisioners (they run commands at apply) before it is applied.
    """
    _refuse(_forbidden_text(files), committed)
    _write_terraform(files, scratch)
    try:
        tf.init()  # the local backend of _local_backend's override: no backend of the committed output is reached
        planned = tf.plan()
        _refuse(_code_in(planned.raw.get("configuration", {})), committed)
        tf.apply(planned)
    except TerraformError as error:
        raise TerraformError(
            f"the committed Terraform in {committed / 'terraform'} cannot be applied offline, so the new render "
            f"cannot be planned against it: {error.message}",
            hint="plan compares the new render with what the committed output makes; render the committed output "
            "again with this version, or use --terraform none to compare files only",
            command=error.command,
            diagnostics=error.diagnostics,
        ) from error
    for relative in files:
        (scratch / relative).unlink(missing_ok=True)


def _forbidden_text(files: dict[str, str]) -> list[str]:
    """What of :data:`_BEFORE_INIT`, and which calls of :data:`_FILE_FUNCTION`, the files hold, and where."""
    found: list[str] = []
    for name, text in sorted(files.items()):
        found += [f"{what} in {name}" for what, pattern in _BEFORE_INIT.items() if pattern.search(text)]
        if _FILE_FUNCTION.search(_expressions(text)):
            found.append(f"a function reading local files in {name}")
    return found


def _code_in(configuration: dict[str, Any]) -> list[str]:
    """The provisioners and module calls of a planned configuration (``terraform show -json``'s)."""
    root = configuration.get("root_module", {})
    found = [f"a provisioner in {r.get('address', '?')}" for r in root.get("resources", []) if r.get("provisioners")]
    return found + [f"module {name}" for name in sorted(root.get("module_calls", {}))]


def _refuse(found: list[str], committed: Path) -> None:
    """Refuse committed Terraform that would run or fetch code, or read other states (reproducer renders none).

    Raises:
        InputError: naming what was found.
    """
    if found:
        raise InputError(
            f"the committed Terraform in {committed / 'terraform'} declares {', '.join(found[:5])}: reproducer "
            "renders no provisioner, module, remote state or file-reading function, and plan will not run one",
            hint="remove them from the committed output (render it again), or use --terraform none to compare "
            "files only",
        )


def _terraform_file(relative: str) -> bool:
    """A file of the root module that ``plan`` compares: ``*.tf`` but outputs, and the example values."""
    top = relative.startswith("terraform/") and relative.count("/") == 1
    kept = relative.endswith(".tf") and not relative.endswith("/outputs.tf")
    return top and (kept or relative == "terraform/terraform.tfvars.example")


def _write_terraform(files: dict[str, str], root: Path) -> None:
    """Write the root module's files under ``root/terraform``, with the example values as ``terraform.tfvars``."""
    workdir = root / "terraform"
    workdir.mkdir(parents=True, exist_ok=True)
    for relative, text in files.items():
        if _terraform_file(relative):
            (root / relative).write_text(text, encoding="utf-8")
    if (workdir / "terraform.tfvars.example").exists():
        shutil.copy(workdir / "terraform.tfvars.example", workdir / "terraform.tfvars")


#: The scratch copy's override: Terraform merges ``*_override.tf`` files last, in lexicographic order, and an
#: override's ``backend`` block replaces the original one, so the plan keeps its state in the scratch directory
#: whatever backend the committed output declares (``init -backend=false`` would leave a declared backend
#: uninitialised, and ``plan`` then refuses to run). docs/reference/gitops.md#state-backends
_OFFLINE_OVERRIDE = "zz_reproducer_offline_override.tf"


def _local_backend(workdir: Path) -> None:
    """Write the scratch override that replaces any backend of the committed output by a local state."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / _OFFLINE_OVERRIDE).write_text(
        "# reproducer plan (offline): the state stays in this scratch directory, whatever backend is declared.\n"
        'terraform {\n  backend "local" {}\n}\n',
        encoding="utf-8",
    )


def _checked_backend_configs(paths: tuple[Path, ...], mode: str) -> tuple[Path, ...]:
    """The ``--backend-config`` files as absolute paths Terraform reads as files (never as ``key=value``).

    Raises:
        InputError: given without ``--terraform state``, not a regular file, or a path holding ``=`` (Terraform
            would take it for a setting) or a control character.
    """
    if paths and mode != "state":
        raise InputError("--backend-config is read only by --terraform state", hint="add --terraform state")
    checked = []
    for path in paths:
        resolved = Path(path).resolve()
        if not resolved.is_file():
            raise InputError(f"backend config {path} is not a file", hint="give the path of a backend.KIND.hcl file")
        if "=" in str(resolved) or any(ord(char) < 32 or ord(char) == 127 for char in str(resolved)):
            raise InputError(
                f"backend config path {str(resolved)!r} holds '=' or a control character, which Terraform would "
                "read as a setting rather than a file",
                hint="move or rename the file",
            )
        checked.append(resolved)
    return tuple(checked)


_USER_TERRAFORM_BYTES = 1 << 20


def _user_terraform(committed: Path, rendered: dict[str, str]) -> dict[str, str]:
    """The user's own root-module files of the committed output (``backend.tf``, overrides, tfvars), by path.

    Those the render does not own: ``*.tf``, ``*.tf.json``, ``terraform.tfvars`` and ``*.auto.tfvars``; never the
    provider lock (its hashes are the real providers', not the offline ones) nor links.
    """
    directory = committed / "terraform"
    if directory.is_symlink():
        raise InputError(
            f"{directory} is a link: plan reads no file through it",
            hint="commit the rendered directory itself, not a link to it",
        )
    owned = set(read_manifest(committed) or {}) | set(rendered)
    found: dict[str, str] = {}
    for path in sorted(directory.iterdir()) if directory.is_dir() else ():
        relative, name = f"terraform/{path.name}", path.name
        loaded = name.endswith((".tf", ".tf.json", ".auto.tfvars", ".auto.tfvars.json"))
        loaded = loaded or name in ("terraform.tfvars", "terraform.tfvars.json")
        if relative in owned or not loaded or path.is_symlink() or not path.is_file():
            continue
        if path.stat().st_size > _USER_TERRAFORM_BYTES:
            raise InputError(f"{path} is larger than 1 MiB", hint="plan reads root-module files of a usual size")
        try:
            found[relative] = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise InputError(f"cannot read {path}: {type(error).__name__}", hint="fix or remove the file") from None
    return found


def _backend_kind(files: dict[str, str], committed: Path) -> str:
    """The one backend the root module declares (``--terraform state`` reads the state from it).

    Raises:
        InputError: none, or more than one.
    """
    kinds = [(k, kind) for k, text in sorted(files.items()) for kind in declared_backends(text, k)]
    if len(kinds) == 1:
        return kinds[0][1]
    if not kinds:
        raise InputError(
            f"--terraform state plans against the state in the backend of {committed / 'terraform'}, which "
            "declares none",
            hint="render with --backend KIND (or keep your own backend.tf there), or plan with --terraform offline",
        )
    raise InputError(
        f"{committed / 'terraform'} declares {len(kinds)} backends ({', '.join(f'{k}: {v}' for k, v in kinds)}); "
        "Terraform takes one",
        hint=f"keep yours or reproducer's ({BACKEND_FILE}, removed by render --backend none)",
    )


def _state_comparison(
    files: dict[str, str], committed: Path, providers: tuple[str, ...], configs: tuple[Path, ...]
) -> tuple[str, list[ResourcePlan]]:
    """What applying the new render does to the real state in the committed output's backend (read-only).

    A scratch copy holds the new render's root module and the user's own files (``backend.tf``, overrides,
    tfvars) from the committed output, which is never modified. ``init`` reaches the backend with
    ``-lock=false``, ``plan`` runs with ``-lock=false -refresh=false`` against the offline providers, so neither
    a lock nor a cloud API call is made, and nothing writes to the state (no apply, no state push).
    """
    theirs = _user_terraform(committed, files)
    new = {k: text for k, text in files.items() if _terraform_file(k)}
    kind = _backend_kind({**new, **{k: t for k, t in theirs.items() if k.endswith((".tf", ".tf.json"))}}, committed)
    _refuse(_forbidden_text({**new, **theirs}), committed)
    with scratch_dir("reproducer-state-") as scratch:
        _write_terraform(files, scratch)
        for relative, text in theirs.items():
            (scratch / relative).write_text(text, encoding="utf-8")
        tf = Terraform(scratch / "terraform", cli_config=install_mirror(scratch / "mirror", list(providers)))
        try:
            tf.init(backend_configs=configs, lock=False)
            changes = tf.plan(refresh=False, lock=False).raw.get("resource_changes", [])
        except TerraformError as error:
            raise _unreadable_state(kind, committed, error) from error
    schemas = _schemas(providers)
    return kind, terraform_resources(changes, sensitive=lambda *a: _schema_sensitive(schemas, *a), forces=_forces)


#: What backends answer when they refuse the credentials (http: 401/403 as Terraform words them; pg: libpq;
#: s3/gcs/azurerm: the clouds' error codes): the error then exits 4, as every refused authentication does.
_REFUSED = re.compile(
    r"requires auth|invalid auth|password authentication failed|AccessDenied|InvalidAccessKeyId|"
    r"SignatureDoesNotMatch|ExpiredToken|AuthorizationFailed|AuthenticationFailed"
)


def _unreadable_state(kind: str, committed: Path, error: TerraformError) -> TerraformError:
    """The error for a backend ``init`` or ``plan`` could not read: exit 4 when the credentials were refused."""
    refused = bool(_REFUSED.search(" ".join([error.message, *(f"{d.summary} {d.detail}" for d in error.diagnostics)])))
    failure = TerraformError(
        f"the state in the {kind} backend of {committed / 'terraform'} cannot be read"
        + (" (the backend refused the credentials)" if refused else "")
        + f": {error.message}",
        hint=f"check that the backend is reachable from here and its settings and credentials "
        f"(--backend-config files; the environment: {_credential_names(kind)}), or plan with --terraform offline",
        command=error.command,
        diagnostics=error.diagnostics,
    )
    if refused:
        failure.exit_code = 4
    return failure


def _credential_names(kind: str) -> str:
    names = BACKEND_CREDENTIALS.get(kind, ())
    return ", ".join(names) if names else "see the backend's documentation"


def _schemas(keys: tuple[str, ...]) -> dict[str, ProviderSchema]:
    """The committed schema subsets of the providers ``keys``, by provider address."""
    loaded = [load_schema(offline_provider(key).schema) for key in keys]
    return {schema.address: schema for schema in loaded}


def _schema_sensitive(schemas: dict[str, ProviderSchema], provider: str, type_name: str, path: tuple[Any, ...]) -> bool:
    """Whether the provider's schema flags the attribute at ``path`` (or one holding it) as sensitive."""
    schema = schemas.get(provider)
    block = schema.resources[type_name].block if schema and type_name in schema.resources else None
    for name in (item for item in path if isinstance(item, str)):
        if block is None:
            return False
        attr = block.attributes.get(name)
        if attr is not None and attr.sensitive:
            return True
        nested = attr.nested if attr is not None else block.block_types.get(name)
        block = nested.block if nested is not None else None
    return False


def _forces(provider: str, type_name: str, attr: str) -> bool:
    return attr in forcing_attributes(provider, type_name)
