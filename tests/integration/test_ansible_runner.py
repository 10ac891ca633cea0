"""Real Ansible through ansible-runner on this machine: vaulted secrets never on disk in clear, clear failures."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from reproducer.run.ansible import AnsibleError, run_playbook

PLAYBOOK = """
- hosts: all
  gather_facts: false
  tasks:
    - name: write a file with the secret
      ansible.builtin.copy:
        dest: "{{ out_dir }}/secret.txt"
        content: "{{ db_password }}"
        mode: "0600"
      no_log: true
    - name: fail on purpose when asked
      ansible.builtin.fail:
        msg: asked to fail
      when: please_fail | default(false)
"""
INVENTORY = {
    "all": {"hosts": {"localhost": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}
}
SECRET = "Sup3r-S3cret-for-the-test"


@pytest.fixture
def playbook(tmp_path) -> Path:
    path = tmp_path / "site.yml"
    path.write_text(PLAYBOOK)
    (tmp_path / "out").mkdir()
    return path


def everything_under(directory: Path) -> str:
    return "".join(p.read_text(errors="replace") for p in directory.rglob("*") if p.is_file())


def test_secret_reaches_the_play_but_never_the_disk_in_clear(playbook, tmp_path):
    lines: list[str] = []
    result = run_playbook(
        playbook,
        INVENTORY,
        private_data_dir=tmp_path / "run",
        extravars={"out_dir": str(tmp_path / "out")},
        secret_vars={"db_password": SECRET},
        progress=lines.append,
    )
    assert result.status == "successful" and result.changed == 1
    assert (tmp_path / "out" / "secret.txt").read_text() == SECRET
    assert "task: write a file with the secret" in lines
    assert SECRET not in everything_under(tmp_path / "run")
    assert "$ANSIBLE_VAULT" in (tmp_path / "run" / "secrets.vault.yml").read_text()


def test_check_mode_changes_nothing(playbook, tmp_path):
    run_playbook(
        playbook,
        INVENTORY,
        private_data_dir=tmp_path / "run",
        extravars={"out_dir": str(tmp_path / "out")},
        secret_vars={"db_password": SECRET},
        check=True,
        diff=True,
    )
    assert not (tmp_path / "out" / "secret.txt").exists()


def test_failure_names_host_task_and_message(playbook, tmp_path):
    with pytest.raises(AnsibleError, match="task 'fail on purpose when asked' failed on localhost: asked to fail"):
        run_playbook(
            playbook,
            INVENTORY,
            private_data_dir=tmp_path / "run",
            extravars={"out_dir": str(tmp_path / "out"), "please_fail": True},
            secret_vars={"db_password": "x"},
        )
