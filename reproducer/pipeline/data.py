"""The data commands: ``copy`` (and ``--follow``), ``verify``, ``export`` and ``import`` between Valkey endpoints.

The command-level requests (:class:`CopyRequest`, :class:`VerifyRequest`) hold the options as the user gave them;
the data layer's options (``CopyOptions``, ``VerifyOptions``) are built here, never in the CLI.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from reproducer.atomic import atomic_output, atomic_write, is_stream
from reproducer.data.copy import Conflict, CopyOptions, CopyResult, ReadMode, check_empty_target
from reproducer.data.copy import copy as copy_keys
from reproducer.data.endpoint import Endpoint, parse_endpoint
from reproducer.data.follow import Follower, FollowStats
from reproducer.data.formats import format_from_path, format_module
from reproducer.data.tunnel import SshTunnel, Via, parse_via
from reproducer.data.verify import VerifyOptions, VerifyReport
from reproducer.data.verify import verify as verify_keys
from reproducer.data.workers import forked_zygote
from reproducer.errors import InputError, OutputError
from reproducer.pipeline.files import remove_created
from reproducer.pipeline.progress import DataProgress
from reproducer.pipeline.resume import OPTIONS_FILE, save_copy_options, settle_copy_options

T_ = TypeVar("T_")
#: The command-line sizes are in MiB, like the 64 MiB default of ``CopyOptions``/``VerifyOptions.max_batch_bytes``.
MIB = 1024 * 1024


@dataclass(frozen=True)
class Vias:
    """The SSH bastions (``--via`` URLs) through which the source and the target are reached, when they are."""

    source: str | None = None
    target: str | None = None

    def parsed(self) -> dict[str, Via]:
        """Each side's bastion, checked (InputError before any ssh runs)."""
        return {side: parse_via(url) for side, url in (("source", self.source), ("target", self.target)) if url}


NO_VIA = Vias()


@dataclass
class Routes:
    """The open tunnels of one command: :meth:`source` and :meth:`target` put an endpoint behind its bastion."""

    tunnels: dict[str, SshTunnel] = field(default_factory=dict)

    def source(self, endpoint: Endpoint) -> Endpoint:
        """``endpoint`` reached through the source's bastion (unchanged without one)."""
        return self._route("source", endpoint)

    def target(self, endpoint: Endpoint) -> Endpoint:
        """``endpoint`` reached through the target's bastion (unchanged without one)."""
        return self._route("target", endpoint)

    def _route(self, side: str, endpoint: Endpoint) -> Endpoint:
        tunnel = self.tunnels.get(side)
        return endpoint if tunnel is None else replace(endpoint, route=tunnel)


@contextlib.contextmanager
def bastions(vias: Vias) -> Iterator[Routes]:
    """Open one SSH control master per bastion (source and target may share one) for the ``with`` block.

    Every master is stopped and its sockets removed when the block ends, however it ends (Ctrl-C included).
    """
    parsed = vias.parsed()
    with contextlib.ExitStack() as stack:
        opened: dict[Via, SshTunnel] = {}
        for via in parsed.values():
            if via not in opened:
                opened[via] = stack.enter_context(SshTunnel(via))
        yield Routes({side: opened[via] for side, via in parsed.items()})


@dataclass(frozen=True)
class CopyRequest:
    """``copy``: every key from ``source`` to ``target``, checkpointed in ``run_dir``, then verified."""

    source: str
    target: str
    run_dir: Path
    dbs: tuple[int, ...] | None = None
    match: str | None = None
    conflict: Conflict = "refuse"
    from_replica: bool = False
    batch: int = 1000
    max_keys_per_second: float | None = None
    max_mb_per_second: float | None = None
    max_batch_mb: int = 64
    read: ReadMode = "auto"
    resume: bool = False
    follow: FollowOptions | None = None
    vias: Vias = NO_VIA
    #: The options the user gave (``CopyOptions`` names); on ``--resume`` the others take the saved values.
    given: frozenset[str] | None = None


@dataclass(frozen=True)
class VerifyRequest:
    """``verify``: compare ``target`` with ``source`` (the report lands in ``run_dir`` when given)."""

    source: str
    target: str
    dbs: tuple[int, ...] | None = None
    match: str | None = None
    sample: float | None = None
    ttl_tolerance_ms: int = 1000
    max_batch_mb: int = 64
    run_dir: Path | None = None
    vias: Vias = NO_VIA
    #: Called with the number of keys compared so far (see ``VerifyOptions.progress``).
    progress: Callable[[int], None] | None = None
    #: How early the copy being verified may have dated TTLs (see ``VerifyOptions.copy_early_ms``).
    copy_early_ms: int = 0
    #: How to read the source (see ``VerifyOptions.read``).
    read: ReadMode = "auto"


