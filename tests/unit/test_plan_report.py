"""The PR comment and JSON of `reproducer plan` (pure parts)."""

import json

from reproducer.gitops.plan import (
    COMMENT_LIMIT,
    KNOWN_AFTER,
    MASKED,
    AnsibleCheck,
    AttributeChange,
    FileDiff,
    PlanReport,
    ResourcePlan,
    file_diffs,
    terraform_resources,
    to_json,
    to_markdown,
)

AWS = "registry.terraform.io/hashicorp/aws"


def change(address, actions, before, after, **extra):
    """One entry of ``terraform show -json``'s ``resource_changes``."""
    kind = address.split(".")[0]
    body = {"actions": list(actions), "before": before, "after": after, **extra}
    return {"address": address, "mode": "managed", "type": kind, "provider_name": AWS, "change": body}


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


def test_terraform_actions_become_one_action_each_with_changed_attributes():
    changes = [
        change(
            "aws_subnet.a",
            ["delete", "create"],
            {"cidr_block": "10.0.1.0/24", "id": "s-1"},
            {"cidr_block": "10.0.2.0/24", "id": None},
            after_unknown={"id": True},
            replace_paths=[["cidr_block"]],
        ),
        change("aws_vpc.v", ["no-op"], {"id": "v"}, {"id": "v"}),
        change(
            "aws_security_group.g", ["update"], {"tags": {"a": "1"}, "name": "g"}, {"tags": {"a": "2"}, "name": "g"}
        ),
        change("aws_vpc.new", ["create"], None, {"cidr_block": "10.1.0.0/16"}),
        change("aws_vpc.old", ["delete"], {"cidr_block": "10.2.0.0/16"}, None),
        {"address": "data.aws_x.y", "mode": "data", "type": "aws_x", "change": {"actions": ["read"]}},
    ]
    plans = terraform_resources(changes)
    assert [(p.address, p.action) for p in plans] == [
        ("aws_security_group.g", "update"),
        ("aws_subnet.a", "replace"),
        ("aws_vpc.new", "create"),
        ("aws_vpc.old", "delete"),
    ]
    assert plans[0].changes == (AttributeChange("tags.a", '"1"', '"2"'),)
    assert plans[1].changes == (
        AttributeChange("cidr_block", '"10.0.1.0/24"', '"10.0.2.0/24"', forces_replacement=True),
        AttributeChange("id", '"s-1"', KNOWN_AFTER),
    )
    assert plans[1].forced_by == ["cidr_block"]


def test_a_list_that_grows_or_shrinks_shows_each_element_removed_and_added():
    before = {"parameter": [{"name": "timeout", "value": "300"}, {"name": "a", "value": "1"}]}
    after = {
        "parameter": [{"name": "timeout", "value": "300"}, {"name": "b", "value": "2"}, {"name": "c", "value": "3"}]
    }
    [group] = terraform_resources([change("aws_elasticache_parameter_group.p", ["update"], before, after)])
    assert [(c.path, c.before, c.after) for c in group.changes] == [
        ("parameter", '{"name": "a", "value": "1"}', "null"),
        ("parameter", "null", '{"name": "b", "value": "2"}'),
        ("parameter", "null", '{"name": "c", "value": "3"}'),
    ]


def test_sensitive_values_are_masked_by_terraform_marks_schema_flags_and_names():
    before = {"user_name": "alice", "passwords": ["old-pw-1"], "access_string": "on ~a", "note": "n1", "x": "s1"}
    after = {"user_name": "alice", "passwords": ["new-pw-2"], "access_string": "on ~b", "note": "n2", "x": "s2"}
    marked = change(
        "aws_elasticache_user.u",
        ["update"],
        before,
        after,
        before_sensitive={"note": True},
        after_sensitive={"note": True},
    )
    schema_flag = lambda provider, kind, path: path[:1] == ("x",)  # noqa: E731
    plans = terraform_resources([marked], sensitive=schema_flag)
    shown = {c.path: (c.before, c.after) for c in plans[0].changes}
    assert shown == {
        "access_string": ('"on ~a"', '"on ~b"'),
        "note": (MASKED, MASKED),
        "passwords[0]": (MASKED, MASKED),
        "x": (MASKED, MASKED),
    }
    text = to_markdown(PlanReport("aws", "ovh:abc", resources=plans)) + to_json(
        PlanReport("aws", "ovh:a", resources=plans)
    )
    for secret in ("old-pw-1", "new-pw-2", "n1", "n2", "s1", "s2"):
        assert secret not in text


