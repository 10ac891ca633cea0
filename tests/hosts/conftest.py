"""Fixtures of the test-host tier: six real hosts over SSH (network namespaces), rebooted and wiped per test.

The tier is skipped, with the reason, where this machine is not root or lacks a tool the hosts need.
Everything the session makes (namespaces, links, processes, files) is removed and checked to be gone.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from reproducer.resources import data_dir
from reproducer.run.ansible import PlaybookResult, run_playbook
from tests.hosts.testhosts import FAMILY, TestHosts, missing_tools, pick_subnet

HOSTS = 6
PLAYBOOKS = data_dir("playbooks")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test in this directory carries the ``hosts`` marker."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.hosts)


def _skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "test hosts need root (network, mount and PID namespaces, sshd); run as root or under sudo -E"
    missing = missing_tools()
    if missing:
        return f"test hosts need {', '.join(missing)} (bash .ci/setup installs them on Debian)"
    return None


@pytest.fixture(scope="session")
def test_hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestHosts]:
    """Six hosts h1..h6 on a private bridge, for the whole session; nothing of them is left afterwards."""
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    TestHosts.sweep_stale()
    prefix = f"{FAMILY}{os.getpid()}"[:8]
    base = tmp_path_factory.mktemp("hosts")
    hosts = TestHosts(HOSTS, prefix, pick_subnet("10.231", os.getpid() % 256), base, tie_to_parent=True).up()
    try:
        yield hosts
    finally:
        hosts.down()
    assert not hosts.leftovers()


@pytest.fixture
def hosts(test_hosts: TestHosts) -> Iterator[TestHosts]:
    """The session's hosts, freshly rebooted with empty disks (every process gone, /run new)."""
    test_hosts.reboot()
    yield test_hosts
    test_hosts.close_control_masters()


@pytest.fixture
def playbook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hosts: TestHosts) -> Any:
    """Run a playbook of ``playbooks/`` on the test hosts through reproducer's ansible-runner wrapper."""
    monkeypatch.setenv("ANSIBLE_FORKS", str(HOSTS))
    runs = iter(range(1, 1000))

    def run(
        name: str,
        inventory: Mapping[str, Any],
        extravars: Mapping[str, Any],
        secret_vars: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> PlaybookResult:
        return run_playbook(
            PLAYBOOKS / name,
            inventory,
            private_data_dir=tmp_path / f"run{next(runs)}",
            extravars=extravars,
            secret_vars=secret_vars,
            **kwargs,
        )

    return run


def changed_tasks(result: PlaybookResult) -> list[tuple[str, str]]:
    """(host, task) of every task that reported a change."""
    return [
        (str(e["event_data"].get("host")), str(e["event_data"].get("task")))
        for e in result.events
        if e.get("event") == "runner_on_ok" and (e.get("event_data") or {}).get("res", {}).get("changed")
    ]


def info_field(text: str, name: str) -> str:
    """A ``name:value`` field of an INFO answer."""
    match = re.search(rf"^{re.escape(name)}:(.*)$", text, re.MULTILINE)
    assert match, f"{name} not in {text!r}"
    return match.group(1).strip()


def tls_hostvars(hosts: TestHosts, tls: Path) -> dict[str, dict[str, Any]]:
    """Each host's certificate and key files in ``tls``, as inventory host variables.

    ``--vars`` are plain text (never templated), so per-host paths live in the inventory.
    """
    return {
        h.name: {"valkey_tls_cert_file": f"{tls}/{h.name}.crt", "valkey_tls_key_file": f"{tls}/{h.name}.key"}
        for h in hosts.hosts
    }


def selfmanaged_vars(tls: Path, cidrs: list[str]) -> dict[str, Any]:
    """Extra variables for a rendered selfmanaged output on the test hosts: no apt, a test CA, ``cidrs`` allowed."""
    return {
        "valkey_install_packages": False,
        "valkey_tls_generate": True,
        "valkey_tls_generate_dir": str(tls),
        "valkey_tls_ca_file": str(tls / "ca.crt"),
        "valkey_allowlist_persist": False,
        "valkey_allowlist_cidrs": cidrs,
    }
