"""How use cases report progress: a callback taking one line of text (``cli.py`` decides how to show it)."""

from __future__ import annotations

from collections.abc import Callable

from reproducer.data.copy import Stats

#: A progress callback: one human-readable line per call.
Progress = Callable[[str], None]
#: A copy's progress callback: the stats so far and the number of keys expected.
DataProgress = Callable[[Stats, int], None]


def quiet(_message: str) -> None:
    """The progress callback that shows nothing."""
    return None
