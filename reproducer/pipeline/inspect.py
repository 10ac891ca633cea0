"""``inspect`` and ``drift``: read OVH Valkey services into specs, and compare a committed spec with its service."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from reproducer.atomic import atomic_write, atomic_write_all
from reproducer.errors import InputError
from reproducer.pipeline.files import make_directory
from reproducer.pipeline.progress import Progress, quiet

if TYPE_CHECKING:  # the OVH client and pydantic load only for the commands that use them
    from reproducer.gitops.drift import DriftReport
    from reproducer.model import ServiceSpec
    from reproducer.sources.ovh import RetryPolicy


@dataclass(frozen=True)
class InspectOptions:
    """What ``inspect`` reads and from where."""

    project: str
    service: str | None = None
    endpoint: str | None = None
    config_file: Path | None = None
    credentials: dict[str, str] | None = None
    retry: RetryPolicy | None = None


def inspect(options: InspectOptions, progress: Progress = quiet) -> list[ServiceSpec]:
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


def write_specs(specs: Sequence[ServiceSpec], output: str | Path) -> list[Path]:
    """Write one spec to the file ``output``, or each to ``output/<service-id>.yaml``: all of them or none.

    ``output`` is a directory when several services were read, when it is one already, or when it ends with
    ``/`` (``-o specs/``: the slash says so, even for one service and a directory not yet made).
    """
    text = str(output)
    path = Path(text)
    as_directory = len(specs) != 1 or text.endswith(("/", os.sep)) or path.is_dir()
    if not as_directory:
        atomic_write(path, specs[0].to_yaml())
        return [path]
    make_directory(path)
    files = {path / f"{spec.source.service_id}.yaml": spec.to_yaml() for spec in specs}
    atomic_write_all(files)
    return list(files)


def drift(spec_path: Path, options: InspectOptions, progress: Progress = quiet) -> DriftReport:
    """Compare a committed spec with the live service it was read from (derived fields left out)."""
    from reproducer.gitops.drift import DriftReport, differences
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
    found = differences(committed.to_dict(), live.to_dict())
    return DriftReport(str(spec_path), request.project, request.service or "", found, endpoint=options.endpoint)


def drift_text(report: DriftReport, fmt: str) -> str:
    """The drift report as an issue or merge-request note (``markdown``) or as JSON (``json``)."""
    from reproducer.gitops.drift import to_json, to_markdown

    return to_json(report) if fmt == "json" else to_markdown(report)
