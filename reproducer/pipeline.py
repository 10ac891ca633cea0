"""The use cases behind the commands: inspect, the sandbox, the demo.

Each function takes plain, typed options, reports progress through a callback and returns data;
``cli.py`` decides how to show it. Files are written to a temporary name and renamed at the end, so a
failed command never leaves a half-written file behind.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reproducer.errors import InputError
from reproducer.model import ServiceSpec
from reproducer.sandbox import control
from reproducer.sources.ovh import OvhApiReader, OvhSource, RetryPolicy, make_client

Progress = Callable[[str], None]


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
    retry: RetryPolicy = field(default_factory=RetryPolicy)


def inspect(options: InspectOptions, progress: Progress = _quiet) -> list[ServiceSpec]:
    """Read one service, or every Valkey service of the project, into specs."""
    if not options.project.strip():
        raise InputError("the project id is empty", hint="pass --project with the Public Cloud project id")
    client = make_client(options.endpoint, options.config_file, options.credentials)
    source = OvhSource(OvhApiReader(client, options.retry, progress), progress)
    if options.service:
        return [source.read(options.project, options.service)]
    specs = source.read_project(options.project)
    progress(f"read {len(specs)} Valkey service(s) of project {options.project}")
    return specs


def specs_to_yaml(specs: Sequence[ServiceSpec]) -> str:
    """One YAML document per spec, separated by ``---``."""
    return "---\n".join(spec.to_yaml() for spec in specs)


def write_specs(specs: Sequence[ServiceSpec], output: Path) -> list[Path]:
    """Write one spec to ``output``, or several to ``output/<service-id>.yaml``; atomically."""
    if len(specs) == 1 and not output.is_dir():
        atomic_write(output, specs[0].to_yaml())
        return [output]
    output.mkdir(parents=True, exist_ok=True)
    paths = [output / f"{spec.source.service_id}.yaml" for spec in specs]
    for spec, path in zip(specs, paths, strict=True):
        atomic_write(path, spec.to_yaml())
    return paths


def atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same directory, then rename."""
    path = Path(path)
    if not path.parent.is_dir():
        raise InputError(f"cannot write {path}: directory {path.parent} does not exist", hint="create it first")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# ---- sandbox and demo ----------------------------------------------------------------------------


def sandbox_root(root: Path | None) -> Path:
    """The sandbox directory: the given one, else the default state directory."""
    return Path(root) if root else control.default_root()


def sandbox_up(root: Path | None = None, progress: Progress = _quiet) -> dict[str, Any]:
    """Start (or find) the sandbox and return its endpoint, credentials, project and services."""
    progress("starting the sandbox: OVH API emulator and a Business Valkey service (primary, replica, Sentinel)")
    return control.up(sandbox_root(root))


def sandbox_status(root: Path | None = None) -> dict[str, Any] | None:
    """The running sandbox's info, or None."""
    return control.status(sandbox_root(root))


def sandbox_down(root: Path | None = None) -> bool:
    """Stop the sandbox; False when it was not running."""
    return control.down(sandbox_root(root))


def credentials_of(info: dict[str, Any]) -> dict[str, str]:
    """The ``ovh`` client credentials of a sandbox info mapping."""
    return {k: info[k] for k in ("application_key", "application_secret", "consumer_key")}


def demo(root: Path | None = None, progress: Progress = _quiet) -> tuple[dict[str, Any], list[ServiceSpec]]:
    """Start the sandbox with its loaded Business service and inspect it through the real ``ovh`` client."""
    info = sandbox_up(root, progress)
    progress(f"inspecting project {info['project']} through {info['endpoint']}")
    options = InspectOptions(project=info["project"], endpoint=info["endpoint"], credentials=credentials_of(info))
    return info, inspect(options, progress)
