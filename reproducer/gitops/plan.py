"""What ``reproducer plan`` reports, as a markdown pull-request comment and as JSON.

File-level diffs against the committed output, the Terraform plan summary and compatibility counts; the
comment stays under GitHub's size limit.

Everything here is pure: inputs in, text out.
"""

from __future__ import annotations

import difflib
import html
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reproducer.gitops.manifest import MANIFEST, read_manifest

FORMAT_VERSION = "1.2"
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
class AttributeChange:
    """One attribute of a resource that changes: its path and its values as shown (masked when sensitive)."""

    path: str
    before: str
    after: str
    forces_replacement: bool = False


@dataclass(frozen=True)
class ResourcePlan:
    """One resource of the Terraform plan, what happens to it, and which attributes change.

    ``previous_address`` is set for a resource whose address changes with its name (a renamed user): Terraform
    plans it as a destroy of the old address and a create of the new one, shown here as one replacement.
    """

    address: str
    action: str  # create | update | replace | delete
    changes: tuple[AttributeChange, ...] = ()
    previous_address: str = ""

    @property
    def forced_by(self) -> list[str]:
        """The changed attributes that force the replacement."""
        return [change.path for change in self.changes if change.forces_replacement]


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


#: Per-run temporary names Ansible and Python make (remote and local module directories, ``tempfile`` names):
#: a ``--check --diff`` shows them in headers and they change on every run, so a comment would change each push.
_PER_RUN = (
    (re.compile(r"ansible-tmp-[0-9.]+-[0-9]+-[0-9]+"), "ansible-tmp-…"),
    (re.compile(r"ansible-local-[0-9]+[A-Za-z0-9_]+"), "ansible-local-…"),
    (re.compile(r"(?<![A-Za-z0-9_])tmp[a-z0-9_]{8}(?![A-Za-z0-9_])"), "tmp…"),
)


def stable_paths(text: str, scratch: Path | None = None) -> str:
    """``text`` with the per-run temporary paths of a check replaced by stable names.

    ``scratch`` (the private directory a check rendered into) becomes ``<scratch>``; Ansible's per-run module
    directories and ``tempfile`` names lose their random part (:data:`_PER_RUN`).
    """
    if scratch is not None:
        text = text.replace(str(scratch), "<scratch>")
    for pattern, stable in _PER_RUN:
        text = pattern.sub(stable, text)
    return text


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


#: How a sensitive value and a value Terraform knows only after apply are shown.
MASKED, KNOWN_AFTER = "(sensitive value)", "(known after apply)"
_SHOWN_CHARS = 160
#: Attribute names that hold secrets even where a schema does not flag them (cdktf-derived schemas carry no flags).
_SECRET_NAME = re.compile(r"password|passwd|secret|token|private_key|credential", re.IGNORECASE)

#: ``(provider address, resource type, attribute path) -> bool``: whether the provider's schema marks it sensitive.
Sensitive = Callable[[str, str, tuple[str | int, ...]], bool]
#: ``(provider address, resource type, top-level attribute) -> bool``: whether a change of it forces replacement.
Forces = Callable[[str, str, str], bool]


def _never(*_: Any) -> bool:
    return False


@dataclass(frozen=True)
class _Change:
    """One managed resource's entry of ``terraform show -json``'s ``resource_changes``."""

    address: str
    type: str
    provider: str
    action: str
    change: dict[str, Any]

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> _Change | None:
        actions = tuple(raw.get("change", {}).get("actions", ()))
        if raw.get("mode", "managed") != "managed":
            return None
        action = "replace" if "delete" in actions and "create" in actions else (actions[0] if actions else "no-op")
        if action not in ("create", "update", "replace", "delete"):
            return None
        return cls(raw["address"], raw.get("type", ""), raw.get("provider_name", ""), action, raw["change"])


def _child(mark: Any, key: str | int) -> Any:
    """The part of a ``*_sensitive``/``after_unknown`` mark tree under ``key`` (``True`` covers a whole subtree)."""
    if mark is True:
        return True
    if isinstance(mark, dict) and isinstance(key, str):
        return mark.get(key, False)
    if isinstance(mark, list) and isinstance(key, int) and key < len(mark):
        return mark[key]
    return False


def _any(mark: Any) -> bool:
    if isinstance(mark, dict):
        return any(_any(v) for v in mark.values())
    if isinstance(mark, list):
        return any(_any(v) for v in mark)
    return mark is True


def _path_text(path: tuple[str | int, ...]) -> str:
    text = ""
    for item in path:
        text += f"[{item}]" if isinstance(item, int) else (f".{item}" if text else item)
    return text


def _shown(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(", ", ": "))
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 1] + "…"


