"""The manifest a render writes into its output directory: the files it owns, with their digests.

A render only ever replaces or removes files listed here; everything else in the directory (``.git``, the
user's ``backend.tf`` or ``*_override.tf``, notes, a deployment's state) belongs to someone else. The manifest
is read back from a directory that may come from a pull request, so every path in it is checked: relative,
no ``..``, not the manifest itself.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path, PurePosixPath

from reproducer.errors import InputError

MANIFEST = ".reproducer-manifest.json"
FORMAT_VERSION = 1


def digest(data: bytes) -> str:
    """The digest recorded for a file's content."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def safe_relative(relative: str) -> bool:
    """Whether ``relative`` names a file strictly inside a directory (no absolute path, no ``..``, no manifest)."""
    path = PurePosixPath(relative)
    return (
        bool(relative)
        and "\\" not in relative
        and "\x00" not in relative
        and not path.is_absolute()
        and all(part not in ("", ".", "..") for part in relative.split("/"))
        and relative != MANIFEST
    )


def read_manifest(directory: Path) -> dict[str, str] | None:
    """``relative path → digest`` of the files a render wrote into ``directory``; None when it has no manifest."""
    path = Path(directory) / MANIFEST
    if not path.is_file():
        return None
    hint = "delete it if this directory is yours, or choose another --out"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(f"cannot read the render manifest {path}: {error}", hint=hint) from None
    files = data.get("files") if isinstance(data, dict) else None
    if not isinstance(files, dict) or data.get("format_version") != FORMAT_VERSION:
        raise InputError(f"{path} is not a render manifest reproducer understands", hint=hint)
    unsafe = sorted(str(k) for k, v in files.items() if not (isinstance(k, str) and isinstance(v, str)))
    unsafe += sorted(k for k in files if isinstance(k, str) and not safe_relative(k))
    if unsafe:
        raise InputError(f"the render manifest {path} names paths outside its directory: {unsafe[:3]}", hint=hint)
    return dict(files)


def manifest_text(files: dict[str, str]) -> str:
    """The manifest's JSON for ``relative path → digest``."""
    data = {"format_version": FORMAT_VERSION, "generator": "reproducer render", "files": dict(sorted(files.items()))}
    return json.dumps(data, indent=2) + "\n"
