"""Run Ansible playbooks through ansible-runner: no value is ever templated, no secret reaches the disk in clear.

- Every variable reaches Ansible through a vars file written by :func:`reproducer.untrusted.ansible_yaml` (every
  string tagged ``!unsafe``) and passed as ``-e @file``: a spec value holding ``{{ lookup('pipe', ...) }}`` stays
  text. The file is private (mode 0600) in the private data directory, never in argv. The inventory is written
  the same way (``inventory.yml``), so host variables from Terraform outputs or a user's file stay text too.
- Secrets go in a vars file of the same kind, encrypted with Ansible Vault under a random one-time password
  that ansible-runner types into ``--ask-vault-pass`` from memory (``suppress_env_files=True``). Playbooks read
  them as ordinary variables and mark their tasks ``no_log``.
- ansible-runner records the child's environment in ``artifacts/<ident>/command``, so the child gets an
  allow-listed environment (:func:`ansible_environment`), never this process's passwords or URLs.
- SIGINT and SIGTERM during a run cancel the playbook (its process group is killed) and are raised again once
  the caller's handlers are back (:class:`_Cancellation`); ansible-runner never keeps its own handlers.

Job events become progress lines through a callback; a failed run raises :class:`AnsibleError` naming the
host, the task and the message. Only ``cli.py`` prints.
"""

from __future__ import annotations

import binascii
import difflib
import os
import re
import secrets
import shlex
import signal
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

import yaml

from reproducer.errors import Interrupted, ToolError
from reproducer.procs import child_env
from reproducer.untrusted import ansible_yaml

Progress = Callable[[str], None]
VAULT_PROMPT = r"Vault password:\s*$"
SECRETS_FILE = "secrets.vault.yml"
VARS_FILE = "vars.yml"
INVENTORY_FILE = "inventory.yml"
#: What Ansible may inherit from this process beyond :data:`reproducer.procs.BASE_ENV_ALLOWED`.
ANSIBLE_ENV_ALLOWED = ("ANSIBLE_*",)
#: How often (seconds) the run checks for a cancelling signal while a task runs silently.
_CANCEL_POLL = 0.2


class AnsibleError(ToolError):
    """A playbook failed; the message names the first failing host and task."""


@dataclass(frozen=True)
class TaskFailure:
    """One failed or unreachable task."""

    host: str
    task: str
    message: str


@dataclass
class PlaybookResult:
    """How a playbook run ended."""

    status: str
    rc: int
    changed: int
    failures: list[TaskFailure] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list, repr=False)


def cmdline(*, check: bool, diff: bool, secrets_file: Path | None, vars_file: Path | None = None) -> str:
    """Extra ansible-playbook arguments (pure)."""
    args = ["--check"] * check + ["--diff"] * diff
    if vars_file is not None:
        args += ["--extra-vars", f"@{vars_file}"]
    if secrets_file is not None:
        args += ["--ask-vault-pass", "--extra-vars", f"@{secrets_file}"]
    return shlex.join(args)


def failures_from_events(events: Sequence[Mapping[str, Any]]) -> list[TaskFailure]:
    """Failed and unreachable tasks of a run, in order (ignored failures excluded)."""
    found = []
    for event in events:
        data = event.get("event_data") or {}
        if event.get("event") in ("runner_on_failed", "runner_on_unreachable") and not data.get("ignore_errors"):
            result = data.get("res") or {}
            message = _item_errors(result) or result.get("msg") or result.get("reason") or event.get("event", "")
            found.append(TaskFailure(str(data.get("host", "?")), str(data.get("task", "?")), str(message).strip()))
    return found


def _item_errors(result: Mapping[str, Any]) -> str:
    """The stderr (or message) of each failed loop item, or of the task itself."""
    items = [r for r in result.get("results") or [] if r.get("failed")]
    texts = [str(r.get("stderr") or r.get("msg") or "") for r in items] or [str(result.get("stderr") or "")]
    return " | ".join(t.strip() for t in texts if t.strip())


