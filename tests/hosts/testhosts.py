"""Test hosts on one machine: network namespaces on a private bridge, each with its own sshd as PID 1.

Each host ``hN`` is a network namespace ``<prefix>-hN`` (address ``<subnet>.<10+N>`` on the bridge
``<prefix>br``, no route out, no NAT) plus mount, UTS and PID namespaces made by ``unshare`` in which
``hostinit.sh`` bind-mounts a private ``/etc/valkey``, ``/var/lib/valkey``, ``/var/log/valkey`` and ``/root``,
mounts a fresh tmpfs on ``/run`` and executes ``sshd -D``. Killing PID 1 kills everything the host ran.

Standard library only; needs root, ``ip``, ``unshare``, ``sshd``, ``ssh`` and ``ssh-keygen``. See
``docs/reference/test-hosts.md#recipe`` for the recipe and its measurements. CLI: ``python -m tests.hosts.testhosts
sweep`` removes what crashed sessions left behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HOSTINIT = Path(__file__).with_name("hostinit.sh")
FAMILY = "rh"  # prefixes are FAMILY + the owner's pid: a stale set is one whose owner is gone
PR_SET_PDEATHSIG = 1
TOOLS = ("ip", "unshare", "sshd", "ssh", "ssh-keygen", "start-stop-daemon", "valkey-server", "valkey-cli", "nft")
HOST_DIRS = ("etc-valkey", "var-lib-valkey", "var-log-valkey", "root")
SSHD_CONFIG = """\
ListenAddress {ip}
HostKey {host_key}
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PidFile none
StrictModes yes
MaxStartups 100:30:200
AuthorizedKeysFile {authorized_keys}
Subsystem sftp internal-sftp
LogLevel ERROR
"""


def sh(*argv: str, check: bool = True, netns: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run a command (in a network namespace when ``netns`` is given) and capture its text output."""
    full = ["ip", "netns", "exec", netns, *argv] if netns else list(argv)
    return subprocess.run(full, check=check, capture_output=True, text=True)


def missing_tools() -> list[str]:
    """The tools this harness (and the roles it runs) need but this machine lacks."""
    return [tool for tool in TOOLS if not shutil.which(tool)]


def pid_alive(pid: int) -> bool:
    """Whether a process exists (zombies count as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _die_with_parent() -> None:
    """Popen preexec: SIGKILL this child when the test process dies, whatever kills it."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


@dataclass
class Host:
    """One test host: its names, address and PID-1 process."""

    name: str
    index: int
    ip: str
    netns: str
    veth: str
    dir: Path
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)


