"""Where the non-Python parts (templates, playbooks, Terraform modules) are, installed or not."""

from __future__ import annotations

from pathlib import Path

from reproducer.errors import ReproducerError

_PACKAGE = Path(__file__).resolve().parent
KINDS = ("templates", "playbooks", "terraform")


def data_dir(kind: str) -> Path:
    """The directory of ``kind``: inside an installed wheel (``reproducer/_data``) or the source checkout."""
    if kind not in KINDS:
        raise ValueError(f"unknown resource kind {kind!r}; expected one of {', '.join(KINDS)}")
    for candidate in (_PACKAGE / "_data" / kind, _PACKAGE.parent / kind):
        if candidate.is_dir():
            return candidate
    raise ReproducerError(f"reproducer's {kind} directory is missing", hint="reinstall reproducer")