@dataclass(frozen=True)
class _Differ:
    """Walks a resource's before and after values side by side, with their sensitive and unknown marks."""

    change: _Change
    sensitive: Sensitive
    forced: tuple[tuple[str | int, ...], ...]

    def masked(self, path: tuple[str | int, ...], marks: tuple[Any, Any]) -> bool:
        names = [item for item in path if isinstance(item, str)]
        by_schema = self.sensitive(self.change.provider, self.change.type, path)
        return _any(marks[0]) or _any(marks[1]) or by_schema or any(_SECRET_NAME.search(n) for n in names)

    def leaf(
        self, path: tuple[str | int, ...], before: Any, after: Any, marks: tuple[Any, Any, Any]
    ) -> AttributeChange:
        hide = self.masked(path, marks[:2])
        old = "null" if before is None else MASKED if hide else _shown(before)
        new = KNOWN_AFTER if _any(marks[2]) else "null" if after is None else MASKED if hide else _shown(after)
        forces = any(path[: len(f)] == f or f[: len(path)] == path for f in self.forced)
        return AttributeChange(_path_text(path), old, new, forces)

    def walk(
        self, path: tuple[str | int, ...], before: Any, after: Any, marks: tuple[Any, Any, Any]
    ) -> list[AttributeChange]:
        unknown = marks[2] is True
        if not unknown and isinstance(before, dict) and isinstance(after, dict):
            keys: list[str | int] = sorted(set(before) | set(after))
        elif not unknown and isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
            keys = list(range(len(before)))
        elif not unknown and isinstance(before, list) and isinstance(after, list):
            return self.elements(path, before, after, marks)
        elif unknown or before != after:
            return [self.leaf(path, before, after, marks)]
        else:
            return []
        found: list[AttributeChange] = []
        for key in keys:
            sub = tuple(_child(m, key) for m in marks)
            found += self.walk(
                (*path, key), _child_value(before, key), _child_value(after, key), (sub[0], sub[1], sub[2])
            )
        return found

    def elements(
        self, path: tuple[str | int, ...], before: list[Any], after: list[Any], marks: tuple[Any, Any, Any]
    ) -> list[AttributeChange]:
        """A list that grew or shrank: each element removed (before -> null), then each added (null -> after)."""
        removed = [e for e in before if e not in after]
        added = [e for e in after if e not in before]
        gone = [self.leaf(path, e, None, (marks[0], marks[1], False)) for e in removed]
        return gone + [self.leaf(path, None, e, marks) for e in added]


def _child_value(value: Any, key: str | int) -> Any:
    if isinstance(key, int):
        return value[key] if isinstance(value, list) and key < len(value) else None
    return value.get(key) if isinstance(value, dict) else None


def _changes(before: _Change, after: _Change, sensitive: Sensitive, forced: list[Any]) -> tuple[AttributeChange, ...]:
    differ = _Differ(after, sensitive, tuple(tuple(p) for p in forced))
    old, new = before.change, after.change
    marks = (old.get("before_sensitive", False), new.get("after_sensitive", False), new.get("after_unknown", False))
    return tuple(differ.walk((), old.get("before"), new.get("after"), marks))


def _differing(gone: _Change, new: _Change) -> set[str]:
    """Top-level attributes whose known values differ (a value known only after apply is no difference yet)."""
    before, after = gone.change.get("before") or {}, new.change.get("after") or {}
    unknown = new.change.get("after_unknown") or {}
    keys = set(before) | set(after)
    return {key for key in keys if before.get(key) != after.get(key) and not _any(_child(unknown, key))}


def _pair_renames(changes: list[_Change], forces: Forces) -> list[tuple[_Change, _Change]]:
    """Each destroyed resource matched with a created one of the same type whose differences force replacement."""
    created = [c for c in changes if c.action == "create"]
    pairs = []
    for gone in (c for c in changes if c.action == "delete"):
        candidates = []
        for new in created:
            differing = _differing(gone, new)
            same_kind = (new.type, new.provider) == (gone.type, gone.provider)
            if same_kind and any(forces(new.provider, new.type, attr) for attr in differing):
                candidates.append((len(differing), new.address, new))
        if candidates:
            match = min(candidates, key=lambda c: (c[0], c[1]))[2]
            created.remove(match)
            pairs.append((gone, match))
    return pairs


