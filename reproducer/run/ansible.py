"""Run Ansible playbooks through ansible-runner, with secrets that never reach the disk in clear.

ansible-runner writes ``env/`` files and an ``artifacts/<ident>/command`` file holding the child's whole
environment, so secrets go neither in ``extravars`` nor in ``envvars``. They are written to a vars file
encrypted with Ansible Vault under a random one-time password, and that password is typed into Ansible's
``--ask-vault-pass`` prompt by ansible-runner's ``passwords`` mapping, in memory only
(``suppress_env_files=True``). Playbooks read them as ordinary variables and mark their tasks ``no_log``.

Job events become progress lines through a callback; a failed run raises :class:`AnsibleError` naming the
host, the task and the message. Only ``cli.py`` prints.
"""

from __future__ import annotations

import difflib
import os
import re
import secrets
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from reproducer.errors import ReproducerError

Progress = Callable[[str], None]
VAULT_PROMPT = r"Vault password:\s*$"
SECRETS_FILE = "secrets.vault.yml"


class AnsibleError(ReproducerError):
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


def cmdline(*, check: bool, diff: bool, secrets_file: Path | None) -> str:
    """Extra ansible-playbook arguments (pure)."""
    args = ["--check"] * check + ["--diff"] * diff
    if secrets_file is not None:
        args += ["--ask-vault-pass", "--extra-vars", f"@{secrets_file}"]
    return " ".join(args)


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
    """Encrypt ``values`` (YAML) with Ansible Vault into ``path``; only ciphertext reaches the disk."""
    from ansible.parsing.vault import VaultLib, VaultSecret  # type: ignore[import-untyped]

    vault = VaultLib([("default", VaultSecret(password.encode()))])
    path.write_bytes(vault.encrypt(yaml.safe_dump(dict(values))))
    path.chmod(0o600)


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
    """Run ``playbook`` on ``inventory`` (a dict inventory) and return its result; raise on failure."""
    import ansible_runner.interface

    private_data_dir.mkdir(parents=True, exist_ok=True)
    secrets_file, passwords = None, {}
    if secret_vars:
        password = secrets.token_urlsafe(32)
        secrets_file = private_data_dir / SECRETS_FILE
        write_vault(secrets_file, secret_vars, password)
        passwords = {VAULT_PROMPT: password}
    events: list[dict[str, Any]] = []

    def on_event(event: dict[str, Any]) -> bool:
        events.append(event)
        line = progress_line(event)
        if line and progress:
            progress(line)
        return True

    runner = ansible_runner.interface.init_runner(
        private_data_dir=str(private_data_dir),
        playbook=str(playbook),
        inventory=dict(inventory),
        extravars=dict(extravars or {}),
        passwords=passwords,
        suppress_env_files=True,
        quiet=True,
        cmdline=cmdline(check=check, diff=diff, secrets_file=secrets_file),
        event_handler=on_event,
        ident=f"{playbook.stem}-{'check' if check else 'apply'}",
        envvars={"PATH": _path_with_ansible(), "ANSIBLE_NOCOLOR": "1"},
        rotate_artifacts=5,
    )
    # ansible-runner seeds the child's environment with ours and records it in artifacts/<ident>/command.
    runner.config.env = without_secrets(runner.config.env)
    runner.run()
    result = PlaybookResult(
        str(runner.status), int(runner.rc), _changed(runner.stats), failures_from_events(events), events
    )
    if result.status != "successful":
        raise _failure(playbook, result)
    return result


_SECRET_NAME = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|CONSUMER_KEY|PRIVATE_KEY|CREDENTIAL|_AUTH$", re.IGNORECASE)
_HARMLESS = ("ANSIBLE_", "SSH_AUTH_SOCK")


def without_secrets(env: Mapping[str, str]) -> dict[str, str]:
    """The environment minus variables whose names say they hold a secret (Ansible's own settings are kept).

    Passwords reach playbooks through the one-time vault only; the OVH, cloud and reproducer secrets of the
    calling process have no business in Ansible's environment, nor in the artifacts that record it.
    """
    return {k: v for k, v in env.items() if k.startswith(_HARMLESS) or not _SECRET_NAME.search(k)}


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