def copy_endpoints(request: CopyRequest, progress: DataProgress | None = None) -> CopyResult:
    """Run a ``copy`` request (see :func:`copy_data`)."""
    options = CopyOptions(
        match=request.match,
        dbs=request.dbs,
        batch=request.batch,
        conflict=request.conflict,
        from_replica=request.from_replica,
        max_keys_per_second=request.max_keys_per_second,
        max_bytes_per_second=request.max_mb_per_second * 1e6 if request.max_mb_per_second else None,
        resume=request.resume,
        max_batch_bytes=request.max_batch_mb * MIB,
        read=request.read,
    )
    return copy_data(
        request.source,
        request.target,
        options,
        request.run_dir,
        progress,
        request.follow,
        vias=request.vias,
        given=request.given,
    )


def verify_copy(
    request: CopyRequest, copied: CopyResult, progress: Callable[[int], None] | None = None
) -> VerifyReport:
    """Verify what a ``copy`` request copied (same databases and pattern); the report lands in its run directory."""
    verify = VerifyRequest(
        request.source,
        request.target,
        request.dbs,
        request.match,
        copy_early_ms=copied.total.ttl_early_ms,
        max_batch_mb=request.max_batch_mb,
        vias=request.vias,
        progress=progress,
        read=read_after(request.read, request.max_keys_per_second or request.max_mb_per_second),
    )
    return verify_endpoints(replace(verify, run_dir=request.run_dir))


def verify_endpoints(request: VerifyRequest) -> VerifyReport:
    """Run a ``verify`` request (see :func:`verify_data`)."""
    options = VerifyOptions(
        dbs=request.dbs,
        match=request.match,
        sample=request.sample,
        ttl_tolerance_ms=request.ttl_tolerance_ms,
        copy_early_ms=request.copy_early_ms,
        max_batch_bytes=request.max_batch_mb * MIB,
        progress=request.progress,
        read=request.read,
    )
    return verify_data(request.source, request.target, options, request.run_dir, vias=request.vias)


def checks_after(copied: CopyResult, options: CopyOptions) -> VerifyOptions:
    """How to verify what a copy with ``options`` copied.

    Its databases and pattern, TTLs as early as it dated them, and the source read as the copy read it
    (:func:`read_after`).
    """
    limited = options.max_keys_per_second or options.max_bytes_per_second
    read = read_after(options.read, limited)
    return VerifyOptions(dbs=options.dbs, match=options.match, copy_early_ms=copied.total.ttl_early_ms, read=read)


def read_after(copy_read: ReadMode, rate_limited: object) -> ReadMode:
    """How a verify after a copy reads the source: as the copy was told to.

    After a rate-limited ``auto`` copy, with a scan: that copy kept the source from forking, and so does its verify.
    """
    return "scan" if copy_read == "auto" and rate_limited else copy_read


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
    *,
    vias: Vias = NO_VIA,
    given: frozenset[str] | None = None,
) -> CopyResult:
    """Copy keys between two endpoints, checkpointing in ``run_dir/data``; stats land in ``stats.json``.

    With ``follow``, keyspace notifications are subscribed to before the copy starts, and changes are
    re-copied until ``follow.stop`` is set; what the follower did is added to the result's notes. ``vias``
    names the SSH bastions each side is reached through (open for the copy and the follow, closed after).
    The options are kept in ``run_dir/data/options.json``: a resume takes the saved ones it was not ``given``
    again (see ``pipeline.resume``).
    """
    env = {**os.environ, **environ} if environ else None
    source, target = parse_endpoint(source_url, environ=env), parse_endpoint(target_url, environ=env)
    options, notes = settle_copy_options(options, run_dir, given)
    kept = run_dir / OPTIONS_FILE
    made = [p for p in (kept, kept.parent, run_dir) if not p.exists()]
    save_copy_options(run_dir, options)  # now: a crash mid-copy must find them
    try:  # the workers' zygote first: forked while this process has no thread (a tunnel's, the copy's) yet
        with forked_zygote((source.password, target.password)), bastions(vias) as routes:
            result = _copy_routed(routes.source(source), routes.target(target), options, run_dir, progress, follow)
    except BaseException:
        if not (run_dir / "data" / "checkpoint.json").exists():  # refused before any key moved: leave nothing
            remove_created(made)
        raise
    result.notes[:0] = notes
    return result


