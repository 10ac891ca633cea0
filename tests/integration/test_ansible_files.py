"""valkey_files, the roles' module that writes a host's files in one run: content, mode, idempotence, check, diff."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest
import yaml

from reproducer.resources import data_dir
from reproducer.run.ansible import AnsibleError, diff_text, run_playbook

LIBRARY = data_dir("playbooks") / "roles" / "valkey_common" / "library"
INVENTORY = {
    "all": {"hosts": {"localhost": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}
}


@pytest.fixture
def write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Run valkey_files once on ``files`` (a fresh ansible-runner directory each time); return the result."""
    monkeypatch.setenv("ANSIBLE_LIBRARY", str(LIBRARY))
    runs = iter(range(100))

    def run(files: list[dict[str, object]], *, check: bool = False):
        playbook = tmp_path / "files.yml"
        task = {"name": "Write the files", "valkey_files": {"files": "{{ files }}"}, "register": "written"}
        playbook.write_text(yaml.safe_dump([{"hosts": "all", "gather_facts": False, "tasks": [task]}]))
        return run_playbook(
            playbook,
            INVENTORY,
            private_data_dir=tmp_path / f"run{next(runs)}",
            extravars={"files": files},
            check=check,
            diff=check,
        )

    return run


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_files_are_written_once_then_left_alone_and_a_check_only_reports(write, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    bystander = tmp_path / "bystander"
    bystander.write_text("not to be touched\n")
    (out / "linked.conf").symlink_to(bystander)
    (out / "kept.conf").write_text("the live copy\n")
    hostile = "port 1 {{ lookup('pipe', 'id') }}\n$(id)\n"
    files = [
        {"path": str(out / "a.conf"), "content": hostile, "mode": "0640"},
        {"path": str(out / "linked.conf"), "content": "replaced\n", "mode": "0600"},
        {"path": str(out / "kept.conf"), "content": "managed\n", "mode": "0644", "force": False},
    ]

    first = write(files)
    assert first.changed == 1
    assert (out / "a.conf").read_text() == hostile and mode(out / "a.conf") == 0o640
    assert not (out / "linked.conf").is_symlink() and (out / "linked.conf").read_text() == "replaced\n"
    assert bystander.read_text() == "not to be touched\n", "the link was followed"
    assert (out / "kept.conf").read_text() == "the live copy\n", "force: false replaced an existing file"
    assert write(files).changed == 0, "a second run changed something"

    (out / "a.conf").write_text("edited by hand\n")
    os.chmod(out / "linked.conf", 0o644)
    check = write(files, check=True)
    assert check.changed == 1 and (out / "a.conf").read_text() == "edited by hand\n", "a check wrote"
    assert mode(out / "linked.conf") == 0o644, "a check changed a mode"
    assert "-edited by hand" in diff_text(check.events) and "+$(id)" in diff_text(check.events)
    assert not [p for p in out.iterdir() if p.name.startswith(".valkey_files-")], "a temporary file was left"


@pytest.mark.bad_input
@pytest.mark.parametrize(
    ("entry", "error"),
    [
        ({"path": "relative.conf", "content": "x"}, "must be absolute"),
        ({"path": "/tmp/x.conf", "content": "x", "force": "sometimes"}, "force must be true or false"),
        ({"path": "/tmp/x.conf", "content": "x", "command": "id"}, "no other key"),
        ({"path": "/tmp/x.conf", "content": "x", "mode": "u+rwx"}, "octal digits"),
    ],
)
def test_a_malformed_entry_fails_the_task_before_any_file_is_written(write, tmp_path, entry, error):
    first = {"path": str(tmp_path / "first.conf"), "content": "x\n", "mode": "0600"}
    with pytest.raises(AnsibleError, match=error):
        write([entry, first])
    assert not (tmp_path / "first.conf").exists()
