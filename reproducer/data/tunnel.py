"""SSH bastions for the data commands: one OpenSSH ControlMaster per bastion, one forward per node.

``--via ssh://[user@]host[:port][?identity=PATH&known_hosts=PATH&jump=URL&connect_timeout=S]`` is parsed by
:func:`parse_via` (everything checked before any ``ssh`` runs). :class:`SshTunnel` starts the system ``ssh`` as a
supervised control master (``ssh -M -N -S <ctl>``), then adds one forward per node address on demand
(``ssh -S <ctl> -O forward -L <socket>:HOST:PORT``), so nodes that appear later (a failover, a reshard, a
``MOVED``) get their own channel. Each forward listens on a unix socket in a private 0700 directory: no local
port can be taken between choosing and binding it, and no other local user can use the channel. Why OpenSSH and
not a Python library: ``docs/architecture.md`` (SSH bastions); facts: ``docs/reference/bastions.md#per-node-forwards``.

Node addresses come from servers (``CLUSTER SHARDS``, ``MOVED``, Sentinel, ``INFO replication``): they are
checked by :func:`check_node_address` before they reach an ``ssh`` argv.
"""

from __future__ import annotations

import contextlib
import ctypes
import ipaddress
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from reproducer.errors import DataError, InputError
from reproducer.procs import child_env

#: Every query parameter a ``--via`` URL may carry, with what it means.
VIA_OPTIONS: dict[str, str] = {
    "identity": "?identity=PATH: the private key to log in with (default: ssh's own: agent, ~/.ssh/config)",
    "known_hosts": "?known_hosts=PATH: check host keys against this file (default: ~/.ssh/known_hosts)",
    "jump": "?jump=ssh://[user@]host[:port]: reach the bastion through this host first (percent-encode its '?')",
    "connect_timeout": "?connect_timeout=SECONDS: give up connecting after this long (1-120, default 10)",
}
DEFAULT_CONNECT_TIMEOUT = 10
_MAX_CONNECT_TIMEOUT = 120
#: Keep-alives: a bastion that stops answering is noticed within interval x count seconds.
ALIVE_INTERVAL, ALIVE_COUNT = 5, 3
_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,62})(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,62}))*\.?")
_USER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,31}")
#: Paths go into ssh options and a ProxyCommand: ssh expands ``%`` and ``~`` there and splits on spaces.
_SAFE_PATH = re.compile(r"[A-Za-z0-9._/+@-]+")
_MAX_HOST = 253
_SOCKET_PATH_MAX = 107
_STDERR_SHOWN = 300
_MUX_HOST = "reproducer-bastion"  # ``-O`` commands need a destination; the control socket decides


@dataclass(frozen=True)
class Via:
    """A parsed ``--via`` URL: the bastion, how to log in, and how its host key is checked."""

    host: str
    port: int = 22
    user: str | None = None
    identity: Path | None = None
    known_hosts: Path | None = None
    jump: Via | None = None
    connect_timeout: int = DEFAULT_CONNECT_TIMEOUT
    url: str = ""

    def __str__(self) -> str:
        return self.url


def describe_via_options(separator: str = "\n") -> str:
    """The ``--via`` URL form and its query parameters, joined by ``separator``."""
    return separator.join(["ssh://[user@]host[:port]: an SSH bastion that reaches the endpoint", *VIA_OPTIONS.values()])