def check_target(
    target_url: str, options: CopyOptions, environ: dict[str, str] | None = None, *, vias: Vias = NO_VIA
) -> None:
    """Refuse a non-empty target (unless ``options`` replace, skip or resume) before anything touches the source."""
    env = {**os.environ, **environ} if environ else None
    target = parse_endpoint(target_url, environ=env)
    with bastions(Vias(target=vias.target)) as routes:
        check_empty_target(routes.target(target), options)


def _copy_routed(
    source: Endpoint,
    target: Endpoint,
    options: CopyOptions,
    run_dir: Path,
    progress: DataProgress | None,
    follow: FollowOptions | None,
) -> CopyResult:
    # Saved after every confirmed batch: a signal cannot wait for the copy's threads to save it at their end.
    options = replace(options, checkpoint=run_dir / "data" / "checkpoint.json", checkpoint_every=1)
    follower = Follower(source, target, dbs=options.dbs, max_batch_bytes=options.max_batch_bytes) if follow else None
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
        result.total.ttl_early_ms = max(result.total.ttl_early_ms, follower.stats.ttl_early_ms)
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


def in_background(work: Callable[[], T_], name: str) -> T_:
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
    value: T_ = outcome["value"]
    return value


def enable_ovh_notifications(
    project: str, service: str, endpoint: str | None = None, config_file: Path | None = None
) -> tuple[str | None, str]:
    """Switch keyspace notifications on for an OVH service through its advanced configuration.

    Returns (previous value, value now); the caller tells the user how to put the previous value back.
    """
    from reproducer.sources.ovh import OvhApiClient, enable_keyspace_notifications, make_client  # the OVH client

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


def verify_data(
    source_url: str,
    target_url: str,
    options: VerifyOptions,
    run_dir: Path | None = None,
    environ: dict[str, str] | None = None,
    *,
    vias: Vias = NO_VIA,
) -> VerifyReport:
    """Compare two endpoints; the report also lands in ``run_dir/data/verify.json`` when given.

    ``environ`` adds variables the endpoints' ``password_env`` may name (kept in memory); ``vias`` names the
    SSH bastions each side is reached through.
    """
    env = {**os.environ, **environ} if environ else None
    source, target = parse_endpoint(source_url, environ=env), parse_endpoint(target_url, environ=env)
    started = time.monotonic()
    with forked_zygote((source.password, target.password)), bastions(vias) as routes:
        report = verify_keys(routes.source(source), routes.target(target), options)
    if run_dir is not None:
        (run_dir / "data").mkdir(parents=True, exist_ok=True)
        record = {**report.to_dict(), "seconds": round(time.monotonic() - started, 3)}
        atomic_write(run_dir / "data" / "verify.json", json.dumps(record, indent=2) + "\n")
    return report


@dataclass(frozen=True)
class ExportRequest:
    """``export``: every key of ``source`` (``dbs`` and ``match`` narrow it) into the file ``path``.

    ``fmt`` is jsonl, rdb or aof (default: from the file name); ``via`` names an SSH bastion to reach ``source``.
    """

    source: str
    path: Path
    fmt: str | None = None
    dbs: tuple[int, ...] | None = None
    match: str | None = None
    via: str | None = None


@dataclass(frozen=True)
class ImportRequest:
    """``import``: the file ``path`` into ``target``, with copy's ``conflict`` policy for keys already there.

    ``fmt`` is jsonl, rdb or aof (default: from the file name); ``via`` names an SSH bastion to reach ``target``.
    """

    path: Path
    target: str
    fmt: str | None = None
    conflict: Conflict = "refuse"
    via: str | None = None


#: ``export SRC -`` writes to standard output, ``import - TARGET`` reads standard input.
STANDARD_STREAM = Path("-")
#: Formats that carry raw bytes (values, control characters): never written to a terminal.
_BINARY_FORMATS = frozenset({"rdb", "aof"})
_CHUNK = 1024 * 1024


