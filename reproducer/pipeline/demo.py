"""``reproducer demo``: the whole job on the sandbox and its AWS twin, start to finish, cleaning up after itself."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reproducer.atomic import atomic_write
from reproducer.gitops.plan import to_markdown
from reproducer.pipeline.apply import ADMIN_USER
from reproducer.pipeline.cloud import CloudApplyRequest, destroy_cloud
from reproducer.pipeline.inspect import InspectOptions, inspect
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
    """Sandbox → migrate into the AWS twin, resharded 3 x 1 → destroy it → the gcp render and its PR comment.

    The migration is the whole job: inspect, render, plan, apply, copy, verify, report.
    """
    from reproducer.model import load_spec

    info = sandbox_up(root, progress, keys=keys)
    service = info["services"][0]
    work = sandbox_root(root) / "demo" / time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    source = InspectOptions(
        project=info["project"], service=service["id"], endpoint=info["endpoint"], credentials=credentials_of(info)
    )
    request = JobRequest(
        inspect=source,
        target="aws",
        run_dir=work / "run",
        shards=3,
        replicas=1,
        allow_cidr="127.0.0.1/32",
        source_ca=Path(service["ca_file"]) if service.get("ca_file") else None,
        target_ca=Path(info["twins"]["ca_file"]),
        data_progress=data_progress,
        passwords=_new_passwords(source, progress),
        between_phases=between_phases,
        auto_approve=True,
        cli_config=Path(info["twins"]["terraform_cli_config"]),
    )
    try:
        job = run_job(request, progress)
    finally:
        _destroy_twin(request, progress)
    result = DemoResult(info, load_spec(request.run_dir / "spec.yaml"), job)
    _render_clouds(result, work, progress)
    return result


def _new_passwords(source: InspectOptions, progress: Progress) -> dict[str, str]:
    """A fresh password for each user of the service, ``default`` included (the target's users, in memory)."""
    [spec] = inspect(source, progress)
    return {name: secrets.token_urlsafe(18) for name in sorted({ADMIN_USER, *(user.name for user in spec.users)})}


def _destroy_twin(request: JobRequest, progress: Progress) -> None:
    """``terraform destroy`` of the target the job applied, if it got that far."""
    if not (request.run_dir / "rendered" / "terraform" / "terraform.tfstate").is_file():
        return
    progress("removing the AWS twin (terraform destroy)")
    render = RenderRequest(spec=request.run_dir / "spec.yaml", target=request.target, out=request.run_dir / "rendered")
    cloud = CloudApplyRequest(
        render=render, passwords=request.passwords, auto_approve=True, cli_config=request.cli_config
    )
    destroy_cloud(cloud, progress)


def _render_clouds(result: DemoResult, work: Path, progress: Progress) -> None:
    """Render gcp (3 x 1), and the PR comment ``plan`` would post for it in a new repository."""
    spec_path = result.job.run_dir / "spec.yaml"
    progress(f"rendering gcp (3 shards x 1 replica) into {work / 'gcp'}")
    render(RenderRequest(spec=spec_path, target="gcp", out=work / "gcp", shards=3, replicas=1))
    result.rendered["gcp"] = work / "gcp"
    progress("planning gcp against an empty repository (what a first pull request would show)")
    first = RenderRequest(spec=spec_path, target="gcp", out=work / "empty", shards=3, replicas=1)
    result.plan_comment = to_markdown(plan(PlanRequest(render=first, new=True), progress))
    result.plan_comment_path = work / "gcp-plan-comment.md"
    atomic_write(result.plan_comment_path, result.plan_comment)