def terraform_resources(
    resource_changes: Iterable[dict[str, Any]], sensitive: Sensitive = _never, forces: Forces = _never
) -> list[ResourcePlan]:
    """What a plan does to each managed resource (``terraform show -json``'s ``resource_changes``).

    A delete plus create of one address is a replacement (``replace_paths`` name what forces it); a destroyed
    and a created resource of one type whose differences force replacement (see ``forces``) are shown as one
    renamed replacement. Updates and replacements list each changed attribute, before and after; values that
    Terraform marks sensitive, that the schema flags (``sensitive``) or whose name says secret are masked.
    """
    changes = [c for c in (_Change.parse(raw) for raw in resource_changes) if c is not None]
    pairs = _pair_renames(changes, forces)
    paired = {c.address for pair in pairs for c in pair}
    plans = []
    for gone, new in pairs:
        forced = [[a] for a in _differing(gone, new) if forces(new.provider, new.type, a)]
        plans.append(ResourcePlan(new.address, "replace", _changes(gone, new, sensitive, forced), gone.address))
    for change in changes:
        if change.address in paired:
            continue
        listed = change.action in ("update", "replace")
        details = _changes(change, change, sensitive, change.change.get("replace_paths") or []) if listed else ()
        plans.append(ResourcePlan(change.address, change.action, details))
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
            "resources": [_resource_json(r) for r in report.resources],
        },
        "ansible": None
        if report.ansible is None
        else {"where": report.ansible.where, "changed": report.ansible.changed, "tasks": report.ansible.tasks},
        "compatibility": report.compatibility,
        "notes": report.notes,
    }
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def _resource_json(resource: ResourcePlan) -> dict[str, Any]:
    return {
        "address": resource.address,
        "action": resource.action,
        "previous_address": resource.previous_address or None,
        "forced_by": resource.forced_by,
        "changes": [
            {"path": c.path, "before": c.before, "after": c.after, "forces_replacement": c.forces_replacement}
            for c in resource.changes
        ],
    }


def to_markdown(report: PlanReport, *, details_link: str = "the CI job log") -> str:
    """The pull-request comment: marker, summary, destroy warning, tables, folded diffs, within the size limit."""
    icon = "✅" if not report.has_changes else "📝"
    head = [
        f"<!-- reproducer:plan target={report.target} source={report.source} version=1 -->",
        f"## {icon} reproducer plan — {report.target}",
        "",
    ]
    head += _destroy_warning(report)
    head += [*_summary_table(report), "", *_compat_line(report), "", *_file_list(report), "", *_resource_lists(report)]
    body = _details(report, details_link)
    return "\n".join(head + body).rstrip() + "\n"


def _code(text: str) -> str:
    """``text`` as an inline code span that no value can break out of (no backtick, no line break)."""
    clean = "".join(ch if ch.isprintable() and ch != "`" else "?" for ch in text)
    return f"`{clean[:200]}`"


def _destroy_warning(report: PlanReport) -> list[str]:
    """A visible block before anything else when resources are destroyed or replaced, naming each and why."""
    doomed = [r for r in report.resources if r.action in ("delete", "replace")]
    if not doomed:
        return []
    lines = [f"> ⚠️ **{len(doomed)} resource(s) will be destroyed or replaced.** Review carefully.", ">"]
    for resource in doomed[:50]:
        if resource.action == "delete":
            lines.append(f"> * **Destroy** {_code(resource.address)}")
            continue
        was = f" (was {_code(resource.previous_address)})" if resource.previous_address else ""
        forced = ", ".join(_code(path) for path in resource.forced_by) or "a change Terraform cannot make in place"
        lines.append(f"> * **Replace** {_code(resource.address)}{was}: destroyed and created again, forced by {forced}")
    if len(doomed) > 50:
        lines.append(f"> * … and {len(doomed) - 50} more")
    return [*lines, ""]


def _summary_table(report: PlanReport) -> list[str]:
    counts = report.counts
    labels = {"offline": " (offline, vs committed)", "state": " (vs the real state, read-only)", "none": " (not run)"}
    mode = "Terraform" + labels.get(report.terraform_mode, "")
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
    for diff in [*_attribute_diffs(report), *report.files, *_ansible_diff(report)]:
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


def _attribute_diffs(report: PlanReport) -> list[FileDiff]:
    """Each updated or replaced resource's changed attributes, before -> after, as one folded block."""
    blocks = []
    for resource in report.resources:
        if not resource.changes:
            continue
        lines = [f"# was {resource.previous_address}\n"] if resource.previous_address else []
        for change in resource.changes:
            note = "  # forces replacement" if change.forces_replacement else ""
            lines.append(f"~ {change.path}: {change.before} -> {change.after}{note}\n")
        blocks.append(FileDiff(resource.address, resource.action, "".join(lines)))
    return blocks


def _ansible_diff(report: PlanReport) -> list[FileDiff]:
    """The Ansible check as one more folded block: the tasks that would change, then their diffs."""
    if report.ansible is None or not report.ansible.changed:
        return []
    text = "".join(f"# would change: {task}\n" for task in report.ansible.tasks) + report.ansible.diff
    if report.ansible.hidden:
        text += f"# and {report.ansible.hidden} task result(s) hidden by no_log (they carry passwords)\n"
    return [FileDiff(f"Ansible --check --diff on {report.ansible.where}", "would change", text)]


def _fold(summary: str, language: str, text: str) -> str:
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)  # longer than any backtick run inside, so no line of the text can close it
    summary = html.escape("".join(ch if ch.isprintable() and ch != "`" else "?" for ch in summary), quote=False)
    body = f"{fence}{language}\n{text.rstrip()}\n{fence}"
    if text.count("\n") <= _FOLD_LINES:
        return f"\n**{summary}**\n\n{body}\n"
    return f"\n<details><summary>{summary}</summary>\n\n{body}\n</details>\n"
