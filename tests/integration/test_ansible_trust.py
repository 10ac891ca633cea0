"""Real Ansible through run_playbook, tried as an attacker would: spec values never run, secrets never leak,
signals stop a run and leave the caller's handlers as they were."""

from __future__ import annotations

import os
import secrets
import signal
import stat
import sys
import threading
import time
from pathlib import Path

import pytest

from reproducer.errors import Interrupted
from reproducer.run.ansible import run_playbook
from tests.support.cli import descendants
from tests.support.wait import eventually

INVENTORY = {
    "all": {"hosts": {"localhost": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}
}
TEMPLATED = """
- hosts: all
  gather_facts: false
  tasks:
    - name: show the value
      ansible.builtin.debug:
        msg: "value is {{ value }} / {{ nested.list[0] }} / {{ valkey_user_passwords.app }}"
    - name: write it through a template
      ansible.builtin.template:
        src: "{{ playbook_dir }}/value.j2"
        dest: "{{ out_dir }}/value.txt"
        mode: "0600"
    - name: write it through a set_fact
      ansible.builtin.set_fact:
        copied: "{{ value }}"
    - name: write the copy
      ansible.builtin.copy:
        content: "{{ copied }}|{{ lookup('vars', 'value') }}|{{ valkey_user_passwords.app }}\\n"
        dest: "{{ out_dir }}/copy.txt"
        mode: "0600"
"""
LEAKY = {"SRC_PW": "src-pw-value", "VALKEY_PASS": "valkey-pass-value", "DATABASE_URL": "valkey://a:url-pw@db:1"}


def attack(marker: Path) -> str:
    return f"x{{{{ lookup('pipe','touch {marker}') }}}}"


def everything_under(directory: Path) -> str:
    return "".join(p.read_text(errors="replace") for p in directory.rglob("*") if p.is_file())


@pytest.fixture
def templated(tmp_path) -> Path:
    (tmp_path / "value.j2").write_text("{{ value }}\n")
    (tmp_path / "out").mkdir()
    path = tmp_path / "site.yml"
    path.write_text(TEMPLATED)
    return path


def test_spec_values_and_secrets_are_never_templated(templated, tmp_path):
    marker = Path(f"/tmp/PWNED-{secrets.token_hex(6)}")
    value, secret = attack(marker), attack(Path(f"{marker}-secret"))
    try:
        run_playbook(
            templated,
            INVENTORY,
            private_data_dir=tmp_path / "run",
            extravars={"out_dir": str(tmp_path / "out"), "value": value, "nested": {"list": [value]}},
            secret_vars={"valkey_user_passwords": {"app": secret}},
        )
        assert not marker.exists() and not Path(f"{marker}-secret").exists()
    finally:
        marker.unlink(missing_ok=True)
        Path(f"{marker}-secret").unlink(missing_ok=True)
    assert (tmp_path / "out" / "value.txt").read_text() == value + "\n"
    assert (tmp_path / "out" / "copy.txt").read_text() == f"{value}|{value}|{secret}\n"


def test_inventory_values_are_never_templated(tmp_path):
    marker = Path(f"/tmp/PWNED-{secrets.token_hex(6)}")
    playbook = tmp_path / "show.yml"
    playbook.write_text(
        "- hosts: valkey\n  gather_facts: false\n  tasks:\n"
        "    - ansible.builtin.copy:\n        content: '{{ label }}|{{ groups.valkey[0] }}'\n"
        "        dest: '{{ out_dir }}/label.txt'\n        mode: '0600'\n"
    )
    host = {**INVENTORY["all"]["hosts"]["localhost"], "label": attack(marker)}
    inventory = {"all": {"children": {"valkey": {"hosts": {"localhost": host}}}}}
    try:
        run_playbook(playbook, inventory, private_data_dir=tmp_path / "run", extravars={"out_dir": str(tmp_path)})
        assert not marker.exists()
    finally:
        marker.unlink(missing_ok=True)
    assert (tmp_path / "label.txt").read_text() == f"{attack(marker)}|localhost"


def test_variables_reach_ansible_through_a_private_file_not_argv(templated, tmp_path):
    value = f"plain-{secrets.token_hex(4)}"
    run_playbook(
        templated,
        INVENTORY,
        private_data_dir=tmp_path / "run",
        extravars={"out_dir": str(tmp_path / "out"), "value": value, "nested": {"list": ["a"]}},
        secret_vars={"valkey_user_passwords": {"app": "pw"}},
    )
    command = next((tmp_path / "run" / "artifacts").glob("*/command")).read_text()
    assert value not in command
    files = [p for p in (tmp_path / "run").rglob("*") if p.is_file() and value in p.read_text(errors="replace")]
    assert files and all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in files)


