"""``reproducer demo``: the whole job on the sandbox, start to finish, cleaning up after itself."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reproducer.atomic import atomic_write
from reproducer.gitops.plan import to_markdown
from reproducer.pipeline.apply import ADMIN_USER, destroy_local
from reproducer.pipeline.inspect import InspectOptions
from reproducer.pipeline.job import JobRequest, JobResult, run_job
from reproducer.pipeline.plan import PlanRequest, plan
from reproducer.pipeline.progress import DataProgress, Progress, quiet
from reproducer.pipeline.render import RenderRequest, render
from reproducer.pipeline.sandbox import credentials_of, sandbox_root, sandbox_up

if TYPE_CHECKING:
    from reproducer.model import ServiceSpec

#: "A few hundred thousand keys": enough to watch the copy, small enough for a 2-core machine.
DEMO_KEYS = 200_000


@dataclass
class DemoResult:
    """What the demo did: the sandbox, the migration job, the rendered cloud targets and a plan comment."""

    info: dict[str, Any]
    spec: ServiceSpec
    job: JobResult
    rendered: dict[str, Path] = field(default_factory=dict)
    plan_comment: str = ""
    plan_comment_path: Path | None = None


def demo(
    root: Path | None = None,
    progress: Progress = quiet,
    data_progress: DataProgress | None = None,
    keys: int = DEMO_KEYS,
    between_phases: Callable[[], None] | None = None,
) -> DemoResult:
    """Sandbox → migrate (inspect, render local 3x1, plan, apply, copy, verify, report) → aws/gcp → PR comment."""
    from reproducer.model import load_spec

    info = sandbox_up(root, progress, keys=keys)
    service = info["services"][0]
    work = sandbox_root(root) / "demo" / time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    request = JobRequest(
        inspect=InspectOptions(
            project=info["project"],
            service=service["id"],
            endpoint=info["endpoint"],
            credentials=credentials_of(info),
        ),
        target="local",
        run_dir=work / "run",
        shards=3,
        replicas=1,
        allow_cidr="127.0.0.1/32",
        source_ca=Path(service["ca_file"]) if service.get("ca_file") else None,
        data_progress=data_progress,
        passwords={ADMIN_USER: secrets.token_urlsafe(18)},
        between_phases=between_phases,
    )
    try:
        job = run_job(request, progress)
    finally:
        progress("removing the local cluster")
        destroy_local(request.run_dir / "rendered", progress)
    result = DemoResult(info, load_spec(request.run_dir / "spec.yaml"), job)
    _render_clouds(result, work, progress)
    return result


def _render_clouds(result: DemoResult, work: Path, progress: Progress) -> None:
    """Render aws and gcp (3 x 1), and the PR comment ``plan`` would post for aws in a new repository."""
    spec_path = result.job.run_dir / "spec.yaml"
    for name in ("aws", "gcp"):
        progress(f"rendering {name} (3 shards x 1 replica) into {work / name}")
        render(RenderRequest(spec=spec_path, target=name, out=work / name, shards=3, replicas=1))
        result.rendered[name] = work / name
    progress("planning aws against an empty repository (what a first pull request would show)")
    first = RenderRequest(spec=spec_path, target="aws", out=work / "empty", shards=3, replicas=1)
    result.plan_comment = to_markdown(plan(PlanRequest(render=first), progress))
    result.plan_comment_path = work / "aws-plan-comment.md"
    atomic_write(result.plan_comment_path, result.plan_comment)