def changed_tasks(events: Sequence[Mapping[str, Any]]) -> list[str]:
    """``host: task`` of every task that changed (or would change, in check mode), in order."""
    found = []
    for event in events:
        data = event.get("event_data") or {}
        if event.get("event") == "runner_on_ok" and (data.get("res") or {}).get("changed"):
            found.append(f"{data.get('host', '?')}: {data.get('task', '?')}")
    return found


def diff_text(events: Sequence[Mapping[str, Any]]) -> str:
    """The ``--diff`` output of a run as one unified diff (tasks with ``no_log`` show none: Ansible hides it)."""
    chunks = []
    for event in events:
        data = event.get("event_data") or {}
        result = data.get("res") or {}
        for item in [result, *(result.get("results") or [])]:
            for diff in _as_list(item.get("diff")):
                chunks.append(_unified(diff, f"{data.get('host', '?')}: {data.get('task', '?')}"))
    return "".join(chunk for chunk in chunks if chunk)


def _as_list(value: Any) -> list[Mapping[str, Any]]:
    if isinstance(value, Mapping):
        return [value]
    return [v for v in value or [] if isinstance(v, Mapping)]


def _unified(diff: Mapping[str, Any], where: str) -> str:
    if "prepared" in diff:
        return f"# {where}\n{diff['prepared']}\n"
    before, after = diff.get("before", ""), diff.get("after", "")
    if not isinstance(before, str) or not isinstance(after, str):
        before, after = yaml.safe_dump(before), yaml.safe_dump(after)
    lines = difflib.unified_diff(
        before.splitlines(keepends=True),
        after.splitlines(keepends=True),
        f"{where} (before: {diff.get('before_header', 'now')})",
        f"{where} (after: {diff.get('after_header', 'apply')})",
    )
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def progress_line(event: Mapping[str, Any]) -> str | None:
    """A short line for the progress callback, or None for events not worth showing."""
    data = event.get("event_data") or {}
    kind = event.get("event")
    if kind == "playbook_on_task_start":
        return f"task: {data.get('task', '?')}"
    if kind in ("runner_on_ok", "runner_on_failed", "runner_on_unreachable") and data.get("res", {}).get("changed"):
        return f"  changed: {data.get('host')} — {data.get('task')}"
    return None


def write_vault(path: Path, values: Mapping[str, Any], password: str) -> None:
    """Encrypt ``values`` (unsafe-tagged YAML) with Ansible Vault into ``path``; only ciphertext reaches the disk."""
    _write_private(path, vault_encrypt(ansible_yaml(dict(values)).encode(), password))


def vault_encrypt(plaintext: bytes, password: str) -> bytes:
    """Ansible Vault 1.1 (AES256) of ``plaintext``, as ``ansible-vault encrypt`` writes it.

    Written here with ``cryptography`` (which ansible-core itself uses) because importing ansible in this process
    creates ``~/.ansible/tmp`` in the user's home.
    """
    from cryptography.hazmat.primitives import hashes, hmac, padding
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

    salt = os.urandom(32)
    derived = PBKDF2HMAC(hashes.SHA256(), length=80, salt=salt, iterations=10000).derive(password.encode())
    cipher_key, hmac_key, counter = derived[:32], derived[32:64], derived[64:]
    padder = padding.PKCS7(algorithms.AES.block_size).padder()
    encryptor = Cipher(algorithms.AES(cipher_key), modes.CTR(counter)).encryptor()
    ciphertext = encryptor.update(padder.update(plaintext) + padder.finalize()) + encryptor.finalize()
    signer = hmac.HMAC(hmac_key, hashes.SHA256())
    signer.update(ciphertext)
    body = binascii.hexlify(b"\n".join(binascii.hexlify(part) for part in (salt, signer.finalize(), ciphertext)))
    lines = [body[i : i + 80] for i in range(0, len(body), 80)]
    return b"\n".join([b"$ANSIBLE_VAULT;1.1;AES256", *lines]) + b"\n"


def write_vars(path: Path, values: Mapping[str, Any]) -> None:
    """Write ``values`` for ``--extra-vars @path``: every string ``!unsafe`` (never templated), mode 0600."""
    _write_private(path, ansible_yaml(dict(values)).encode())


