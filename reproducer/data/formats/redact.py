"""Messages about an import file never quote it: the file may be anyone's, even a link to a secret one."""

from __future__ import annotations

import re

_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")


def without_quoted(text: str) -> str:
    """``text`` (a server's error or log line about the file) with every quoted part replaced by ``'…'``."""
    return _QUOTED.sub("'…'", text)