def export_data(request: ExportRequest, progress: Callable[[int], None] | None = None) -> int:
    """Export every key of an endpoint to a JSONL, RDB or AOF file (written whole, then renamed).

    ``-`` (standard output), a character device or a FIFO is a stream: the export is made whole in a private
    scratch file first, then copied to it, so a reader never gets a half export. Binary formats are refused
    when the stream is a terminal.
    """
    streamed = request.path == STANDARD_STREAM or is_stream(request.path)
    fmt = request.fmt or _format_of(request.path, streamed)
    module = format_module(fmt)
    source = parse_endpoint(request.source)
    if not streamed:
        with bastions(Vias(source=request.via)) as routes, atomic_output(request.path) as tmp:
            count: int = module.export(
                routes.source(source), tmp, dbs=request.dbs, match=request.match, progress=progress
            )
        return count
    with _output_stream(request.path) as stream, scratch_file() as tmp:
        if fmt in _BINARY_FORMATS and stream.isatty():
            raise InputError(
                f"{fmt} is a binary format and {_stream_name(request.path)} is a terminal",
                hint="redirect it to a file or a pipe (export SRC - > dump.rdb), or use --format jsonl",
            )
        with bastions(Vias(source=request.via)) as routes:
            count = module.export(routes.source(source), tmp, dbs=request.dbs, match=request.match, progress=progress)
        _copy_to(tmp, stream, request.path)
    return count


def import_data(request: ImportRequest, progress: Callable[[int], None] | None = None) -> tuple[int, int, int]:
    """Import a JSONL, RDB or AOF file into an endpoint; returns (written, expired, skipped).

    A non-empty target is refused unless ``request.conflict`` says to replace or skip the keys already there.
    ``-`` (standard input), a FIFO or a character device is read whole into a private scratch file first.
    """
    streamed = request.path == STANDARD_STREAM or is_stream(request.path)
    if not streamed and not request.path.exists():
        raise InputError(f"{request.path} does not exist", hint="check the path")
    module = format_module(request.fmt or _format_of(request.path, streamed))
    target = parse_endpoint(request.target)
    with contextlib.ExitStack() as stack:
        path = request.path
        if streamed:
            path = stack.enter_context(scratch_file())
            _read_stream(request.path, path)
        routes = stack.enter_context(bastions(Vias(target=request.via)))
        written: tuple[int, int, int] = module.load(
            path, routes.target(target), conflict=request.conflict, progress=progress
        )
    return written


def _format_of(path: Path, streamed: bool) -> str:
    """The format named by ``path``'s suffix; a stream without one needs ``--format``."""
    if streamed and not any(str(path).endswith(f".{name}") for name in ("jsonl", "rdb", "aof")):
        raise InputError(f"cannot tell the format of {_stream_name(path)}", hint="pass --format jsonl, rdb or aof")
    return format_from_path(str(path))


def _stream_name(path: Path) -> str:
    return "standard output" if path == STANDARD_STREAM else str(path)


@contextlib.contextmanager
def scratch_file() -> Iterator[Path]:
    """A path in a private (0700) temporary directory, removed with the directory on every exit path."""
    with tempfile.TemporaryDirectory(prefix="reproducer-stream-") as directory:
        yield Path(directory) / "data"


@contextlib.contextmanager
def _output_stream(path: Path) -> Iterator[Any]:
    """Standard output, or ``path`` opened for writing without creating or truncating anything."""
    if path == STANDARD_STREAM:
        sys.stdout.flush()
        yield sys.stdout.buffer
        return
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NOCTTY)
    except OSError as error:
        raise OutputError(f"cannot write {path}: {error.strerror or error}", hint="check the path") from None
    with os.fdopen(fd, "wb") as handle:
        yield handle


def _copy_to(tmp: Path, stream: Any, path: Path) -> None:
    try:
        with tmp.open("rb") as source:
            shutil.copyfileobj(source, stream, _CHUNK)
        stream.flush()
    except OSError as error:
        raise OutputError(
            f"cannot write the export to {_stream_name(path)}: {error.strerror or error}",
            hint="the reader went away or the device refused the write; run the export again",
        ) from None


def _read_stream(path: Path, tmp: Path) -> None:
    try:
        with contextlib.ExitStack() as stack:
            source = sys.stdin.buffer if path == STANDARD_STREAM else stack.enter_context(path.open("rb"))
            with tmp.open("xb") as out:
                shutil.copyfileobj(source, out, _CHUNK)
    except OSError as error:
        raise InputError(f"cannot read {path}: {error.strerror or error}", hint="check the path") from None
