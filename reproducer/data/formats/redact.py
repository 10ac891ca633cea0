"""Messages about an import file never quote it: the file may be anyone's, even a link to a secret one."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from valkey.exceptions import ResponseError

from reproducer.data.endpoint import without_arguments, without_quoted

__all__ = ["unquoted_server_errors", "without_arguments", "without_quoted"]


@contextlib.contextmanager
def unquoted_server_errors() -> Iterator[None]:
    """Re-raise a server's error about commands built from the file without the file's content."""
    try:
        yield
    except ResponseError as exc:
        raise type(exc)(without_arguments(str(exc))) from None