ENV_PLAYBOOK = """
- hosts: all
  gather_facts: false
  tasks:
    - name: write what Ansible sees of the environment
      ansible.builtin.copy:
        content: "{{ lookup('env', 'SRC_PW', 'VALKEY_PASS', 'DATABASE_URL') }}|{{ lookup('env', 'HOME') }}"
        dest: "{{ out_dir }}/env.txt"
        mode: "0600"
"""


def test_only_an_allow_listed_environment_reaches_ansible_and_its_artifacts(tmp_path, monkeypatch):
    for name, value in LEAKY.items():
        monkeypatch.setenv(name, value)
    playbook = tmp_path / "env.yml"
    playbook.write_text(ENV_PLAYBOOK)
    run_playbook(playbook, INVENTORY, private_data_dir=tmp_path / "run", extravars={"out_dir": str(tmp_path)})
    assert (tmp_path / "env.txt").read_text() == f",,|{os.environ['HOME']}"
    recorded = everything_under(tmp_path / "run")
    assert "HOME" in recorded
    assert not [value for value in LEAKY.values() if value in recorded]


SLEEPY = """
- hosts: all
  gather_facts: false
  tasks:
    - name: sleep for a long time
      ansible.builtin.command: sleep 120
      changed_when: false
"""
QUICK = """
- hosts: all
  gather_facts: false
  tasks:
    - name: nothing
      ansible.builtin.debug:
        msg: hello
"""


def handlers() -> dict[int, object]:
    return {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}


def test_the_callers_signal_handlers_are_back_after_a_run(tmp_path):
    playbook = tmp_path / "quick.yml"
    playbook.write_text(QUICK)
    before = handlers()
    run_playbook(playbook, INVENTORY, private_data_dir=tmp_path / "run")
    assert handlers() == before


def raise_interrupted(signum, frame):
    raise Interrupted(signum)


@pytest.mark.fault("SIGTERM during a playbook task (sleep 120)", ends="interrupted within seconds")
@pytest.mark.parametrize(
    ("signum", "handler", "expected"),
    [(signal.SIGTERM, raise_interrupted, Interrupted), (signal.SIGINT, signal.default_int_handler, KeyboardInterrupt)],
)
def test_a_signal_during_a_long_task_stops_the_run_in_seconds(tmp_path, signum, handler, expected):
    playbook = tmp_path / "sleepy.yml"
    playbook.write_text(SLEEPY)
    previous = signal.signal(signum, handler)
    try:
        before = handlers()
        started = threading.Event()

        def on_progress(line: str) -> None:
            if "sleep for a long time" in line:
                started.set()

        def send() -> None:
            if started.wait(60):
                eventually(lambda: task_sleeping(os.getpid()), "the task's sleep 120 running", timeout=30)
                os.kill(os.getpid(), signum)

        threading.Thread(target=send, daemon=True).start()
        begin = time.monotonic()
        with pytest.raises(expected):
            run_playbook(playbook, INVENTORY, private_data_dir=tmp_path / "run", progress=on_progress)
        assert started.is_set() and time.monotonic() - begin < 30
        eventually(lambda: not playbooks_of(tmp_path), "ansible-playbook to exit", timeout=5)
        # The killed module's payload directory stays in the run's directory, not in the machine's /tmp.
        assert list((tmp_path / "run" / "tmp").glob("ansible_*_payload_*"))
        assert handlers() == before
    finally:
        signal.signal(signum, previous)


# ---- the roles on their own: values quoted for valkey.conf and the ACL file, passwords never in argv/env ----

PLAYBOOKS = Path(__file__).parents[2] / "playbooks"
INJECTED_CONFIG = 'x\nenable-debug-command yes\n"quoted" \\ é'
INJECTED_PATTERN = "~metrics:* nopass ~* +@all"


