"""``--via ssh://`` without a server: URL checks, the ssh argv built from them, and refusals before any ssh runs."""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from urllib.parse import quote

import pytest

from reproducer.data.tunnel import (
    ALIVE_COUNT,
    ALIVE_INTERVAL,
    SshTunnel,
    check_node_address,
    forward_argv,
    master_argv,
    parse_via,
    proxy_command,
)
from reproducer.errors import DataError, InputError
from tests.support import cli


@pytest.fixture
def key(tmp_path: Path) -> Path:
    path = tmp_path / "id_test"
    path.write_text("not really a key\n")
    return path


@pytest.fixture
def known(tmp_path: Path) -> Path:
    path = tmp_path / "known_hosts"
    path.write_text("")
    return path


def options(argv: list[str]) -> dict[str, str]:
    """The ``-o NAME=VALUE`` options of an ssh argv."""
    return dict(argv[i + 1].split("=", 1) for i, part in enumerate(argv) if part == "-o")


def test_a_plain_bastion_url() -> None:
    via = parse_via("ssh://bastion.example.com")
    assert (via.host, via.port, via.user, via.identity, via.known_hosts, via.jump) == (
        "bastion.example.com",
        22,
        None,
        None,
        None,
        None,
    )
    assert via.connect_timeout == 10


def test_user_port_files_and_timeout(key: Path, known: Path) -> None:
    via = parse_via(f"ssh://ops@10.0.0.5:2222?identity={key}&known_hosts={known}&connect_timeout=3")
    assert (via.user, via.host, via.port, via.identity, via.known_hosts, via.connect_timeout) == (
        "ops",
        "10.0.0.5",
        2222,
        key,
        known,
        3,
    )
    assert via.url == "ssh://ops@10.0.0.5:2222"  # messages name the bastion, not its files


def test_an_ipv6_bastion_is_bracketed_in_the_url_only() -> None:
    via = parse_via("ssh://[2001:db8::1]:22")
    assert via.host == "2001:db8::1"
    assert master_argv(via, Path("/c"))[-2:] == ["--", "2001:db8::1"]


def test_a_jump_host_inherits_the_identity_and_known_hosts(key: Path, known: Path) -> None:
    via = parse_via(f"ssh://b.internal?identity={key}&known_hosts={known}&jump=ssh://me@jump.example.com:2022")
    assert via.jump is not None
    assert (via.jump.host, via.jump.port, via.jump.user) == ("jump.example.com", 2022, "me")
    assert (via.jump.identity, via.jump.known_hosts) == (key, known)


@pytest.mark.parametrize(
    "url",
    [
        "ssh://-oProxyCommand=touch${IFS}/tmp/pwned",  # an option for a host name
        "ssh://-oProxyCommand=touch /tmp/pwned",  # with a space
        "ssh://host\nProxyCommand=touch",  # a second config line
        "ssh://host\r",
        "ssh://host?ProxyCommand=touch",  # an unknown query parameter
        "ssh://host?identity=/a&identity=/b",  # given twice
        "ssh://-l@host",  # a user name that is an option
        "ssh://user:secret@host",  # a password
        "ssh://host:0",
        "ssh://host:99999",
        "ssh://host:22x",
        "ssh://host/path",
        "ssh://",
        "http://host",
        "host",
        "ssh://ho_st..",
        "ssh://host#frag",
        "ssh://host?connect_timeout=0",
        "ssh://host?connect_timeout=1e3",
        "ssh://host?jump=http://j",
        "ssh://host?jump=ssh://-oProxyCommand=x",
        "ssh://host?jump=ssh://j%3Fjump=ssh://k",  # a jump with a jump
        "ssh://host?identity=/nonexistent/key",
    ],
)
def test_hostile_or_bad_urls_are_refused(url: str) -> None:
    with pytest.raises(InputError) as refused:
        parse_via(url)
    assert refused.value.hint
    assert "\n" not in refused.value.message


def test_paths_ssh_would_expand_or_split_are_refused(tmp_path: Path) -> None:
    for name in ("with space", "per%cent", "til~de", "equal=sign", "com,ma"):
        path = tmp_path / name
        path.write_text("")
        with pytest.raises(InputError, match="expand or split"):
            parse_via(f"ssh://host?identity={quote(str(path))}")  # percent-encoded: past the URL's own check


def test_the_master_argv_never_prompts_and_always_times_out(key: Path, known: Path) -> None:
    via = parse_via(f"ssh://ops@bastion:2200?identity={key}&known_hosts={known}&connect_timeout=7")
    argv = master_argv(via, Path("/run/x/ctl"))
    assert argv[:6] == ["ssh", "-M", "-N", "-T", "-S", "/run/x/ctl"]
    assert argv[-2:] == ["--", "bastion"]  # nothing after -- but the host
    found = options(argv)
    assert found["BatchMode"] == "yes" and found["StrictHostKeyChecking"] == "yes"
    assert found["ConnectTimeout"] == "7" and found["ExitOnForwardFailure"] == "yes"
    assert (found["ServerAliveInterval"], found["ServerAliveCountMax"]) == (str(ALIVE_INTERVAL), str(ALIVE_COUNT))
    assert found["UserKnownHostsFile"] == str(known) and found["IdentityFile"] == str(key)
    assert found["UpdateHostKeys"] == "no" and found["ForwardAgent"] == "no"
    assert "-p" in argv and argv[argv.index("-p") + 1] == "2200"
    assert argv[argv.index("-l") + 1] == "ops"