def parse_via(url: str, *, outer: Via | None = None) -> Via:
    """Parse and check a ``--via`` URL: InputError for anything ssh could read as an option or another line.

    ``outer`` is the bastion a ``jump`` URL belongs to: the jump host inherits its identity, known hosts and
    timeout unless it names its own, and may not have a jump itself.
    """
    shown = _shown(url)
    if any(ord(char) < 0x21 or ord(char) == 0x7F for char in url):
        raise InputError(f"the bastion URL {shown!r} holds a space or control character", hint=_FORM_HINT)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InputError(f"malformed bastion URL {shown!r}: {exc}", hint=_FORM_HINT) from None
    if parts.scheme != "ssh" or parts.path not in ("", "/") or parts.fragment or "#" in url:
        raise InputError(f"unsupported bastion URL {shown!r}", hint=_FORM_HINT)
    if port == 0:
        raise InputError(f"bad port in the bastion URL {shown!r}", hint="a port from 1 to 65535")
    query = _via_query(parts.query, shown, nested=outer is not None)
    host = _check_host(parts.hostname or "", shown)
    user = _check_user(unquote(parts.username) if parts.username is not None else None, parts.password, shown)
    via = Via(
        host=host,
        port=port if port is not None else 22,
        user=user,
        identity=_existing_file(query, "identity", shown) or (outer.identity if outer else None),
        known_hosts=_existing_file(query, "known_hosts", shown) or (outer.known_hosts if outer else None),
        connect_timeout=_timeout(query, shown, outer),
        url=_short(user, host, port),
    )
    if "jump" not in query:
        return via
    jump = _jump(query["jump"], shown, via)
    return replace(via, jump=jump, url=f"{via.url} (through {jump.url})")


def _short(user: str | None, host: str, port: int | None) -> str:
    """How messages name a bastion: ``ssh://[user@]host[:port]``, without its files."""
    shown_host = f"[{host}]" if ":" in host else host
    return f"ssh://{user + '@' if user else ''}{shown_host}{f':{port}' if port not in (None, 22) else ''}"


_FORM_HINT = "write ssh://[user@]host[:port][?identity=PATH&known_hosts=PATH&jump=ssh://host]"


def _shown(url: str) -> str:
    """The URL fit for a message: one line, bounded, no control characters."""
    text = "".join(char if 0x20 < ord(char) != 0x7F else "?" for char in url)
    return text if len(text) <= 200 else text[:200] + "…"


def _one_line(text: str) -> str:
    """What ssh said, fit for a message: one line of printable characters, bounded."""
    flat = "".join(char if char.isprintable() else " " for char in text.strip())
    return flat if len(flat) <= _STDERR_SHOWN else flat[:_STDERR_SHOWN] + "…"


def _via_query(raw: str, shown: str, *, nested: bool) -> dict[str, str]:
    try:
        pairs = parse_qs(raw, keep_blank_values=True, strict_parsing=bool(raw))
    except ValueError:
        raise InputError(f"malformed query in the bastion URL {shown!r}", hint=_FORM_HINT) from None
    unknown = sorted(set(pairs) - VIA_OPTIONS.keys())
    if unknown:
        names = ", ".join(name if re.fullmatch(r"[A-Za-z0-9_]{1,32}", name) else "***" for name in unknown)
        raise InputError(
            f"unknown bastion option(s) {names} in {shown!r}", hint=f"known options: {', '.join(VIA_OPTIONS)}"
        )
    repeated = sorted(name for name, values in pairs.items() if len(values) > 1)
    if repeated:
        raise InputError(f"bastion option(s) {', '.join(repeated)} given twice in {shown!r}", hint="give each once")
    if nested and "jump" in pairs:
        raise InputError(f"the jump host {shown!r} has a jump itself", hint="one jump host at most")
    return {name: values[0] for name, values in pairs.items()}


def _check_host(host: str, shown: str) -> str:
    """A DNS name or an IP address; never something ssh could read as an option."""
    if not host:
        raise InputError(f"no host in the bastion URL {shown!r}", hint=_FORM_HINT)
    with contextlib.suppress(ValueError):
        return str(ipaddress.ip_address(host))
    if len(host) > _MAX_HOST or not _NAME.fullmatch(host):
        raise InputError(f"bad bastion host name in {shown!r}", hint="write a DNS name, an IPv4 address or [IPv6]")
    return host


def _check_user(user: str | None, password: str | None, shown: str) -> str | None:
    if password is not None:
        raise InputError(
            f"a password is written in the bastion URL {shown!r}",
            hint="the bastion is reached with keys only (agent, ?identity=PATH, ~/.ssh/config)",
        )
    if user is not None and not _USER.fullmatch(user):
        raise InputError(
            f"bad user name in the bastion URL {shown!r}", hint="letters, digits, '.', '_' and '-'; not first '-'"
        )
    return user


