"""``archive``: everything needed to leave a service, in one verifiable bundle; ``archive verify``; import from one.

A bundle is a directory::

    spec.yaml            the service spec (inspect, or inspect --from)
    data/dump.rdb        every key, as RDB
    data/keys.jsonl      every key, as JSONL
    render/              the spec rendered for --target (when given): terraform/, COMPATIBILITY.md
    MANIFEST.json        per-database and per-type key counts, each file's size and sha256, the source's
                         identity (no secret), the time, and the check of the files against the live source

It is written into a temporary sibling (``.NAME.archive-tmp-*``, 0700) and renamed into place only once the
files are complete and match the live source: an interrupted archive leaves nothing that looks complete, and an
existing directory (an earlier bundle included) is never overwritten.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import stat
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reproducer import __version__
from reproducer.atomic import atomic_output, atomic_write
from reproducer.data.endpoint import Endpoint, parse_endpoint
from reproducer.data.formats import format_module
from reproducer.data.topology import connect, databases, discover, identity
from reproducer.errors import InputError, OutputError, SourceUnavailableError, VerifyMismatchError
from reproducer.pipeline.data import ImportRequest, Vias, bastions, import_data
from reproducer.pipeline.inspect import InspectOptions, inspect
from reproducer.pipeline.live import LiveInspectRequest, inspect_live
from reproducer.pipeline.progress import Progress, quiet
from reproducer.pipeline.render import RenderRequest, render

if TYPE_CHECKING:
    from reproducer.data.copy import Conflict
    from reproducer.model import ServiceSpec

FORMAT = "reproducer-archive"
FORMAT_VERSION = 1
MANIFEST = "MANIFEST.json"
SPEC_FILE = "spec.yaml"
RDB_FILE = "data/dump.rdb"
JSONL_FILE = "data/keys.jsonl"
RENDER_DIR = "render"
#: A manifest lists a few dozen files; anything larger is not one archive wrote.
_MANIFEST_MAX = 4 << 20
_CHUNK = 1 << 20
_LEFTOVER_HINT = (
    "remove the user reproducer-migration and the allow-list entry this archive added in the OVH control panel "
    "(archive keeps no run state to resume)"
)
_HASH_HINT = "the bundle was changed after it was written: restore it from a copy, or archive the service again"


@dataclass(frozen=True)
class ArchiveRequest:
    """``archive``: the spec from OVH (``project``/``service``) or from ``live.url``; the data from ``live.url``.

    Without ``live``, the data of the OVH service itself, through a temporary read-only user and the allow-list
    entry ``allow_cidr`` (its TLS certificate checked with ``source_ca``), both removed on every way out.
    """

    out: Path
    live: LiveInspectRequest | None = None
    project: str | None = None
    service: str | None = None
    endpoint: str | None = None
    config_file: Path | None = None
    target: str | None = None
    allow_cidr: str | None = None
    source_ca: Path | None = None
    credentials: dict[str, str] | None = None


@dataclass
class BundleReport:
    """What ``archive verify`` (or the end of ``archive``) found: each problem in one line, none when ``ok``."""

    directory: Path
    files: int = 0
    keys: int = 0
    problems: list[str] = field(default_factory=list)
    against: str | None = None

    @property
    def ok(self) -> bool:
        """True when no problem was found."""
        return not self.problems


def archive(request: ArchiveRequest, progress: Progress = quiet) -> dict[str, Any]:
    """Write the bundle of ``request`` (see the module docstring); returns its manifest."""
    out = request.out
    _check_new(out)
    if request.live is None and not request.project:
        raise InputError("archive needs a source", hint="pass --project/--service, or --from URL")
    with _staging(out) as stage:
        spec = _spec(request, progress)
        atomic_write(stage / SPEC_FILE, spec.to_yaml())
        if request.target:  # first: a spec the target cannot take fails before the long exports
            progress(f"archive: rendering for {request.target}")
            render(RenderRequest(spec=stage / SPEC_FILE, target=request.target, out=stage / RENDER_DIR))
        with _data_source(request, spec, progress) as (source, via):
            manifest = _write_data(stage, spec, source, via, request.target, progress)
            _publish(stage, out)
    progress(f"archive: wrote {out} ({manifest['data']['keys']} keys, {len(manifest['files'])} files)")
    return manifest


def _write_data(
    stage: Path, spec: ServiceSpec, source: Endpoint, via: str | None, target: str | None, progress: Progress
) -> dict[str, Any]:
    """Export the data as RDB and JSONL, check them against the live source, and write the manifest."""
    (stage / "data").mkdir()
    for fmt, name in (("rdb", RDB_FILE), ("jsonl", JSONL_FILE)):
        progress(f"archive: exporting the data as {fmt.upper()}")
        with bastions(Vias(source=via)) as routes, atomic_output(stage / name) as tmp:
            format_module(fmt).export(routes.source(source), tmp, dbs=None, match=None)
    progress("archive: checking the files against the live source")
    manifest = _manifest(stage, spec, source, Vias(source=via), target)
    atomic_write(stage / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


@contextlib.contextmanager
def _data_source(
    request: ArchiveRequest, spec: ServiceSpec, progress: Progress
) -> Iterator[tuple[Endpoint, str | None]]:
    """The endpoint to read the data from and its bastion: ``--from``, or the OVH service with temporary access."""
    if request.live is not None:
        yield parse_endpoint(request.live.url), request.live.via
        return
    from reproducer.pipeline.migrate import RunState, check_source_tls, temporary_access
    from reproducer.sources.ovh import OvhApiClient, OvhServiceAccess, make_client

    check_source_tls(spec, request.source_ca, Vias(), progress)  # before anything is granted
    client = make_client(request.endpoint, request.config_file, request.credentials)
    access = OvhServiceAccess(OvhApiClient(client, None, progress), spec.source.project, spec.source.service_id)
    with tempfile.TemporaryDirectory(prefix="reproducer-archive-") as private:
        state = RunState(Path(private) / "run.json")
        try:
            grant = temporary_access(
                access, spec, state, allow_cidr=request.allow_cidr, source_ca=request.source_ca, progress=progress
            )
            with grant as (url, environ):
                yield parse_endpoint(url, environ=environ), None
        except SourceUnavailableError as error:
            if error.message.startswith("the temporary access on the source could not be removed"):
                error.hint = _LEFTOVER_HINT
            raise


def _spec(request: ArchiveRequest, progress: Progress) -> ServiceSpec:
    if request.project:
        options = InspectOptions(
            request.project, request.service, request.endpoint, request.config_file, request.credentials
        )
        if not request.service:
            raise InputError("archive reads one service", hint="pass --service with --project")
        [spec] = inspect(options, progress)
        return spec
    if request.live is None:
        raise InputError("archive needs a source", hint="pass --project/--service, or --from URL")
    return inspect_live(request.live, progress)


def _manifest(stage: Path, spec: ServiceSpec, source: Endpoint, vias: Vias, target: str | None) -> dict[str, Any]:
    per_db = jsonl_counts(stage / JSONL_FILE)
    rdb = rdb_counts(stage / RDB_FILE)
    with bastions(vias) as routes:
        routed = routes.source(source)
        layout = discover(routed)
        who = identity(routed, layout)
        live = endpoint_counts(routed)
    keys = {db: entry["keys"] for db, entry in per_db.items()}
    problems = [f"the RDB file holds {rdb} key(s) per database, the JSONL file {keys}"] if rdb != keys else []
    if live != keys:
        problems.append(f"the live source holds {live} key(s) per database, the files {keys}")
    if problems:
        raise VerifyMismatchError(
            "archive: the files do not match the live source: " + "; ".join(problems),
            hint="the source changed while it was archived (or keys expired): stop the writers and archive again",
        )
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "reproducer_version": __version__,
        "source": {
            "spec": {k: spec.source.model_dump()[k] for k in ("provider", "project", "service_id")},
            "engine": spec.engine.model_dump(),
            **who,
        },
        "target": target,
        "data": {"keys": sum(keys.values()), "databases": {str(db): e for db, e in sorted(per_db.items())}},
        "verification": {"against": "the live source", "checked_at": _now(), "ok": True, "source_keys": _by_db(live)},
        "files": file_table(stage),
    }


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _by_db(counts: dict[int, int]) -> dict[str, int]:
    return {str(db): n for db, n in sorted(counts.items())}


# ---- counting -----------------------------------------------------------------------------------------


def jsonl_counts(path: Path) -> dict[int, dict[str, Any]]:
    """Per database: its key count and its keys per type, read from a JSONL export (each line checked)."""
    from reproducer.data.formats.jsonl import read_file

    types: dict[int, Counter[str]] = {}
    for entry in read_file(path):
        types.setdefault(entry.db, Counter())[entry.value.type] += 1
    return {db: {"keys": sum(c.values()), "types": dict(sorted(c.items()))} for db, c in types.items()}


def rdb_counts(path: Path) -> dict[int, int]:
    """Keys per database of an RDB file, as a scratch valkey-server loads it (the file checked first)."""
    from reproducer.data.formats.rdb import check_file
    from reproducer.data.formats.scratch import ScratchServer

    check_file(path)
    counts = {}
    with ScratchServer(path) as scratch:
        for db in scratch.databases():
            with scratch.client(db) as client:
                counts[db] = int(client.dbsize())
    return {db: n for db, n in counts.items() if n}


def endpoint_counts(endpoint: Endpoint) -> dict[int, int]:
    """Keys per database of a live endpoint, summed over its primaries (databases with no key left out)."""
    counts: Counter[int] = Counter()
    for node in discover(endpoint).primaries:
        conn = connect(endpoint, node)
        try:
            for db in databases(conn):
                conn.select(db)
                counts[db] += conn.call_int("DBSIZE")
        finally:
            conn.close()
    return {db: n for db, n in sorted(counts.items()) if n}


# ---- files --------------------------------------------------------------------------------------------


def file_table(directory: Path) -> dict[str, dict[str, Any]]:
    """Every regular file under ``directory`` but the manifest: its size and sha256, by relative POSIX path."""
    table = {}
    for path in sorted(directory.rglob("*")):
        if path.is_file() and not path.is_symlink() and path.relative_to(directory).as_posix() != MANIFEST:
            table[path.relative_to(directory).as_posix()] = {"bytes": path.stat().st_size, "sha256": sha256(path)}
    return table


def sha256(path: Path) -> str:
    """The hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _check_new(out: Path) -> None:
    """``out`` must not exist (or be an empty directory): a bundle never replaces anything."""
    if not out.parent.is_dir():
        raise InputError(f"cannot write {out}: directory {out.parent} does not exist", hint="create it first")
    if out.is_symlink() or (out.exists() and not (out.is_dir() and not any(out.iterdir()))):
        what = "an earlier bundle" if (out / MANIFEST).is_file() else "something archive did not write"
        raise InputError(f"{out} already exists ({what})", hint="choose a new directory: archive never replaces one")