def test_without_files_ssh_keeps_the_users_own_settings() -> None:
    found = options(master_argv(parse_via("ssh://bastion"), Path("/c")))
    assert not {"UserKnownHostsFile", "IdentityFile", "ProxyCommand"} & found.keys()
    assert found["StrictHostKeyChecking"] == "yes"  # known_hosts is still checked, the user's own


def test_the_jump_gets_the_same_checks_through_a_quoted_proxy_command(key: Path, known: Path) -> None:
    via = parse_via(f"ssh://bastion?identity={key}&known_hosts={known}&jump=ssh://hop:2022&connect_timeout=4")
    command = options(master_argv(via, Path("/c")))["ProxyCommand"]
    assert command == proxy_command(via.jump)  # type: ignore[arg-type]
    argv = shlex.split(command)
    assert argv[:3] == ["ssh", "-W", "[%h]:%p"] and argv[-2:] == ["--", "hop"]
    jump = options(argv)
    assert jump["StrictHostKeyChecking"] == "yes" and jump["UserKnownHostsFile"] == str(known)
    assert jump["BatchMode"] == "yes" and jump["ConnectTimeout"] == "4" and "ProxyCommand" not in jump


def test_forward_argv_names_the_node_after_the_socket() -> None:
    assert forward_argv(Path("/d/ctl"), Path("/d/f0.sock"), "10.0.0.7", 6379) == [
        "ssh", "-S", "/d/ctl", "-O", "forward", "-L", "/d/f0.sock:10.0.0.7:6379", "--", "reproducer-bastion",
    ]  # fmt: skip
    assert forward_argv(Path("/d/ctl"), Path("/d/f1.sock"), "fd00::7", 6380)[6] == "/d/f1.sock:[fd00::7]:6380"


@pytest.mark.parametrize(
    ("host", "port"),
    [("-oProxyCommand=x", 6379), ("a b", 6379), ("node\n", 6379), ("", 6379), ("n:1", 6379), ("ok", 0), ("ok", 70000)],
)
def test_announced_node_addresses_are_checked(host: str, port: int) -> None:
    with pytest.raises(DataError):
        check_node_address(host, port)


def test_good_announced_addresses_pass() -> None:
    assert check_node_address("10.0.0.1", 6379) == ("10.0.0.1", 6379)
    assert check_node_address("fd00::1", 1) == ("fd00::1", 1)
    assert check_node_address("node-1.cache.amazonaws.com", 6379) == ("node-1.cache.amazonaws.com", 6379)


@pytest.fixture
def fake_ssh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An ``ssh`` first on PATH that records that it ran, says host key verification failed and exits 255."""
    bin_dir, marker = tmp_path / "bin", tmp_path / "ssh-ran"
    bin_dir.mkdir()
    script = bin_dir / "ssh"
    script.write_text(f"#!/bin/sh\necho ran >> {marker}\necho 'Host key verification failed.' >&2\nexit 255\n")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    return marker


def test_a_refused_host_key_is_a_data_error_with_a_hint(fake_ssh: Path) -> None:
    tunnel = SshTunnel(parse_via("ssh://bastion?connect_timeout=2"))
    with pytest.raises(DataError, match="host key") as refused:
        tunnel.open()
    assert "known_hosts" in refused.value.hint and fake_ssh.exists()
    assert tunnel._dir is None  # its private directory is gone


@pytest.mark.parametrize(
    "args",
    [
        ("copy", "valkey://127.0.0.1:1", "valkey://127.0.0.1:2", "--target-via", "ssh://-oProxyCommand=touch"),
        ("verify", "valkey://127.0.0.1:1", "valkey://127.0.0.1:2", "--via", "ssh://host?evil=1"),
        ("export", "valkey://127.0.0.1:1", "out.jsonl", "--via", "ssh://host\nProxyCommand=x"),
        ("import", "in.jsonl", "valkey://127.0.0.1:2", "--via", "ssh://host name"),
    ],
)
def test_the_cli_refuses_hostile_urls_before_any_ssh_runs(args: tuple[str, ...], fake_ssh: Path, tmp_path) -> None:
    (tmp_path / "in.jsonl").write_text("")
    done = cli.run(*args, cwd=tmp_path, env=os.environ, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "error:" in done.stderr and "hint:" in done.stderr and "Traceback" not in done.stderr
    assert not fake_ssh.exists()


def test_via_is_both_sides_unless_a_side_has_its_own() -> None:
    from reproducer.cli import _vias

    assert _vias("ssh://a", None, None) == _vias(None, "ssh://a", "ssh://a")
    both = _vias("ssh://a", "ssh://s", None)
    assert (both.source, both.target) == ("ssh://s", "ssh://a")
    assert _vias(None, None, None).parsed() == {}