def _write_private(path: Path, data: bytes) -> None:
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def run_playbook(
    playbook: Path,
    inventory: Mapping[str, Any],
    *,
    private_data_dir: Path,
    extravars: Mapping[str, Any] | None = None,
    secret_vars: Mapping[str, Any] | None = None,
    check: bool = False,
    diff: bool = False,
    progress: Progress | None = None,
) -> PlaybookResult:
    """Run ``playbook`` on ``inventory`` (a dict inventory) and return its result; raise on failure.

    ``extravars`` and ``secret_vars`` are data, never templates. SIGINT or SIGTERM during the run stops the
    playbook and raises what the caller's handler raises (``KeyboardInterrupt``/:class:`Interrupted` by default);
    the caller's handlers are in place again when this returns or raises.
    """
    import ansible_runner.interface

    private_data_dir.mkdir(parents=True, exist_ok=True)
    private_data_dir.chmod(0o700)
    vars_file = private_data_dir / VARS_FILE
    write_vars(vars_file, extravars or {})
    inventory_file = private_data_dir / INVENTORY_FILE
    write_vars(inventory_file, _local_temp_in(inventory, private_data_dir / "tmp"))
    secrets_file, passwords = None, {}
    if secret_vars:
        password = secrets.token_urlsafe(32)
        secrets_file = private_data_dir / SECRETS_FILE
        write_vault(secrets_file, secret_vars, password)
        passwords = {VAULT_PROMPT: password}
    events: list[dict[str, Any]] = []
    callback_errors: list[BaseException] = []

    def on_event(event: dict[str, Any]) -> bool:
        events.append(event)
        line = progress_line(event)
        if line and progress and not callback_errors:
            try:
                progress(line)
            except BaseException as exc:  # re-raised once the playbook is stopped
                callback_errors.append(exc)
        return True

    with _Cancellation() as cancellation:
        runner = ansible_runner.interface.init_runner(
            private_data_dir=str(private_data_dir),
            playbook=str(playbook),
            inventory=str(inventory_file),
            passwords=passwords,
            suppress_env_files=True,
            quiet=True,
            cmdline=cmdline(check=check, diff=diff, secrets_file=secrets_file, vars_file=vars_file),
            event_handler=on_event,
            cancel_callback=lambda: cancellation.requested() or bool(callback_errors),
            ident=f"{playbook.stem}-{'check' if check else 'apply'}",
            envvars={
                "PATH": _path_with_ansible(),
                "ANSIBLE_NOCOLOR": "1",
                # Ansible's controller-side files (temp, ~/.ansible) stay in the run's private directory.
                "ANSIBLE_LOCAL_TEMP": str(private_data_dir / "tmp"),
                # And a local module's own temporary files (AnsiballZ's payload, left behind when a cancelled
                # run kills the module): in the run's directory, never in the machine's /tmp.
                "TMPDIR": str(private_data_dir / "tmp"),
                "ANSIBLE_HOME": str(private_data_dir / "ansible-home"),
            },
            rotate_artifacts=5,
        )
        runner.config.env = ansible_environment(runner.config.env)
        runner.config.pexpect_timeout = _CANCEL_POLL
        runner.run()
        if runner.canceled:
            _kill_leftover_workers(vars_file)
    cancellation.raise_if_requested()
    if callback_errors:  # the progress callback failed: the playbook was stopped, its error goes on
        raise callback_errors[0]
    result = PlaybookResult(
        str(runner.status), int(runner.rc), _changed(runner.stats), failures_from_events(events), events
    )
    if result.status != "successful":
        raise _failure(playbook, result)
    return result


def ansible_environment(runner_env: Mapping[str, str]) -> dict[str, str]:
    """The environment of the ansible-playbook child: an allow-list of ours plus what ansible-runner set itself.

    ansible-runner seeds the child's environment with this process's whole environment and records it in
    ``artifacts/<ident>/command``; only :data:`ANSIBLE_ENV_ALLOWED` and the common variables
    (:func:`reproducer.procs.child_env`) are kept. Passwords reach playbooks through the one-time vault only.
    """
    own = {k: v for k, v in runner_env.items() if os.environ.get(k) != v}
    return without_secrets(os.environ) | own


