"""The one exception tree of reproducer.

Every error says what went wrong (the message), what to do next (``hint``) and whether trying the same
thing again can help (``retryable``). ``cli.py`` turns them into a message on stderr and an exit code;
library code never prints or exits. The exit codes follow the conventions in
``docs/reference/gitops.md#exit-codes``.

::

    ReproducerError                      exit 1
    ├── InputError                       exit 2  bad flags, files or spec: fix the input
    │   └── SpecError                    exit 2  a spec file that cannot be read or validated
    ├── SourceError                      exit 1  reading a live source failed
    │   ├── SourceAuthError              exit 4  signature, credential or grant refused
    │   ├── SourceNotFoundError          exit 1  the project or service does not exist
    │   └── SourceUnavailableError       exit 1  429, 5xx or network failures after bounded retries
    ├── NotExactError                    exit 3  rendered, but some attributes are not exact (--strict)
    ├── DataError                        exit 1  copying, verifying or exporting data failed
    │   ├── DataAuthError                exit 4  a Valkey server refused the user or password
    │   ├── ReplyOverLimit               exit 1  a reply outgrew the byte bound (data/resp.py: read again in windows)
    │   ├── SnapshotRefused              exit 1  no snapshot over SYNC, or an unreadable one (data/snapshot.py: scan)
    │   ├── SnapshotBroken               exit 1  a snapshot stream ended early (data/snapshot.py: read it again)
    │   └── VerifyMismatchError          exit 3  source and target differ (a report lists the keys)
    ├── OutputError                      exit 1  a file could not be written (read-only or full file system)
    ├── SandboxError                     exit 1  the embedded sandbox could not start or stop
    └── ToolError                        exit 1  an external tool the pipeline runs failed or could not start
        ├── TerraformError               exit 1  Terraform failed (run/terraform.py: command, diagnostics)
        └── AnsibleError                 exit 1  a playbook failed (run/ansible.py: first failing host and task)

    KeyboardInterrupt
    └── Interrupted                      exit 130 (SIGINT) or 143 (SIGTERM): a signal stopped the command

``Interrupted`` derives from ``KeyboardInterrupt``, not ``Exception``: no ``except Exception`` swallows it, and
every clean-up written for Ctrl-C runs for SIGTERM too. ``redact`` removes credentials from any text shown.
An error defined beside the code that raises it (``TerraformError``, ``AnsibleError``) derives from a class here
and is drawn in this tree; ``tests/unit/test_errors.py`` checks that the tree and the classes agree.
"""

from __future__ import annotations

import re
import signal


class ReproducerError(Exception):
    """Base of every error reproducer raises on purpose.

    Args:
        message: what went wrong, in one sentence, naming the thing concerned.
        hint: what the user should do next.
        retryable: whether running the same command again may succeed without changes.
    """

    exit_code = 1

    def __init__(self, message: str, *, hint: str = "", retryable: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.retryable = retryable

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class InputError(ReproducerError):
    """The user's input (flags, files, environment) is wrong; fixing it is the only way forward."""

    exit_code = 2


class SpecError(InputError):
    """A service spec file is malformed, of an unknown schema version, or fails validation."""


class SourceError(ReproducerError):
    """Reading a live source (the OVH API, a Valkey endpoint) failed."""


class SourceAuthError(SourceError):
    """The source refused our credentials: bad signature, unknown key, or a call not granted."""

    exit_code = 4


class SourceNotFoundError(SourceError):
    """The project, service or sub-resource asked for does not exist at the source."""


class SourceUnavailableError(SourceError):
    """The source kept failing (rate limit, server error, network) after bounded retries."""


class NotExactError(ReproducerError):
    """Rendering succeeded, but ``--strict`` was asked and some attributes do not map exactly."""

    exit_code = 3


class DataError(ReproducerError):
    """Moving or checking data failed: a server refused, a connection broke, a target filled up."""


class DataAuthError(DataError):
    """A Valkey server refused the endpoint's user or password (WRONGPASS, NOAUTH)."""

    exit_code = 4


class VerifyMismatchError(DataError):
    """Verification found differences between source and target."""

    exit_code = 3


class SandboxError(ReproducerError):
    """The embedded sandbox (local Valkey fleet, OVH API emulator) could not start, answer or stop."""


class OutputError(ReproducerError):
    """Writing an output file failed (read-only or full file system, permission): the previous file is intact."""


class ToolError(ReproducerError):
    """An external tool the pipeline runs (Terraform, Ansible) failed or could not be started."""


class Interrupted(KeyboardInterrupt):
    """A signal (Ctrl-C, SIGTERM) stopped the command; clean-up runs as for Ctrl-C, then exit 128 + signal."""

    def __init__(self, signum: int = signal.SIGINT) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = int(signum)
        self.exit_code = 128 + self.signum


_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^\s/@'\"?#]+@")
_ENCODED_USERINFO = re.compile(r"[^\s/@'\"=&?:]+(?:%3[Aa]|:)[^\s/@'\"]*@(?=[\w\[.-])")
_SECRET_PARAMETER = re.compile(
    r"(?P<name>[?&;](?:password|passwd|pass|pwd|secret|token|auth|access_token|api_key|apikey)=)[^&\s'\"#]*",
    re.IGNORECASE,
)


def redact(text: str) -> str:
    """``text`` with URL credentials removed: user info (``user:pass@``, ``user%3Apass@``) and secret parameters.

    Every message shown to a user passes through here (the CLI applies it last); ``password_env`` and
    ``password_file`` name where a password is, not the password, and stay.
    """
    text = _USERINFO.sub(lambda m: f"{m.group('scheme')}***@", text)
    text = _ENCODED_USERINFO.sub("***@", text)
    return _SECRET_PARAMETER.sub(lambda m: f"{m.group('name')}***", text)
