"""plan's Ansible check: per-run temporary paths become stable names, so a comment changes only with the plan."""

from __future__ import annotations

from pathlib import Path

from reproducer.gitops.plan import AnsibleCheck, PlanReport, stable_paths, to_markdown


def _check_diff(scratch: str, run: str, local: str, temp: str) -> str:
    """A ``--check --diff`` as Ansible's template and copy modules word it, with one run's temporary names."""
    return (
        f"--- host-1: Write valkey.conf (before: /etc/valkey/valkey.conf)\n"
        f"+++ host-1: Write valkey.conf (after: {scratch}/out/ansible/roles/valkey/templates/valkey.conf.j2)\n"
        "-timeout 300\n+timeout 600\n"
        f"--- host-1: Copy the ACL file (before: /home/ci/.ansible/tmp/ansible-tmp-{run}/source)\n"
        f"+++ host-1: Copy the ACL file (after: /root/.ansible/tmp/ansible-local-{local}/{temp}/users.acl)\n"
    )


def test_two_runs_of_the_same_check_give_the_same_comment():
    first = _check_diff("/tmp/reproducer-check-x1y2z3ab", "1733222.12-4567-89012345", "4242k3j_2a", "tmpab12cd34")
    second = _check_diff("/tmp/reproducer-check-q9w8e7rt", "1733290.98-1111-22222222", "977p0o_9iu", "tmpzz99yy88")
    stable = [
        stable_paths(first, Path("/tmp/reproducer-check-x1y2z3ab")),
        stable_paths(second, Path("/tmp/reproducer-check-q9w8e7rt")),
    ]
    assert stable[0] == stable[1]
    assert "reproducer-check-" not in stable[0] and "1733222" not in stable[0] and "tmpab12cd34" not in stable[0]
    assert "(after: <scratch>/out/ansible/roles/valkey/templates/valkey.conf.j2)" in stable[0]
    assert "/etc/valkey/valkey.conf" in stable[0] and "+timeout 600" in stable[0], "real paths and values stay"
    checks = [AnsibleCheck(1, ["host-1: Write valkey.conf"], diff, "1 host(s)") for diff in stable]
    comments = [to_markdown(PlanReport("local", "ovh:x", ansible=check)) for check in checks]
    assert comments[0] == comments[1]


def test_names_that_only_look_temporary_stay():
    text = "tmpfs /var/lib/valkey; template valkey.conf.j2; attmpabcdefgh; tmp_dir_name_long_enough"
    assert stable_paths(text) == text
