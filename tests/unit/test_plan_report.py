"""The PR comment and JSON of `reproducer plan` (pure parts)."""

import json

from reproducer.gitops.plan import (
    COMMENT_LIMIT,
    AnsibleCheck,
    FileDiff,
    PlanReport,
    ResourcePlan,
    compare_resources,
    file_diffs,
    resource_plans,
    to_json,
    to_markdown,
)


def test_file_diffs_classify_added_changed_removed(tmp_path):
    (tmp_path / "terraform").mkdir()
    (tmp_path / "terraform" / "main.tf").write_text("a\n")
    (tmp_path / "terraform" / "old.tf").write_text("x\n")
    (tmp_path / "terraform" / "terraform.tfvars").write_text("secret = 1\n")
    diffs = file_diffs({"terraform/main.tf": "b\n", "terraform/new.tf": "n\n"}, tmp_path)
    assert [(d.path, d.status) for d in diffs] == [
        ("terraform/main.tf", "changed"),
        ("terraform/new.tf", "added"),
        ("terraform/old.tf", "removed"),
    ]
    assert "-a\n+b" in diffs[0].diff


def test_resource_comparison_and_replace_detection():
    old = {"a.x": {"v": 1}, "a.y": {"v": 1}, "a.z": {"v": 1}}
    new = {"a.x": {"v": 1}, "a.y": {"v": 2}, "a.w": {"v": 1}}
    assert compare_resources(old, new) == [
        ResourcePlan("a.w", "create"),
        ResourcePlan("a.y", "update"),
        ResourcePlan("a.z", "delete"),
    ]
    assert resource_plans([("r", ("delete", "create")), ("s", ("no-op",))]) == [ResourcePlan("r", "replace")]


def test_markdown_has_marker_summary_and_destroy_warning():
    report = PlanReport(
        "aws",
        "ovh:abc",
        files=[FileDiff("terraform/main.tf", "changed", "-a\n+b\n")],
        resources=[ResourcePlan("aws_x.gone", "delete")],
        compatibility={"exact": 3, "manual": 1},
    )
    text = to_markdown(report)
    assert text.startswith("<!-- reproducer:plan target=aws source=ovh:abc version=1 -->")
    assert "1 resource(s) will be destroyed or replaced" in text and "Destroy: `aws_x.gone`" in text
    assert "3 exact · 1 manual" in text and "```diff" in text


def test_huge_diffs_stay_under_the_comment_limit():
    huge = "".join(f"+line {i} {'x' * 80}\n" for i in range(5000))
    files = [FileDiff(f"terraform/f{i}.tf", "added", huge) for i in range(3)]
    text = to_markdown(PlanReport("gcp", "ovh:abc", files=files), details_link="https://ci.example/run/1")
    assert len(text) < COMMENT_LIMIT
    assert "truncated" in text and "https://ci.example/run/1" in text


def test_json_has_a_documented_shape():
    report = PlanReport("ovh", "ovh:abc", resources=[ResourcePlan("ovh_x.y", "create")], compatibility={"exact": 1})
    data = json.loads(to_json(report))
    assert data["format_version"] == "1.1" and data["changes"] is True
    assert set(data) == {
        "format_version",
        "target",
        "source",
        "changes",
        "files",
        "terraform",
        "ansible",
        "compatibility",
        "notes",
    }
    assert data["terraform"] == {
        "mode": "offline",
        "create": 1,
        "update": 0,
        "replace": 0,
        "delete": 0,
        "resources": [{"address": "ovh_x.y", "action": "create"}],
    }
    assert not json.loads(to_json(PlanReport("ovh", "ovh:abc")))["changes"]


def test_an_ansible_check_counts_as_a_change_and_shows_its_tasks_and_diff():
    check = AnsibleCheck(2, ["h1: Write valkey.conf"], "--- a\n+++ b\n-maxmemory 1gb\n+maxmemory 2gb\n", "3 host(s)")
    report = PlanReport("selfmanaged", "ovh:abc", ansible=check)
    assert report.has_changes
    text = to_markdown(report)
    assert "| Ansible tasks (--check, 3 host(s)) | | 2 | | |" in text and "1 task result(s) hidden by no_log" in text
    assert "# would change: h1: Write valkey.conf" in text and "+maxmemory 2gb" in text
    assert json.loads(to_json(report))["ansible"] == {
        "where": "3 host(s)",
        "changed": 2,
        "tasks": ["h1: Write valkey.conf"],
    }
    assert not PlanReport("local", "ovh:abc", ansible=AnsibleCheck(0, [], "", "this machine")).has_changes


def test_files_a_deployment_added_are_not_diffed_unless_rendered(tmp_path):
    (tmp_path / "ansible" / "runner").mkdir(parents=True)
    (tmp_path / "ansible" / "runner" / "command").write_text("{}")
    (tmp_path / "ansible" / "inventory.yml").write_text("all: {}\n")
    (tmp_path / "terraform").mkdir()
    (tmp_path / "terraform" / "terraform.tfstate").write_text("{}")
    assert file_diffs({}, tmp_path) == []
    local = file_diffs({"ansible/inventory.yml": "all: {}\n"}, tmp_path)
    assert local == [], "a rendered inventory (the local target's) is compared like any rendered file"
    assert [d.status for d in file_diffs({"ansible/inventory.yml": "all: {hosts: {}}\n"}, tmp_path)] == ["changed"]