def local_vars(base: Path, port: int, **changes: object) -> dict[str, object]:
    return {
        "valkey_topology": "standalone",
        "valkey_instances": [
            {"name": f"valkey-{port}", "port": port, "role": "primary", "shard": 0, "primary_port": port}
        ],
        "valkey_replicas": 0,
        "valkey_sentinel_ports": [],
        "valkey_primary_name": "cache\nsentinel monitor evil 127.0.0.1 1 1",
        "valkey_users": [
            {"name": "default", "rules": ["~*", "&*", "+@all"]},
            {"name": "metrics", "rules": ["~metrics:*", "+get"]},
        ],
        "valkey_config": {"syslog-ident": INJECTED_CONFIG, "maxmemory-policy": "allkeys-lru", "save": "3600 1 300 100"},
        "valkey_base_dir": str(base),
        **changes,
    }


@pytest.fixture
def local_instance(tmp_path):
    from reproducer.procs import free_port, pid_alive, stop_pid

    marker = Path(f"/tmp/PWNED-{secrets.token_hex(6)}")
    # A hostile but legal directory name: every role must treat the path as text, in files and in shells.
    port, base = free_port(), tmp_path / f"data $(touch {marker}) {attack(marker)}"
    yield port, base
    assert not marker.exists()
    for pidfile in base.rglob("*.pid"):
        pid = int(pidfile.read_text().strip() or 0)
        if pid and pid_alive(pid):
            stop_pid(pid)


def test_spec_values_never_add_a_directive_a_user_or_a_rule(local_instance, tmp_path):
    import valkey

    port, base = local_instance
    passwords = {"default": 'admin"pw y', "metrics": "metrics-pw"}
    run_playbook(
        PLAYBOOKS / "local.yml",
        INVENTORY,
        private_data_dir=tmp_path / "run",
        extravars=local_vars(base, port),
        secret_vars={"valkey_user_passwords": passwords},
    )
    conf = (base / f"valkey-{port}" / "valkey.conf").read_text()
    assert "masterauth" not in conf and "masteruser" not in conf
    client = valkey.Valkey(port=port, password=passwords["default"], decode_responses=True)
    assert client.config_get("enable-debug-command")["enable-debug-command"] == "no"
    assert client.config_get("syslog-ident")["syslog-ident"] == INJECTED_CONFIG
    assert client.config_get("save")["save"] == "3600 1 300 100"
    with pytest.raises(valkey.exceptions.ResponseError):
        client.execute_command("DEBUG", "SLEEP", "0")
    assert sorted(client.acl_users()) == ["default", "metrics"]
    (metrics,) = [u for u in client.acl_list() if u.startswith("user metrics ")]
    assert "nopass" not in metrics and "+@all" not in metrics


@pytest.mark.bad_input
@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"valkey_users": [{"name": "a\nuser evil on nopass +@all", "rules": ["+get"]}]}, "ACL user name"),
        ({"valkey_users": [{"name": "metrics", "rules": [INJECTED_PATTERN]}]}, "ACL rule"),
        ({"valkey_config": {"maxmemory-policy\nenable-debug-command": "yes"}}, "directive"),
        ({"valkey_config": {"loadmodule": "/tmp/evil.so"}}, "directive"),
    ],
)
def test_an_injected_name_rule_or_directive_fails_before_anything_starts(local_instance, tmp_path, changes, error):
    from reproducer.run.ansible import AnsibleError

    port, base = local_instance
    variables = local_vars(base, port, **changes)
    passwords = {"default": "pw"} | {user["name"]: "pw" for user in variables["valkey_users"]}
    with pytest.raises(AnsibleError, match=error):
        run_playbook(
            PLAYBOOKS / "local.yml",
            INVENTORY,
            private_data_dir=tmp_path / "run",
            extravars=variables,
            secret_vars={"valkey_user_passwords": passwords},
        )
    assert not list(base.rglob("*.pid")) and not list(base.rglob("*.conf"))


def test_no_role_hands_a_password_to_valkey_cli_through_argv_or_the_environment():
    texts = {p: p.read_text() for p in PLAYBOOKS.rglob("*") if p.is_file() and p.suffix in (".yml", ".j2")}
    offending = [
        str(path)
        for path, text in texts.items()
        if any(needle in text for needle in ("REDISCLI_AUTH", "VALKEYCLI_AUTH", "'-a'", " -a ", "--pass"))
    ]
    assert offending == []
    # valkey_admin_cli runs as a command's argv or inside a shell task: each such file feeds it through stdin
    admin_cli = [
        p for p, text in texts.items() if "valkey_admin_cli" in text and ("argv" in text or "builtin.shell" in text)
    ]
    assert {p.parent.parent.name for p in admin_cli} >= {"valkey_users", "valkey_cluster"}
    assert all("stdin:" in texts[p] for p in admin_cli)


