"""The one way reproducer writes a file: to a temporary name beside it, then renamed into place.

Readers never see a half-written file, and a read-only or full file system leaves the previous file as it was and
raises ``OutputError``. Temporary files are created 0600 (``mkstemp``), so the final file is private too.

Only a regular file is ever renamed over: an existing symlink (wherever it points), directory, device, FIFO or
socket at the target is refused (``check_replaceable``), so ``/dev/stdout`` or a link into another tree is never
replaced by a file. Commands that stream (``export``) write through to a character device or FIFO instead
(``is_stream``).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

from reproducer.errors import InputError, OutputError

#: errno values of a file system that refuses a write: read-only, full, over quota, not permitted.
_WRITE_ERRNOS = frozenset(
    {errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EFBIG, errno.EISDIR, errno.ENOTDIR}
)


def output_error(path: Path, error: OSError) -> OutputError:
    """The error for a file that could not be written (the previous file, if any, is intact)."""
    return OutputError(
        f"cannot write {path}: {error.strerror or error}",
        hint="make room or choose a writable location; nothing was half-written",
    )


_KINDS = (
    (stat.S_ISLNK, "a symbolic link"),
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
)


def check_replaceable(path: Path) -> None:
    """Refuse a ``path`` that exists and is not a regular file: a rename would replace it, not write into it."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as error:
        raise output_error(path, error) from None
    if stat.S_ISREG(mode):
        return
    kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
    raise InputError(
        f"cannot write {path}: it is {kind}, and reproducer only replaces regular files",
        hint="choose a new file name (export writes to standard output with '-')",
    )


def is_stream(path: Path) -> bool:
    """Whether ``path`` (symlinks followed) is a character device or FIFO, which a stream writes through."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return stat.S_ISCHR(mode) or stat.S_ISFIFO(mode)


@contextlib.contextmanager
def atomic_output(path: Path) -> Iterator[Path]:
    """A temporary file beside ``path`` to write; renamed to ``path`` when the block succeeds, removed when not.

    This is the one way files are written here: readers never see a half-written file, and a read-only or
    full file system leaves the previous file as it was and raises ``OutputError``. A ``path`` that exists and
    is not a regular file (a symlink, directory, device, FIFO or socket) is refused, before and after writing.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise InputError(f"cannot write {path}: directory {path.parent} does not exist", hint="create it first")
    check_replaceable(path)
    try:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
    except OSError as error:
        raise output_error(path, error) from None
    tmp = Path(name)
    try:
        yield tmp
        check_replaceable(path)  # again: something may have appeared there while the file was written
        os.replace(tmp, path)
    except OSError as error:
        if error.errno not in _WRITE_ERRNOS:
            raise
        raise output_error(path, error) from None
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same directory, then rename."""
    atomic_write_all({Path(path): text})


def atomic_write_all(files: dict[Path, str]) -> None:
    """Write every file to a temporary name first, then rename them all: a failure leaves every old file intact.

    Renames run from the last file to the first (put a file that must land first, such as a manifest, last).
    """
    with contextlib.ExitStack() as stack:
        staged = [(stack.enter_context(atomic_output(path)), text) for path, text in files.items()]
        for tmp, text in staged:
            with tmp.open("w", encoding="utf-8") as handle:
                handle.write(text)