def _existing_file(query: dict[str, str], name: str, shown: str) -> Path | None:
    value = query.get(name)
    if value is None:
        return None
    path = Path(value).expanduser().absolute()
    if not _SAFE_PATH.fullmatch(str(path)):
        raise InputError(
            f"the bastion's {name} path in {shown!r} holds characters ssh would expand or split (space, %, ~...)",
            hint="use a path of letters, digits and ._/+@- only",
        )
    if not (path.is_file() and os.access(path, os.R_OK)):
        raise InputError(
            f"the bastion's {name} file {path} does not exist or is not readable", hint=f"check ?{name}=PATH"
        )
    return path


def _jump(url: str, shown: str, bastion: Via) -> Via:
    """The jump host of ``bastion``: its own settings, else the bastion's."""
    if not url.startswith("ssh://"):
        raise InputError(f"the jump host in {shown!r} is not an ssh:// URL", hint=_FORM_HINT)
    return parse_via(url, outer=bastion)


def _timeout(query: dict[str, str], shown: str, outer: Via | None) -> int:
    value = query.get("connect_timeout")
    if value is None:
        return outer.connect_timeout if outer else DEFAULT_CONNECT_TIMEOUT
    if not (value.isascii() and value.isdigit() and 1 <= int(value) <= _MAX_CONNECT_TIMEOUT):
        raise InputError(
            f"bad connect_timeout in {shown!r}", hint=f"a whole number of seconds from 1 to {_MAX_CONNECT_TIMEOUT}"
        )
    return int(value)


def check_node_address(host: str, port: int) -> tuple[str, int]:
    """A node address a server announced, checked before it reaches ssh (DataError otherwise)."""
    with contextlib.suppress(ValueError):
        return str(ipaddress.ip_address(host)), _node_port(host, port)
    if len(host) > _MAX_HOST or not _NAME.fullmatch(host):
        raise DataError(
            f"a server announced a node address that is not a host name or IP: {_shown(host)[:80]!r}",
            hint="the endpoint's topology (CLUSTER SHARDS, Sentinel, INFO replication) names an invalid node",
        )
    return host, _node_port(host, port)


def _node_port(host: str, port: int) -> int:
    if not 0 < port <= 65535:
        raise DataError(f"a server announced node {_shown(host)[:80]} with port {port}", hint="check the topology")
    return port


# ---- argv ----------------------------------------------------------------------------------------------------


def ssh_options(via: Via) -> list[str]:
    """The options every ssh process of this bastion gets: no prompt, checked host keys, bounded waits."""
    options = {
        "BatchMode": "yes",
        "StrictHostKeyChecking": "yes",
        "UpdateHostKeys": "no",
        "ConnectTimeout": str(via.connect_timeout),
        "ServerAliveInterval": str(ALIVE_INTERVAL),
        "ServerAliveCountMax": str(ALIVE_COUNT),
        "ExitOnForwardFailure": "yes",
        "ForwardAgent": "no",
        "ForwardX11": "no",
        "PermitLocalCommand": "no",
        "ClearAllForwardings": "yes",
        "LogLevel": "ERROR",
    }
    if via.known_hosts is not None:
        options["UserKnownHostsFile"] = str(via.known_hosts)
        options["GlobalKnownHostsFile"] = "none"
    if via.identity is not None:
        options["IdentityFile"] = str(via.identity)
        options["IdentitiesOnly"] = "yes"
    if via.jump is not None:
        options["ProxyCommand"] = proxy_command(via.jump)
    argv = [part for name, value in options.items() for part in ("-o", f"{name}={value}")]
    return [*argv, "-p", str(via.port), *(["-l", via.user] if via.user else [])]


def proxy_command(jump: Via) -> str:
    """A ProxyCommand reaching the bastion through ``jump``, with the same checks (``-J`` would drop them)."""
    argv = ["ssh", "-W", "[%h]:%p", *ssh_options(jump), "--", jump.host]
    return " ".join(part if part == "[%h]:%p" else shlex.quote(part) for part in argv)


def master_argv(via: Via, control: Path) -> list[str]:
    """The control master: one connection to the bastion, no command, no terminal, forwards added later."""
    return ["ssh", "-M", "-N", "-T", "-S", str(control), *ssh_options(via), "--", via.host]