def test_a_renamed_resource_is_one_replacement_when_its_differences_force_one():
    gone = change(
        "aws_elasticache_user.alice", ["delete"], {"user_name": "alice", "user_id": "c-alice", "engine": "valkey"}, None
    )
    new = change(
        "aws_elasticache_user.bob", ["create"], None, {"user_name": "bob", "user_id": "c-bob", "engine": "valkey"}
    )
    other = change("aws_vpc_security_group_ingress_rule.r", ["create"], None, {"cidr_ipv4": "10.0.0.0/8"})
    forces = lambda provider, kind, attr: attr in {"user_name", "user_id", "cidr_ipv4"}  # noqa: E731
    plans = terraform_resources([gone, new, other], forces=forces)
    assert [(p.address, p.action, p.previous_address) for p in plans] == [
        ("aws_elasticache_user.bob", "replace", "aws_elasticache_user.alice"),
        ("aws_vpc_security_group_ingress_rule.r", "create", ""),
    ]
    assert plans[0].forced_by == ["user_id", "user_name"]
    unpaired = terraform_resources([gone, new])
    assert [p.action for p in unpaired] == ["delete", "create"], "without replace facts nothing is paired"


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
    assert "> * **Destroy** `aws_x.gone`" in text
    assert "3 exact · 1 manual" in text and "```diff" in text


def test_the_warning_names_each_replacement_and_what_forces_it_before_anything_else():
    forced = (AttributeChange("user_name", '"alice"', '"bob"', True), AttributeChange("arn", '"x"', KNOWN_AFTER))
    resources = [
        ResourcePlan("aws_elasticache_user.bob", "replace", forced, previous_address="aws_elasticache_user.alice"),
        ResourcePlan("aws_subnet.a`\nx", "replace", (AttributeChange("cidr_block", '"a"', '"b"', True),)),
    ]
    text = to_markdown(PlanReport("aws", "ovh:abc", resources=resources))
    warning = text.index("2 resource(s) will be destroyed or replaced")
    assert warning < text.index("| Terraform")
    assert (
        "> * **Replace** `aws_elasticache_user.bob` (was `aws_elasticache_user.alice`): destroyed and created "
        "again, forced by `user_name`" in text
    )
    assert "`aws_subnet.a??x`" in text, "an address cannot break out of its code span"
    assert '~ user_name: "alice" -> "bob"  # forces replacement' in text and f'~ arn: "x" -> {KNOWN_AFTER}' in text
    assert "| Terraform (offline, vs committed) | 0 | 0 | 2 | 0 |" in text
    assert "**aws_subnet.a??x (replace, 1 lines)**" in text


def test_huge_diffs_stay_under_the_comment_limit():
    huge = "".join(f"+line {i} {'x' * 80}\n" for i in range(5000))
    files = [FileDiff(f"terraform/f{i}.tf", "added", huge) for i in range(3)]
    text = to_markdown(PlanReport("gcp", "ovh:abc", files=files), details_link="https://ci.example/run/1")
    assert len(text) < COMMENT_LIMIT
    assert "truncated" in text and "https://ci.example/run/1" in text


def test_json_has_a_documented_shape():
    report = PlanReport("ovh", "ovh:abc", resources=[ResourcePlan("ovh_x.y", "create")], compatibility={"exact": 1})
    data = json.loads(to_json(report))
    assert data["format_version"] == "1.2" and data["changes"] is True
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
        "resources": [
            {"address": "ovh_x.y", "action": "create", "previous_address": None, "forced_by": [], "changes": []}
        ],
    }
    replaced = ResourcePlan("ovh_u.b", "replace", (AttributeChange("name", '"a"', '"b"', True),), "ovh_u.a")
    entry = json.loads(to_json(PlanReport("ovh", "ovh:abc", resources=[replaced])))["terraform"]["resources"][0]
    assert entry == {
        "address": "ovh_u.b",
        "action": "replace",
        "previous_address": "ovh_u.a",
        "forced_by": ["name"],
        "changes": [{"path": "name", "before": '"a"', "after": '"b"', "forces_replacement": True}],
    }
    assert to_json(PlanReport("ovh", "ovh:abc", resources=[replaced])) == to_json(
        PlanReport("ovh", "ovh:abc", resources=[replaced])
    )
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