@contextlib.contextmanager
def _staging(out: Path) -> Iterator[Path]:
    """A private temporary sibling of ``out``, removed on every way out unless it was renamed to ``out``."""
    try:
        stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.archive-tmp-", dir=out.parent))
    except OSError as error:
        raise OutputError(f"cannot write in {out.parent}: {error.strerror}", hint="check the directory") from None
    try:
        yield stage
    finally:
        if stage.exists():
            shutil.rmtree(stage, ignore_errors=True)


def _publish(stage: Path, out: Path) -> None:
    _check_new(out)
    try:
        os.rename(stage, out)  # onto nothing or an empty directory: atomic
    except OSError as error:
        raise OutputError(f"cannot move the bundle to {out}: {error.strerror}", hint="check the directory") from None


# ---- verify and import --------------------------------------------------------------------------------


def read_manifest(directory: Path) -> dict[str, Any]:
    """The bundle's manifest, checked for its shape (InputError when it is not one archive wrote)."""
    path = directory / MANIFEST
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            raise InputError(f"{path} is not a regular file", hint="pass a directory 'reproducer archive' wrote")
        with path.open("rb") as handle:
            raw = handle.read(_MANIFEST_MAX + 1)
    except FileNotFoundError:
        raise InputError(
            f"{directory} has no {MANIFEST}: it is not a complete bundle",
            hint="pass a directory 'reproducer archive' wrote (an interrupted archive leaves none)",
        ) from None
    except OSError as error:
        raise InputError(f"cannot read {path}: {error.strerror}", hint="check the path") from None
    try:
        manifest = json.loads(raw) if len(raw) <= _MANIFEST_MAX else None
    except (ValueError, RecursionError):
        manifest = None
    if not isinstance(manifest, dict) or not _is_manifest(manifest):
        raise InputError(f"{path} is not a manifest archive wrote", hint="pass a directory 'reproducer archive' wrote")
    return dict(manifest)


