"""The team's state backend: the partial ``backend`` block ``render --backend`` writes, and backends users keep.

A render writes ``terraform/reproducer_backend.tf`` (``terraform { backend "s3" {} }``: no setting, no secret) and
``terraform/backend.<kind>.hcl.example`` (the keys a team fills in, to copy to ``backend.<kind>.hcl`` and give
``terraform init -backend-config=...``; credentials come from the environment). The choice sticks: a re-render
without ``--backend`` (by ``plan``, ``apply`` or ``migrate``) keeps the block it finds in the manifest, and
``--backend none`` removes it. A backend the user declares in a file of their own (``backend.tf``...) stays
theirs: ``--backend`` is then refused, since Terraform accepts one backend per directory.
Facts: docs/reference/gitops.md#state-backends.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from reproducer.errors import InputError
from reproducer.gitops.manifest import read_manifest

#: The file a render owns for the block (not ``backend.tf``: that name is the user's).
BACKEND_FILE = "terraform/reproducer_backend.tf"
#: ``--backend none``: remove the block an earlier render wrote.
NONE = "none"


@dataclass(frozen=True)
class BackendKind:
    """A backend ``render --backend`` supports: the settings a team fills in and where credentials come from."""

    name: str
    settings: tuple[tuple[str, str, str], ...]  # (key, example value as HCL, what it is)
    credentials: str


KINDS: dict[str, BackendKind] = {
    kind.name: kind
    for kind in (
        BackendKind(
            "s3",
            (
                ("bucket", '""', "the S3 bucket holding the state (versioning on)"),
                ("key", '"reproducer/terraform.tfstate"', "the state object's key"),
                ("region", '""', "the bucket's region"),
                ("use_lockfile", "true", "lock with a .tflock object (Terraform 1.10+; DynamoDB locks are deprecated)"),
                ("encrypt", "true", "server-side encryption of the state"),
            ),
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, come from the environment.",
        ),
        BackendKind(
            "gcs",
            (
                ("bucket", '""', "the GCS bucket holding the state"),
                ("prefix", '"reproducer"', "the folder of the state objects"),
            ),
            "GOOGLE_APPLICATION_CREDENTIALS or GOOGLE_BACKEND_CREDENTIALS (a file path) comes from the environment.",
        ),
        BackendKind(
            "azurerm",
            (
                ("resource_group_name", '""', "the storage account's resource group"),
                ("storage_account_name", '""', "the storage account"),
                ("container_name", '"tfstate"', "the blob container"),
                ("key", '"reproducer.tfstate"', "the state blob's name"),
                ("use_azuread_auth", "true", "authenticate with Entra ID, not the account key"),
            ),
            "ARM_CLIENT_ID, ARM_TENANT_ID, ARM_SUBSCRIPTION_ID and ARM_CLIENT_SECRET (or OIDC) come from the "
            "environment.",
        ),
        BackendKind(
            "http",
            (
                ("address", '""', "the state URL (GitLab: .../api/v4/projects/<id>/terraform/state/<name>)"),
                ("lock_address", '""', "the lock URL (GitLab: the state URL + /lock)"),
                ("unlock_address", '""', "the unlock URL (GitLab: the state URL + /lock)"),
                ("lock_method", '"LOCK"', 'GitLab and Gitea: "POST"'),
                ("unlock_method", '"UNLOCK"', 'GitLab and Gitea: "DELETE"'),
            ),
            "TF_HTTP_USERNAME and TF_HTTP_PASSWORD come from the environment.",
        ),
        BackendKind(
            "pg",
            (
                ("conn_str", '"postgres://HOST/DATABASE?sslmode=require"', "no user or password in it"),
                ("schema_name", '"terraform_remote_state"', "one schema per stack: lock ids are per schema"),
            ),
            "PGUSER and PGPASSWORD (or the whole PG_CONN_STR) come from the environment.",
        ),
    )
}

_BLOCK = re.compile(r'^\s*(?:backend\s*"([A-Za-z0-9_-]+)"|(cloud))\s*\{', re.MULTILINE)
_JSON_BLOCK = re.compile(r'"(backend|cloud)"\s*:')
_LINE_COMMENT = re.compile(r"(?:#|//).*$", re.MULTILINE)
_BLOCK_COMMENT = re.compile(r"/\*.*?\*/", re.DOTALL)


def backend_files(kind: str) -> dict[str, str]:
    """The files ``render --backend KIND`` adds: the partial block and the example settings."""
    from reproducer.targets.render import Safe, align, render_template  # Jinja loads only for a render

    spec = KINDS[kind]
    block = render_template("backend.tf.j2", {"kind": kind})
    lines = [f"{key} = {value} # {what}" for key, value, what in spec.settings]
    context = {
        "kind": Safe(kind),
        "name": Safe(f"backend.{kind}.hcl"),
        "credentials": Safe(spec.credentials),
        "lines": [Safe(line) for line in align("\n".join(lines)).splitlines()],
    }
    example = render_template("backend.hcl.example.j2", context)
    return {BACKEND_FILE: block, f"terraform/backend.{kind}.hcl.example": example}


def recorded_backend(out: Path) -> str | None:
    """The backend an earlier render wrote into ``out`` (its manifest lists the block), if any.

    The file may come from a pull request: only a kind of :data:`KINDS` is taken from it.
    """
    owned = read_manifest(out) if Path(out).is_dir() else None
    path = Path(out) / BACKEND_FILE
    linked = path.is_symlink() or path.parent.is_symlink()
    if not owned or BACKEND_FILE not in owned or linked or not path.is_file():
        return None
    found = declared_backends(_head(path), path.name)
    return found[0] if len(found) == 1 and found[0] in KINDS else None


def declared_backends(text: str, name: str) -> list[str]:
    """The backends (``s3``, ``cloud``...) a Terraform file declares, comments left out."""
    if name.endswith(".json"):
        return [match.group(1) for match in _JSON_BLOCK.finditer(text)]
    return [
        match.group(1) or match.group(2)
        for match in _BLOCK.finditer(_LINE_COMMENT.sub("", _BLOCK_COMMENT.sub("", text)))
    ]


def user_backends(out: Path) -> list[str]:
    """The files of ``out/terraform`` not written by reproducer that declare a backend (or ``cloud``) block."""
    directory = Path(out) / "terraform"
    if directory.is_symlink() or not directory.is_dir():
        return []  # a link is refused by write_tree; nothing is read through it
    owned = read_manifest(out) or {}
    found = []
    for path in sorted([*directory.glob("*.tf"), *directory.glob("*.tf.json")]):
        relative = path.relative_to(out).as_posix()
        if relative in owned or path.is_symlink() or not path.is_file():
            continue
        if declared_backends(_head(path), path.name):
            found.append(relative)
    return found


_READ_BYTES = 1 << 20


def _head(path: Path) -> str:
    """The first MiB of a Terraform file (a backend block is declared near the top of a usual one).

    Raises:
        InputError: the file cannot be read.
    """
    try:
        with path.open("rb") as handle:
            return handle.read(_READ_BYTES).decode("utf-8", errors="replace")
    except OSError as error:
        raise InputError(f"cannot read {path}: {error.strerror}", hint="fix its permissions, or move it away") from None


def chosen_backend(requested: str | None, out: Path) -> str | None:
    """The backend a render writes: ``requested``, else the one an earlier render wrote (``none``: no block).

    Raises:
        InputError: a backend would be written where a file of the user's already declares one.
    """
    if requested is not None and requested != NONE and requested not in KINDS:
        raise InputError(f"unknown backend {requested!r}", hint=f"use one of {', '.join([*KINDS, NONE])}")
    kind = recorded_backend(out) if requested is None else None if requested == NONE else requested
    theirs = user_backends(out) if kind is not None else []
    if theirs:
        ours = (
            f"--backend {kind}" if requested else f"the {kind} backend block an earlier render wrote ({BACKEND_FILE})"
        )
        raise InputError(
            f"{Path(out) / theirs[0]} already declares a backend, and Terraform takes one per directory: "
            f"two backends (yours and {ours}) are refused",
            hint="keep yours and render without --backend (or with --backend none to drop the one reproducer "
            "wrote), or remove your backend block",
        )
    return kind


def with_backend(files: dict[str, str], requested: str | None, out: Path, *, terraform: bool) -> dict[str, str]:
    """``files`` plus the backend files of :func:`chosen_backend` (none when no backend is chosen).

    Raises:
        InputError: see :func:`chosen_backend`; or a backend is requested for a target that renders no Terraform.
    """
    if not terraform and requested not in (None, NONE):
        raise InputError(
            "--backend sets where Terraform keeps its state, and this target renders no Terraform",
            hint="render without --backend",
        )
    kind = chosen_backend(requested, out) if terraform else None
    return files if kind is None else {**files, **backend_files(kind)}