def forward_argv(control: Path, listen: Path, host: str, port: int) -> list[str]:
    """Add a forward from the unix socket ``listen`` to ``host:port`` as the bastion sees it.

    Forwards are never cancelled one by one: they all end with the master.
    """
    target = f"[{host}]" if ":" in host else host
    return [
        "ssh",
        "-S",
        str(control),
        "-O",
        "forward",
        "-L",
        f"{listen}:{target}:{port}",
        "--",
        _MUX_HOST,
    ]


# ---- the tunnel ----------------------------------------------------------------------------------------------


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL when this process dies, whatever kills it (Linux)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    if os.getppid() == 1:
        os._exit(1)


class SshTunnel:
    """One control master to a bastion and a forward per node address; use as a context manager.

    :meth:`dial` returns a socket connected, through the bastion, to the node a server announced; the caller
    speaks TLS over it with the node's real name. :meth:`close` ends the master and removes its directory.
    """

    def __init__(self, via: Via) -> None:
        self.via = via
        self._dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._forwards: dict[tuple[str, int], Path] = {}
        self._lock = threading.Lock()

    def __enter__(self) -> SshTunnel:
        self.open()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @property
    def control(self) -> Path:
        """The control socket's path (in the private directory)."""
        if self._dir is None:
            raise DataError(f"the tunnel through {self.via} is not open")
        return self._dir / "ctl"

    def describe(self) -> str:
        """How messages name this route: ``via ssh://bastion``."""
        return f"via {self.via}"

    def open(self) -> None:
        """Start the control master and wait until it is logged in (DataError within the timeout otherwise)."""
        if shutil.which("ssh") is None:
            raise DataError("--via needs the OpenSSH client (ssh)", hint="install openssh-client")
        self._dir = _private_directory()
        try:
            self._start()
        except BaseException:
            self.close()
            raise

    def _start(self) -> None:
        # PR_SET_PDEATHSIG fires when the starting *thread* ends: only the main thread lasts as long as the
        # process, so a master restarted by a copy worker is ended by close() alone
        tie = _die_with_parent if threading.current_thread() is threading.main_thread() else None
        log = (self.control.parent / "ssh.log").open("wb")
        with log:
            self._proc = subprocess.Popen(
                master_argv(self.via, self.control),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
                start_new_session=True,  # Ctrl-C reaches this process, which closes the master itself
                env=child_env(),
                preexec_fn=tie,  # noqa: PLW1509 - only prctl and getppid, no locks
            )
        hops = 2 if self.via.jump is not None else 1
        deadline = time.monotonic() + hops * self.via.connect_timeout + 5
        while not self.control.exists():
            if self._proc.poll() is not None:
                raise self._failure()
            if time.monotonic() > deadline:
                raise DataError(
                    f"the SSH bastion {self.via} did not answer within {hops * self.via.connect_timeout + 5}s",
                    hint=_UNREACHABLE_HINT,
                    retryable=True,
                )
            time.sleep(0.02)

    def _stderr(self) -> str:
        try:
            text = (self.control.parent / "ssh.log").read_text(errors="replace")
        except (OSError, DataError):
            return ""
        lines = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("@")]
        return _one_line(" ".join(lines[-3:]))

    def _failure(self) -> DataError:
        """Why the master stopped, as a DataError with what to do about it."""
        said = self._stderr()
        lowered = said.lower()
        if "host key" in lowered or "identification has changed" in lowered or "host_key" in lowered:
            return DataError(
                f"the SSH bastion {self.via} was refused: its host key is not the one known_hosts holds ({said})",
                hint="check the bastion's host key fingerprint with its owner; then put it in known_hosts "
                "(or pass ?known_hosts=PATH); keys are never accepted blindly",
            )
        if "permission denied" in lowered or "too many authentication failures" in lowered:
            return DataError(
                f"the SSH bastion {self.via} refused the login ({said})",
                hint="check the user (ssh://user@host), the key (?identity=PATH or your ssh-agent) "
                "and that the bastion allows it",
            )
        return DataError(
            f"cannot connect to the SSH bastion {self.via}: {said or 'ssh exited'}",
            hint=_UNREACHABLE_HINT,
            retryable=True,
        )

    def dial(self, host: str, port: int, timeout: float) -> socket.socket:
        """A socket connected to ``host:port`` as the bastion reaches it (a forward made on first use)."""
        listen = self.forward(host, port)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(str(listen))
        except OSError as exc:
            sock.close()
            raise self._lost(host, port, exc) from None
        return sock

    def forward(self, host: str, port: int) -> Path:
        """The unix socket of the forward to ``host:port`` (made on first use; a lost master started again)."""
        host, port = check_node_address(host, port)
        with self._lock:
            self._reconnect_if_lost()
            if (host, port) in self._forwards:
                return self._forwards[(host, port)]
            listen = self.control.parent / f"f{len(self._forwards)}.sock"
            try:
                done = subprocess.run(
                    forward_argv(self.control, listen, host, port),
                    stdin=subprocess.DEVNULL,
                    capture_output=True,
                    text=True,
                    timeout=self.via.connect_timeout + 5,
                    env=child_env(),
                    check=False,
                )
            except subprocess.TimeoutExpired:
                raise DataError(
                    f"the SSH bastion {self.via} did not answer a forward request within "
                    f"{self.via.connect_timeout + 5}s",
                    hint=_UNREACHABLE_HINT,
                    retryable=True,
                ) from None
            if done.returncode != 0:
                said = _one_line(done.stderr)
                raise DataError(
                    f"the SSH bastion {self.via} refused a forward to {host}:{port} ({said})",
                    hint="the bastion's sshd must allow TCP forwarding (AllowTcpForwarding, PermitOpen)",
                )
            self._forwards[(host, port)] = listen
            return listen

    def _reconnect_if_lost(self) -> None:
        """A master that ended (the bastion went away, keep-alives ran out) is started again, once per loss.

        Its forwards ended with it: they are made again on demand. A bastion that now refuses or does not answer
        is the same DataError as at the start.
        """
        if self._proc is None or self._proc.poll() is None:
            return
        ended = self._stderr()
        self._proc = None
        self._forwards.clear()
        for stale in self.control.parent.glob("*.sock"):
            stale.unlink(missing_ok=True)
        self.control.unlink(missing_ok=True)
        try:
            self._start()
        except DataError as exc:
            raise DataError(
                f"the SSH connection to the bastion {self.via} ended ({ended or 'ssh exited'}) and could not be "
                f"made again: {exc.message}",
                hint=exc.hint,
                retryable=True,
            ) from None

    def _lost(self, host: str, port: int, exc: OSError) -> DataError:
        if self._proc is None or self._proc.poll() is not None:
            return DataError(
                f"cannot reach {host}:{port} {self.describe()}: the SSH connection ended ({self._stderr()})",
                hint="the next connection starts it again; if the bastion stays away, run the command again later "
                "(copy: with --resume)",
                retryable=True,
            )
        return DataError(
            f"cannot reach {host}:{port} {self.describe()}: {exc.strerror or exc}",
            hint="check that the bastion can reach that node",
            retryable=True,
        )

    def close(self) -> None:
        """Stop the master (SIGTERM, then SIGKILL) and remove the private directory with its sockets."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        directory, self._dir = self._dir, None
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)
        self._forwards.clear()


_UNREACHABLE_HINT = (
    "check the bastion's address and port, that it is up and that this machine may reach it "
    "(?connect_timeout=S waits longer)"
)


def _private_directory() -> Path:
    """A new 0700 directory whose socket paths fit ``sun_path`` ($TMPDIR first, else /tmp)."""
    for parent in (None, "/tmp"):
        try:
            directory = Path(tempfile.mkdtemp(prefix="reproducer-ssh-", dir=parent))
        except OSError:
            continue
        if len(os.fsencode(directory / "f99999.sock")) <= _SOCKET_PATH_MAX:
            return directory
        directory.rmdir()
    raise DataError(
        "no temporary directory short enough for the SSH control sockets",
        hint="set TMPDIR to a writable directory with a short path",
    )
