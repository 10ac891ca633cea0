"""Messages about an import file never quote it: the file may be anyone's, even a link to a secret one."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

from valkey.exceptions import ResponseError

_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
#: how valkey-py names the failed command of a pipeline, with all its arguments
_PIPELINE_COMMAND = re.compile(r"Command # (\d+) \(.*\) of pipeline caused error: ", re.DOTALL)


def without_quoted(text: str) -> str:
    """``text`` (a server's error or log line about the file) with every quoted part replaced by ``'…'``."""
    return _QUOTED.sub("'…'", text)


def without_arguments(text: str) -> str:
    """A server error without the file's content: no command arguments (valkey-py's pipeline errors), no quotes."""
    return without_quoted(_PIPELINE_COMMAND.sub(r"command \1 of the batch: ", text))


@contextlib.contextmanager
def unquoted_server_errors() -> Iterator[None]:
    """Re-raise a server's error about commands built from the file without the file's content."""
    try:
        yield
    except ResponseError as exc:
        raise type(exc)(without_arguments(str(exc))) from None
