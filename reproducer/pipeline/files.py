"""Writing files: one atomic routine (``atomic_output``), render trees (``write_tree``) and run-directory state.

Files are written to a temporary name beside their place and renamed at the end, so a failed command never
leaves a half-written file behind; a read-only or full file system is an ``OutputError``.
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from reproducer.atomic import atomic_write, atomic_write_all, output_error
from reproducer.errors import InputError
from reproducer.gitops.manifest import MANIFEST, digest, manifest_text, read_manifest, safe_relative
from reproducer.gitops.plan import deployment_file


def make_directory(directory: Path) -> None:
    """Create ``directory`` (its parent must exist); a file in its place is bad input."""
    if directory.exists() and not directory.is_dir():
        raise InputError(f"{directory} exists and is not a directory", hint="choose another output path")
    parent = directory.parent
    if not parent.is_dir():
        raise InputError(f"cannot write {directory}: directory {parent} does not exist", hint="create it first")
    try:
        directory.mkdir(exist_ok=True)
    except OSError as error:
        raise output_error(directory, error) from None


#: Names that belong to the user wherever they are (Terraform's override and auto-loaded files, the provider lock,
#: a filled-in backend configuration): a render never writes, replaces or removes a file of these names.
#: docs/reference/gitops.md#generated-files
USER_NAMES = (
    "backend.tf",
    "backend.tf.json",
    "override.tf",
    "override.tf.json",
    "*_override.tf",
    "*_override.tf.json",
    "*.auto.tfvars",
    "*.auto.tfvars.json",
    "terraform.tfvars",
    "terraform.tfvars.json",
    ".terraform.lock.hcl",
    "backend*.hcl",
    "*.tfbackend",
)


def remove_created(paths: Iterable[Path]) -> None:
    """Undo what a failed call made: each path in turn, a file unlinked, a directory only while empty.

    Give only paths the call itself created (children before their parents); others are never touched.
    """
    for path in paths:
        with contextlib.suppress(OSError):
            if path.is_dir() and not path.is_symlink():
                path.rmdir()
            else:
                path.unlink()


def user_named(relative: str) -> bool:
    """Whether ``relative`` has a name that belongs to the user (:data:`USER_NAMES`), in any directory."""
    name = PurePosixPath(relative).name
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in USER_NAMES)


def write_tree(out: Path, files: dict[str, str]) -> None:
    """Write ``files`` (relative paths) into directory ``out``, touching only what an earlier render wrote there.

    ``out`` must be empty, absent, or hold the manifest (``.reproducer-manifest.json``) of an earlier render.
    Files the manifest lists are replaced, or removed when they are no longer rendered (unless edited since);
    anything else (``.git``, ``backend.tf``, ``*_override.tf``, notes, what a deployment added: state, tfvars,
    inventory, runs) is left alone. A file whose name belongs to the user (:func:`user_named`) is never written,
    even when a manifest lists it. Every file is staged first and renamed after, so a failure midway leaves the
    previous files intact.
    """
    out = Path(out)
    _refuse_user_names(out, files)
    created: list[Path] = [] if out.is_dir() else [out]
    make_directory(out)
    try:
        owned = read_manifest(out)
        if owned is None and any(out.iterdir()):
            raise InputError(
                f"{out} is not empty and holds no manifest of an earlier render",
                hint="choose an empty directory or one reproducer rendered",
            )
        owned = owned or {}
        _refuse_linked_entries(out, owned)
        paths = {relative: _owned_path(out, relative, owned) for relative in files}
        written = {relative: digest(text.encode("utf-8")) for relative, text in files.items()}
        _make_parents(out, paths.values(), created)
        staged = {paths[relative]: text for relative, text in files.items()}
        atomic_write_all({**staged, out / MANIFEST: manifest_text(owned | written)})  # the manifest lands first
    except BaseException:
        remove_created(reversed(created))
        raise
    kept = _remove_stale(out, {k: v for k, v in owned.items() if k not in files})
    atomic_write(out / MANIFEST, manifest_text(written | kept))


def _refuse_user_names(out: Path, files: dict[str, str]) -> None:
    """Refuse a render whose own output would take a name the user owns (``backend.tf``, ``*_override.tf``...)."""
    taken = sorted(relative for relative in files if user_named(relative))
    if taken:
        raise InputError(
            f"the render would write {', '.join(taken[:3])} into {out}: that name belongs to your own files "
            "(backend.tf, *_override.tf, *.auto.tfvars, .terraform.lock.hcl...), which a render never writes",
            hint="this is a bug in the target's templates: please report it; your files were not touched",
        )


def _refuse_linked_entries(out: Path, owned: dict[str, str]) -> None:
    """Refuse a manifest (from a pull request, maybe) whose entries reach through a link, before anything changes."""
    for relative in sorted(owned):
        _check_inside(out, relative)


def _check_inside(out: Path, relative: str) -> None:
    """Refuse ``relative`` when any existing component of it under ``out`` is a link or resolves outside ``out``."""
    root, current = out.resolve(), out
    for part in relative.split("/"):
        current = current / part
        if current.is_symlink() or (current.exists() and not current.resolve().is_relative_to(root)):
            raise InputError(
                f"the render manifest in {out} names {relative!r}, but {current} is a link: "
                "a render never removes or replaces anything through a link",
                hint="remove the link (or the entry from the manifest), or choose another --out",
            )
        if not current.exists():
            return  # nothing further down exists either


def _owned_path(out: Path, relative: str, owned: dict[str, str]) -> Path:
    """Where a rendered file goes; refused when that would write through a link or over a file not ours."""
    if not safe_relative(relative):
        raise InputError(f"refusing to write {relative!r} outside {out}", hint="this is a bug; please report it")
    path = out / relative
    for parent in [*reversed(PurePosixPath(relative).parents)][1:]:
        if (out / parent).is_symlink() or (out / parent).is_file():
            raise InputError(
                f"{out / parent} is a link or a file, where the render puts directory {parent}",
                hint="remove it, or choose another --out",
            )
    foreign = path.exists() or path.is_symlink()
    if foreign and relative not in owned and not deployment_file(relative):
        raise InputError(
            f"{path} exists and was not written by reproducer; the render would replace it",
            hint="move it away (or choose another --out): a render never overwrites files it did not write",
        )
    return path


def _make_parents(out: Path, paths: Iterable[Path], created: list[Path]) -> None:
    """Create the parent directories of ``paths``, appending each to ``created`` (removed after a failure)."""
    for parent in sorted({p.parent for p in paths}, key=lambda p: len(p.parts)):
        for directory in [*reversed(parent.relative_to(out).parents), parent.relative_to(out)]:
            if not (out / directory).exists():
                try:
                    (out / directory).mkdir()
                except OSError as error:
                    raise output_error(out / directory, error) from None
                created.append(out / directory)


def _remove_stale(out: Path, previous: dict[str, str]) -> dict[str, str]:
    """Remove files an earlier render wrote and this one does not, unless edited since or a deployment file.

    Returns the entries that stay in the manifest (deployment files a render or apply wrote, still ours).
    """
    kept: dict[str, str] = {}
    for relative, recorded in previous.items():
        path = out / relative
        if user_named(relative):
            continue  # a manifest (from a pull request, maybe) claiming a user's file: never ours to remove
        if deployment_file(relative):
            kept[relative] = recorded
            continue
        _check_inside(out, relative)
        if not path.is_file() or digest(path.read_bytes()) != recorded:
            continue  # gone already, or the user's now (edited): not ours to remove
        try:
            path.unlink()
            for parent in path.relative_to(out).parents:
                if str(parent) != "." and not any((out / parent).iterdir()):
                    (out / parent).rmdir()
        except OSError as error:
            raise output_error(path, error) from None
    return kept


@contextlib.contextmanager
def scratch_dir(prefix: str) -> Iterator[Path]:
    """A private temporary directory (mode 0700), removed on every way out of the ``with`` block."""
    with tempfile.TemporaryDirectory(prefix=prefix, ignore_cleanup_errors=True) as name:
        yield Path(name)


STATE_HINT = "it was changed or damaged: remove any temporary access by hand, then start with a new --run-dir"


def read_state_file(path: Path, fields: dict[str, type]) -> dict[str, Any]:
    """A run directory's JSON state (``run.json``, ``job.json``): a mapping whose ``fields`` have their types.

    The run directory may have been damaged or edited: anything else is an ``InputError``, never a crash.
    """
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(f"cannot read {path}: {type(error).__name__}", hint=STATE_HINT) from None
    if not isinstance(state, dict) or not all(isinstance(state.get(k), t) for k, t in fields.items()):
        raise InputError(f"{path} is not a state file reproducer wrote", hint=STATE_HINT)
    return state


def save_state_file(path: Path, state: dict[str, Any]) -> None:
    """Write a run directory's JSON state atomically (sorted keys, one trailing newline)."""
    atomic_write(path, json.dumps(state, indent=2, sort_keys=True) + "\n")