def _is_manifest(data: Any) -> bool:
    if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("format_version") != FORMAT_VERSION:
        return False
    files, content = data.get("files"), data.get("data")
    return (
        isinstance(files, dict)
        and all(isinstance(v, dict) and _is_sha(v.get("sha256")) and _is_size(v.get("bytes")) for v in files.values())
        and isinstance(content, dict)
        and isinstance(content.get("databases"), dict)
        and all(isinstance(v, dict) and _is_size(v.get("keys")) for v in content["databases"].values())
    )


def _is_sha(value: Any) -> bool:
    return isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)


def _is_size(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 1 << 62


def verify_bundle(directory: Path, against: str | None = None, via: str | None = None) -> BundleReport:
    """Re-check every file's size and sha256 (and no file added), then, with ``against``, the counts live."""
    manifest = read_manifest(directory)
    report = BundleReport(directory, files=len(manifest["files"]), against=against)
    expected = {db: entry["keys"] for db, entry in manifest["data"]["databases"].items()}
    report.keys = sum(expected.values())
    for name, entry in sorted(manifest["files"].items()):
        problem = _file_problem(directory, name, entry)
        if problem:
            report.problems.append(problem)
    listed = set(manifest["files"]) | {MANIFEST}
    report.problems += [f"{name}: not in the manifest" for name in _on_disk(directory) if name not in listed]
    if against is not None:
        with bastions(Vias(source=via)) as routes:
            live = _by_db(endpoint_counts(routes.source(parse_endpoint(against))))
        if live != expected:
            report.problems.append(f"the endpoint holds {live} key(s) per database, the bundle {expected}")
    return report


def _file_problem(directory: Path, name: str, entry: dict[str, Any]) -> str | None:
    """What is wrong with one listed file (None when its size and sha256 are as listed)."""
    parts = tuple(name.split("/"))  # as written: PurePosixPath would drop a "." or a doubled "/"
    if any(p in ("", ".", "..") for p in parts) or "\\" in name or "\x00" in name:
        return f"{name!r}: not a path inside the bundle"
    try:
        return _content_problem(directory, parts, name, entry)
    except OSError as error:
        return f"{name}: cannot be read ({error.strerror})"


def _content_problem(directory: Path, parts: tuple[str, ...], name: str, entry: dict[str, Any]) -> str | None:
    path = directory.joinpath(*parts)
    if any(directory.joinpath(*parts[:i]).is_symlink() for i in range(1, len(parts) + 1)):
        return f"{name}: a symbolic link"
    if not path.is_file():
        return f"{name}: missing"
    if path.stat().st_size != entry["bytes"]:
        return f"{name}: {path.stat().st_size} bytes, the manifest says {entry['bytes']}"
    if sha256(path) != entry["sha256"]:
        return f"{name}: its sha256 differs from the manifest's (the file was changed)"
    return None


def _on_disk(directory: Path) -> list[str]:
    return sorted(p.relative_to(directory).as_posix() for p in directory.rglob("*") if not p.is_dir())


def import_bundle(
    directory: Path,
    target: str,
    *,
    fmt: str | None = None,
    conflict: Conflict = "refuse",
    via: str | None = None,
) -> tuple[tuple[int, int, int], BundleReport]:
    """Import a bundle's data (RDB, or ``fmt`` jsonl) into ``target`` once its files check; then count ``target``.

    Returns the import's (written, expired, skipped) and the count check of ``target`` against the manifest.
    """
    report = verify_bundle(directory)
    if not report.ok:
        raise InputError(f"the bundle {directory} is damaged: {'; '.join(report.problems[:5])}", hint=_HASH_HINT)
    path = directory / (JSONL_FILE if fmt == "jsonl" else RDB_FILE)
    written = import_data(ImportRequest(path=path, target=target, fmt=fmt or "rdb", conflict=conflict, via=via))
    return written, verify_bundle(directory, against=target, via=via)