def without_secrets(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` reduced to what Ansible may see: an allow-list (common variables, ``ANSIBLE_*``), not a deny-list.

    ``SRC_PW``, ``DATABASE_URL`` or any name nobody thought of stays out, whatever it looks like.
    """
    return child_env(ANSIBLE_ENV_ALLOWED, base=env)


_Handler = Callable[[int, FrameType | None], Any] | int | None


class _Cancellation:
    """SIGINT/SIGTERM handlers for the time of a run: a signal asks to cancel; the caller's handlers come back.

    A signal the caller ignores stays ignored. After the run, :meth:`raise_if_requested` calls the caller's
    handler for the signal received (``default_int_handler`` raises ``KeyboardInterrupt``), or raises
    :class:`Interrupted` when that handler is the default or returns.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.signum: int | None = None
        self.previous: dict[int, _Handler] = {}

    def __enter__(self) -> _Cancellation:
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                handler = signal.getsignal(sig)
                if handler is not signal.SIG_IGN:
                    self.previous[sig] = handler
                    signal.signal(sig, self._on_signal)
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is None:
            self.signum = signum

    def requested(self) -> bool:
        """Whether a signal asked to stop the run (ansible-runner's cancel callback)."""
        return self.signum is not None

    def raise_if_requested(self) -> None:
        """Raise what the caller's handler raises for the signal received, or :class:`Interrupted`."""
        if self.signum is None:
            return
        handler = self.previous.get(self.signum)
        if callable(handler):
            handler(self.signum, None)
        raise Interrupted(self.signum)


def _kill_leftover_workers(vars_file: Path) -> None:
    """Kill the process groups a cancelled playbook left behind, found by this run's vars file in their argv.

    ansible-core's workers start sessions of their own, so ansible-runner's kill of the playbook's process group
    misses them and the modules they run (a ``sleep`` in a task would outlive the run).
    """
    marker = f"@{vars_file}".encode()
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if marker in (proc / "cmdline").read_bytes().split(b"\0"):
                os.killpg(os.getpgid(int(proc.name)), signal.SIGKILL)
        except (OSError, ValueError):
            continue


def _local_temp_in(inventory: Mapping[str, Any], temp: Path) -> Mapping[str, Any]:
    """``inventory`` with ``ansible_remote_tmp`` set to ``temp`` on hosts reached by the local connection.

    Their "remote" temporary directory is otherwise ``~/.ansible/tmp`` in the user's own home.
    """
    groups = {}
    for name, group in inventory.items():
        hosts = group.get("hosts") if isinstance(group, Mapping) else None
        if not isinstance(hosts, Mapping):
            groups[name] = group
            continue
        local = {
            host: {"ansible_remote_tmp": str(temp), **settings}
            for host, settings in hosts.items()
            if isinstance(settings, Mapping) and settings.get("ansible_connection") == "local"
        }
        groups[name] = {**group, "hosts": {**hosts, **local}}
    return groups


def _path_with_ansible() -> str:
    """PATH with this Python's bin directory first (a venv's bin, holding ansible-playbook, is often not on PATH)."""
    return os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "/usr/bin:/bin")])


def _changed(stats: Mapping[str, Any] | None) -> int:
    return sum((stats or {}).get("changed", {}).values())


def _failure(playbook: Path, result: PlaybookResult) -> AnsibleError:
    if result.failures:
        first = result.failures[0]
        more = f" (and {len(result.failures) - 1} more)" if len(result.failures) > 1 else ""
        message = f"{playbook.name}: task {first.task!r} failed on {first.host}: {_one_line(first.message)}{more}"
    else:
        message = f"{playbook.name} ended with status {result.status} (rc {result.rc})"
    return AnsibleError(message, hint="fix the cause, then run apply again (the playbooks are idempotent)")


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text)[:300]