def test_acl_changes_reach_a_running_server_and_a_check_changes_nothing(local_instance, tmp_path):
    import valkey

    port, base = local_instance
    passwords = {"default": "admin-pw", "metrics": "m-pw", "other": "o-pw"}
    # a user someone added by hand, named to break out of a quoted argument: the next apply deletes it, as text
    hostile = 'x"+@all\\"\\x41;é'
    for users, check in ((["metrics"], False), (["other"], False), (["metrics"], True)):
        if users == ["other"]:
            admin = valkey.Valkey(port=port, password=passwords["default"])
            admin.execute_command("ACL", "SETUSER", hostile, "off")
            assert hostile in admin.acl_users()
        rules = [{"name": "default", "rules": ["~*", "&*", "+@all"]}]
        rules += [{"name": name, "rules": ["~o:*", "+get", "+set"]} for name in users]
        result = run_playbook(
            PLAYBOOKS / "local.yml",
            INVENTORY,
            private_data_dir=tmp_path / "run",
            extravars=local_vars(base, port, valkey_users=rules),
            secret_vars={"valkey_user_passwords": passwords},
            check=check,
        )
    assert result.changed > 0, "the check reports the users it would change"
    client = valkey.Valkey(port=port, password=passwords["default"], decode_responses=True)
    assert sorted(client.acl_users()) == ["default", "other"]
    assert valkey.Valkey(port=port, username="other", password="o-pw").get("o:1") is None


def test_ansible_writes_nothing_in_the_users_home(templated, tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    run_playbook(
        templated,
        INVENTORY,
        private_data_dir=tmp_path / "run",
        extravars={"out_dir": str(tmp_path / "out"), "value": "v", "nested": {"list": ["v"]}},
        secret_vars={"valkey_user_passwords": {"app": "pw"}},
    )
    assert (tmp_path / "out" / "value.txt").read_text() == "v\n"
    assert list(home.iterdir()) == []


@pytest.mark.parametrize("plaintext", [b"", b"a", b"x" * 16, "valkey_user_passwords: {app: 'pw é'}\n".encode() * 50])
def test_the_vault_is_one_ansible_reads(plaintext):
    from ansible.parsing.vault import VaultLib, VaultSecret

    from reproducer.run.ansible import vault_encrypt

    vaulted = vault_encrypt(plaintext, "one-time")
    assert vaulted.startswith(b"$ANSIBLE_VAULT;1.1;AES256\n") and b"valkey_user" not in vaulted
    assert VaultLib([("default", VaultSecret(b"one-time"))]).decrypt(vaulted) == plaintext


@pytest.mark.fault(
    "the progress callback fails during a playbook (a closed pipe)", ends="playbook stopped, error raised"
)
def test_a_failing_progress_callback_stops_the_playbook(tmp_path):
    playbook = tmp_path / "sleepy.yml"
    playbook.write_text(SLEEPY)

    def broken_pipe(line: str) -> None:
        if "sleep for a long time" in line:
            raise BrokenPipeError("stdout closed")

    begin = time.monotonic()
    with pytest.raises(BrokenPipeError):
        run_playbook(playbook, INVENTORY, private_data_dir=tmp_path / "run", progress=broken_pipe)
    assert time.monotonic() - begin < 30
    eventually(lambda: not playbooks_of(tmp_path), "ansible-playbook to exit", timeout=5)


def playbooks_of(tmp_path: Path) -> list[Path]:
    """The ansible-playbook processes running in ``tmp_path``."""
    return [p for p in Path("/proc").glob("[0-9]*") if _is_playbook_of(p, tmp_path)]


def _is_playbook_of(proc: Path, tmp_path: Path) -> bool:
    try:
        return b"ansible-playbook" in (proc / "cmdline").read_bytes() and str(tmp_path) in os.readlink(proc / "cwd")
    except OSError:
        return False


def task_sleeping(pid: int) -> bool:
    """Whether the playbook's ``sleep 120`` runs below ``pid``."""
    for child in descendants(pid):
        try:
            argv = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv[0].endswith(b"sleep") and argv[1:2] == [b"120"]:
            return True
    return False
