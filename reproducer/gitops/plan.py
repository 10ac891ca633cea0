"""What ``reproducer plan`` reports, as a markdown pull-request comment and as JSON.

File-level diffs against the committed output, the Terraform plan summary and compatibility counts; the
comment stays under GitHub's size limit.

Everything here is pure: inputs in, text out.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reproducer.gitops.manifest import MANIFEST, read_manifest

FORMAT_VERSION = "1.1"
COMMENT_LIMIT = 65_536
_DETAIL_BUDGET = COMMENT_LIMIT - 6_000  # room for the header, tables and the truncation note
_FOLD_LINES = 12


@dataclass(frozen=True)
class FileDiff:
    """One rendered file that differs from the committed one."""

    path: str
    status: str  # added | changed | removed
    diff: str


@dataclass(frozen=True)
class ResourcePlan:
    """One resource of the Terraform plan and what happens to it."""

    address: str
    action: str  # create | update | replace | delete | no-op | read


@dataclass(frozen=True)
class AnsibleCheck:
    """What ``ansible-playbook --check --diff`` says the playbook would change on the deployed hosts."""

    changed: int
    tasks: list[str]
    diff: str
    where: str

    @property
    def hidden(self) -> int:
        """Changes Ansible does not name: tasks with ``no_log`` (they carry passwords) hide their result."""
        return max(self.changed - len(self.tasks), 0)


@dataclass
class PlanReport:
    """Everything the comment and the JSON say."""

    target: str
    source: str
    files: list[FileDiff] = field(default_factory=list)
    terraform_mode: str = "offline"
    resources: list[ResourcePlan] = field(default_factory=list)
    compatibility: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    ansible: AnsibleCheck | None = None

    @property
    def counts(self) -> dict[str, int]:
        """Resources per action (create, update, replace, delete)."""
        return {a: sum(1 for r in self.resources if r.action == a) for a in ("create", "update", "replace", "delete")}

    @property
    def has_changes(self) -> bool:
        """Whether merging would change anything: a file, a planned resource, or a task on the hosts."""
        return bool(self.files) or any(self.counts.values()) or bool(self.ansible and self.ansible.changed)


def committed_files(committed: Path, rendered: Iterable[str] = ()) -> dict[str, Path]:
    """The committed output's files a render is compared with: its own (per the manifest) and ``rendered``.

    Never the manifest, what a deployment added, or the user's own files (``backend.tf``, ``.git``).

    A directory without a manifest (rendered by an older reproducer) compares every file but those.
    """
    if not committed.is_dir():
        return {}
    owned = read_manifest(committed)
    wanted = set(rendered)
    on_disk = {}
    for path in sorted(committed.rglob("*")):
        relative = path.relative_to(committed).as_posix()
        if not path.is_file() or path.is_symlink() or relative == MANIFEST or ".git" in relative.split("/"):
            continue
        ours = relative in owned if owned is not None else True
        if relative in wanted or (ours and not deployment_file(relative)):
            on_disk[relative] = path
    return on_disk


def file_diffs(rendered: dict[str, str], committed: Path) -> list[FileDiff]:
    """Unified diffs between freshly rendered files and the committed output directory (see ``committed_files``)."""
    on_disk = committed_files(committed, rendered)
    diffs = []
    for path in sorted(set(rendered) | set(on_disk)):
        before = on_disk[path].read_text(errors="replace") if path in on_disk else ""
        after = rendered.get(path, "")
        if before == after:
            continue
        status = "added" if path not in on_disk else "removed" if path not in rendered else "changed"
        lines = difflib.unified_diff(before.splitlines(True), after.splitlines(True), f"a/{path}", f"b/{path}")
        diffs.append(FileDiff(path, status, "".join(lines)))
    return diffs


def deployment_file(path: str) -> bool:
    """Files a deployment adds beside the rendered ones (state, lock, runs, inventory, certificates, tfvars).

    ``plan`` does not diff them and a re-render keeps them.
    """
    parts = path.split("/")
    terraform = ".terraform" in parts or parts[-1] in {"terraform.tfvars", ".terraform.lock.hcl"}
    ansible = path.startswith(("ansible/runner/", "ansible/files/")) or path in {
        "ansible/deployment.yml",
        "ansible/inventory.yml",
    }
    return terraform or ansible or ".tfstate" in parts[-1]


def resource_plans(changes: list[tuple[str, tuple[str, ...]]]) -> list[ResourcePlan]:
    """(address, Terraform actions) pairs to one action each (delete+create is a replace)."""
    plans = []
    for address, actions in changes:
        replace = "delete" in actions and "create" in actions
        action = "replace" if replace else (actions[0] if actions else "no-op")
        if action != "no-op":
            plans.append(ResourcePlan(address, action))
    return sorted(plans, key=lambda r: r.address)


def compare_resources(old: dict[str, Any], new: dict[str, Any]) -> list[ResourcePlan]:
    """Resources created, updated or deleted between two planned configurations (``address → values``)."""
    plans = [ResourcePlan(a, "create") for a in new if a not in old]
    plans += [ResourcePlan(a, "delete") for a in old if a not in new]
    plans += [ResourcePlan(a, "update") for a in new if a in old and old[a] != new[a]]
    return sorted(plans, key=lambda r: r.address)


def to_json(report: PlanReport) -> str:
    """The report as JSON with a ``format_version`` (minor bumps add fields; major bumps are breaking)."""
    data: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "target": report.target,
        "source": report.source,
        "changes": report.has_changes,
        "files": [{"path": f.path, "status": f.status, "diff": f.diff} for f in report.files],
        "terraform": {
            "mode": report.terraform_mode,
            **report.counts,
            "resources": [{"address": r.address, "action": r.action} for r in report.resources],
        },
        "ansible": None
        if report.ansible is None
        else {"where": report.ansible.where, "changed": report.ansible.changed, "tasks": report.ansible.tasks},
        "compatibility": report.compatibility,
        "notes": report.notes,
    }
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def to_markdown(report: PlanReport, *, details_link: str = "the CI job log") -> str:
    """The pull-request comment: marker, summary, destroy warning, tables, folded diffs, within the size limit."""
    counts = report.counts
    icon = "✅" if not report.has_changes else "📝"
    head = [
        f"<!-- reproducer:plan target={report.target} source={report.source} version=1 -->",
        f"## {icon} reproducer plan — {report.target}",
        "",
    ]
    if counts["delete"] or counts["replace"]:
        head += [
            f"> ⚠️ **{counts['delete'] + counts['replace']} resource(s) will be destroyed or replaced.** "
            "Review carefully.",
            "",
        ]
    head += [*_summary_table(report), "", *_compat_line(report), "", *_file_list(report), "", *_resource_lists(report)]
    body = _details(report, details_link)
    return "\n".join(head + body).rstrip() + "\n"


def _summary_table(report: PlanReport) -> list[str]:
    counts = report.counts
    mode = "Terraform" + (" (offline, vs committed)" if report.terraform_mode == "offline" else "")
    if report.terraform_mode == "none":
        mode = "Terraform (not run)"
    return [
        "| | + add | ~ change | ± replace | - destroy |",
        "|---|---|---|---|---|",
        f"| {mode} | {counts['create']} | {counts['update']} | {counts['replace']} | {counts['delete']} |",
        f"| Files | {_n(report, 'added')} | {_n(report, 'changed')} | | {_n(report, 'removed')} |",
        *_ansible_row(report),
    ]


def _ansible_row(report: PlanReport) -> list[str]:
    if report.ansible is None:
        return []
    return [f"| Ansible tasks (--check, {report.ansible.where}) | | {report.ansible.changed} | | |"]


def _n(report: PlanReport, status: str) -> int:
    return sum(1 for f in report.files if f.status == status)


def _compat_line(report: PlanReport) -> list[str]:
    parts = " · ".join(f"{n} {level}" for level, n in report.compatibility.items())
    return [f"**Compatibility:** {parts} (see `COMPATIBILITY.md`)"] if parts else []


def _file_list(report: PlanReport) -> list[str]:
    if not report.files:
        return ["No rendered file changes: the committed output is up to date."]
    return [f"* `{f.path}` ({f.status})" for f in report.files]


def _resource_lists(report: PlanReport) -> list[str]:
    lines = []
    for action, label in (("create", "Create"), ("update", "Update"), ("replace", "Replace"), ("delete", "Destroy")):
        names = [f"`{r.address}`" for r in report.resources if r.action == action]
        if names:
            shown = ", ".join(names[:20]) + (f", … ({len(names) - 20} more)" if len(names) > 20 else "")
            lines.append(f"* {label}: {shown}")
    return lines + ([""] if lines else []) + [f"> {note}" for note in report.notes]


def _details(report: PlanReport, link: str) -> list[str]:
    lines: list[str] = []
    budget = _DETAIL_BUDGET
    for diff in [*report.files, *_ansible_diff(report)]:
        summary = f"{diff.path} ({diff.status}, {diff.diff.count(chr(10))} lines)"
        block = _fold(summary, "diff", diff.diff)
        if len(block) > budget:
            if budget > 1_000:
                lines.append(_fold(summary + ", truncated", "diff", diff.diff[: budget - 500]))
            lines.append(f"\n_The rest of the diff is truncated to stay under GitHub's comment limit: see {link}._")
            break
        budget -= len(block)
        lines.append(block)
    return lines


def _ansible_diff(report: PlanReport) -> list[FileDiff]:
    """The Ansible check as one more folded block: the tasks that would change, then their diffs."""
    if report.ansible is None or not report.ansible.changed:
        return []
    text = "".join(f"# would change: {task}\n" for task in report.ansible.tasks) + report.ansible.diff
    if report.ansible.hidden:
        text += f"# and {report.ansible.hidden} task result(s) hidden by no_log (they carry passwords)\n"
    return [FileDiff(f"Ansible --check --diff on {report.ansible.where}", "would change", text)]


def _fold(summary: str, language: str, text: str) -> str:
    fence = "````" if "```" in text else "```"
    body = f"{fence}{language}\n{text.rstrip()}\n{fence}"
    if text.count("\n") <= _FOLD_LINES:
        return f"\n**{summary}**\n\n{body}\n"
    return f"\n<details><summary>{summary}</summary>\n\n{body}\n</details>\n"