class TestHosts:
    """A set of test hosts on a private bridge, made and removed by name and pid."""

    __test__ = False  # not a pytest test class

    def __init__(self, n: int, prefix: str, subnet: str, base: Path, *, tie_to_parent: bool = True) -> None:
        if len(prefix) > 8 or not re.fullmatch(r"[a-z][a-z0-9]*", prefix):
            raise ValueError(f"prefix {prefix!r}: 1-8 lowercase letters/digits (interface names are short)")
        self.prefix, self.subnet, self.base, self.tie = prefix, subnet, Path(base), tie_to_parent
        self.bridge = f"{prefix}br"
        self.bridge_ip = f"{subnet}.1"
        self.hosts = [
            Host(f"h{i}", i, f"{subnet}.{10 + i}", f"{prefix}-h{i}", f"{prefix}v{i}", self.base / f"h{i}")
            for i in range(1, n + 1)
        ]
        self.keys = self.base / "keys"
        self.known_hosts = self.base / "known_hosts"
        self.control_dir = self.base / "cp"

    # ---- lifecycle ------------------------------------------------------------------------------

    def up(self) -> TestHosts:
        """Create keys, the bridge, the namespaces and start every host; return when all answer SSH."""
        self._keys()
        self.known_hosts.write_text("".join(f"{h.ip} {self._host_public_key()}\n" for h in self.hosts))
        self.control_dir.mkdir(mode=0o700, exist_ok=True)
        sh("ip", "link", "add", self.bridge, "type", "bridge")
        sh("ip", "addr", "add", f"{self.bridge_ip}/24", "dev", self.bridge)
        sh("ip", "link", "set", self.bridge, "up")
        for host in self.hosts:
            self._network(host)
            self._fresh_dirs(host)
            self._start(host)
        self._wait_ssh(self.hosts)
        return self

    def down(self) -> None:
        """Stop every host and remove the namespaces, links and directories this set made."""
        self.close_control_masters()
        for host in self.hosts:
            self._stop(host)
        self.sweep(self.prefix)
        shutil.rmtree(self.base, ignore_errors=True)

    def reboot(self, names: list[str] | None = None, *, wipe: bool = True) -> None:
        """Restart hosts (all by default): every process dies, /run is new; ``wipe`` also empties their disks."""
        chosen = [h for h in self.hosts if names is None or h.name in names]
        self.close_control_masters()
        for host in chosen:
            self._stop(host)
            if wipe:
                self._fresh_dirs(host)
                sh("nft", "flush", "ruleset", netns=host.netns, check=False)
            self._start(host)
        self._wait_ssh(chosen)

    # ---- use ------------------------------------------------------------------------------------

    def host(self, name: str) -> Host:
        """The host called ``name``."""
        return next(h for h in self.hosts if h.name == name)

    def ssh_argv(self, name: str) -> list[str]:
        """An ``ssh`` command line that logs into host ``name`` as root."""
        return [
            "ssh",
            *self._ssh_options(),
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=5",
            f"root@{self.host(name).ip}",
        ]

    def run_on(
        self, name: str, command: str, *, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Run a shell command on host ``name`` over SSH."""
        return subprocess.run(
            [*self.ssh_argv(name), command], check=check, capture_output=True, text=True, timeout=timeout
        )

    def netns_exec(self, name: str, *argv: str, check: bool = False) -> subprocess.CompletedProcess[str]:
        """Run a command in host ``name``'s network namespace (this machine's files): a client on that host."""
        return sh(*argv, check=check, netns=self.host(name).netns)

    def inventory(
        self, groups: dict[str, list[str]], hostvars: dict[str, dict[str, Any]] | None = None
    ) -> dict[str, Any]:
        """A dict inventory for ansible-runner: every host with its SSH settings, and the given groups."""
        hosts = {h.name: self._host_vars(h) | (hostvars or {}).get(h.name, {}) for h in self.hosts}
        children = {group: {"hosts": {name: {} for name in names}} for group, names in groups.items()}
        return {"all": {"hosts": hosts, "children": children}}

    def close_control_masters(self) -> None:
        """Close the SSH ControlMaster connections Ansible left open."""
        for sock in self.control_dir.glob("*") if self.control_dir.exists() else []:
            subprocess.run(
                ["ssh", "-o", f"ControlPath={sock}", "-O", "exit", "x"], capture_output=True, check=False, timeout=10
            )

    # ---- checks and cleanup ---------------------------------------------------------------------

    def leftovers(self) -> list[str]:
        """Namespaces, links and processes of this set that still exist (empty after :meth:`down`)."""
        found = [f"netns {ns}" for ns in _netns_names() if re.fullmatch(rf"{self.prefix}-h\d+", ns)]
        found += [f"link {link}" for link in _link_names() if re.fullmatch(rf"{self.prefix}(br|v\d+)", link)]
        found += [f"process {pid}" for pid in _pids_mentioning(str(self.base))]
        found += [f"process {h.proc.pid}" for h in self.hosts if h.proc and pid_alive(h.proc.pid)]
        return found

    @staticmethod
    def sweep(prefix: str) -> None:
        """Remove every namespace and link named after ``prefix`` (after a crash), killing what runs inside."""
        for ns in [n for n in _netns_names() if re.fullmatch(rf"{prefix}-h\d+", n)]:
            for pid in sh("ip", "netns", "pids", ns, check=False).stdout.split():
                _kill(int(pid))
            _until(lambda ns=ns: not sh("ip", "netns", "pids", ns, check=False).stdout.strip(), f"netns {ns} empty")
            sh("ip", "netns", "del", ns, check=False)
        for link in [k for k in _link_names() if re.fullmatch(rf"{prefix}(v\d+|br)", k)]:
            sh("ip", "link", "del", link, check=False)

    @classmethod
    def sweep_stale(cls) -> list[str]:
        """Sweep the sets whose owning process is gone; return their prefixes."""
        owners = {m.group(1) for ns in _netns_names() if (m := re.fullmatch(rf"({FAMILY}(\d+))-h\d+", ns))}
        owners |= {m.group(1) for k in _link_names() if (m := re.fullmatch(rf"({FAMILY}(\d+))(br|v\d+)", k))}
        stale = sorted(p for p in owners if not pid_alive(int(p[len(FAMILY) :])))
        for prefix in stale:
            cls.sweep(prefix)
        return stale

    # ---- internals ------------------------------------------------------------------------------

    def _keys(self) -> None:
        self.keys.mkdir(parents=True, mode=0o700)
        for key in ("host", "client"):
            sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"{self.prefix}-{key}", "-f", str(self.keys / key))

    def _host_public_key(self) -> str:
        return " ".join((self.keys / "host.pub").read_text().split()[:2])

    def _network(self, host: Host) -> None:
        sh("ip", "netns", "add", host.netns)
        sh("ip", "link", "add", host.veth, "type", "veth", "peer", "name", "eth0", "netns", host.netns)
        sh("ip", "link", "set", host.veth, "master", self.bridge, "up")
        sh("ip", "-n", host.netns, "addr", "add", f"{host.ip}/24", "dev", "eth0")
        sh("ip", "-n", host.netns, "link", "set", "eth0", "up")
        sh("ip", "-n", host.netns, "link", "set", "lo", "up")

    def _fresh_dirs(self, host: Host) -> None:
        shutil.rmtree(host.dir, ignore_errors=True)
        for name in HOST_DIRS:
            (host.dir / name).mkdir(parents=True, mode=0o755)
        (host.dir / "root").chmod(0o700)
        ssh_dir = host.dir / "root" / ".ssh"
        ssh_dir.mkdir(mode=0o700)
        (ssh_dir / "authorized_keys").write_text((self.keys / "client.pub").read_text())
        (ssh_dir / "authorized_keys").chmod(0o600)
        (host.dir / "sshd_config").write_text(
            SSHD_CONFIG.format(ip=host.ip, host_key=self.keys / "host", authorized_keys="/root/.ssh/authorized_keys")
        )

    def _start(self, host: Host) -> None:
        unshare = ["unshare", "--mount", "--uts", "--pid", "--fork", "--kill-child", "--mount-proc"]
        argv = ["ip", "netns", "exec", host.netns, *unshare, "--propagation", "private"]
        log = (self.base / f"{host.name}.log").open("ab")
        host.proc = subprocess.Popen(
            [*argv, "sh", str(HOSTINIT), host.name, str(host.dir)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            preexec_fn=_die_with_parent if self.tie else None,  # noqa: PLW1509 - prctl only, no locks
        )
        log.close()

    def _stop(self, host: Host) -> None:
        if host.proc is None:
            return
        for pid in _children(host.proc.pid):
            _kill(pid)  # PID 1 of the host: the kernel kills the whole PID namespace with it
        _kill(host.proc.pid)
        host.proc.wait(timeout=10)
        host.proc = None
        for pid in sh("ip", "netns", "pids", host.netns, check=False).stdout.split():
            _kill(int(pid))
        _until(lambda: not sh("ip", "netns", "pids", host.netns, check=False).stdout.strip(), f"{host.name} empty")

    def _wait_ssh(self, hosts: list[Host], timeout: float = 20) -> None:
        for host in hosts:
            _until(lambda host=host: _ssh_banner(host.ip), f"sshd on {host.name} ({host.ip})", timeout)

    def _ssh_options(self) -> list[str]:
        return [
            "-i",
            str(self.keys / "client"),
            "-o",
            f"UserKnownHostsFile={self.known_hosts}",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "IdentitiesOnly=yes",
        ]

    def _host_vars(self, host: Host) -> dict[str, Any]:
        options = self._ssh_options()[2:]  # the key goes in its own variable
        return {
            "ansible_host": host.ip,
            "ansible_user": "root",
            "ansible_ssh_private_key_file": str(self.keys / "client"),
            "ansible_ssh_common_args": " ".join(options),
            "ansible_python_interpreter": "/usr/bin/python3",
            "ansible_control_path_dir": str(self.control_dir),
            "ansible_ssh_pipelining": True,
        }


def pick_subnet(first: str = "10.231", start: int = 0) -> str:
    """A ``first.x`` /24 that no address or route on this machine uses yet (not atomic: one per process)."""
    used = sh("ip", "-o", "-4", "addr").stdout + sh("ip", "-4", "route").stdout
    for offset in range(256):
        candidate = f"{first}.{(start + offset) % 256}"
        if f" {candidate}." not in used and not used.startswith(f"{candidate}."):
            return candidate
    raise RuntimeError(f"no free /24 in {first}.0.0/16")


def _ssh_banner(ip: str) -> bool:
    try:
        with socket.create_connection((ip, 22), timeout=1) as conn:
            return conn.recv(4).startswith(b"SSH-")
    except OSError:
        return False


def _until(predicate: Any, what: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.02)


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _children(pid: int) -> list[int]:
    try:
        tasks = Path(f"/proc/{pid}/task").iterdir()
        return [int(c) for t in tasks for c in (t / "children").read_text().split()]
    except OSError:
        return []


def _netns_names() -> list[str]:
    return [line.split()[0] for line in sh("ip", "netns", "list", check=False).stdout.splitlines() if line.strip()]


def _link_names() -> list[str]:
    return [line.split()[0].split("@")[0] for line in sh("ip", "-br", "link").stdout.splitlines() if line.strip()]


def _pids_mentioning(text: str) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and int(proc.name) != os.getpid():
            try:
                if text.encode() in (proc / "cmdline").read_bytes() and pid_alive(int(proc.name)):
                    found.append(int(proc.name))
            except OSError:
                continue
    return found


if __name__ == "__main__":
    if sys.argv[1:] == ["sweep"]:
        print("swept:", " ".join(TestHosts.sweep_stale()) or "nothing")
    else:
        sys.exit("usage: python -m tests.hosts.testhosts sweep")
