"""The CLI's console prints outside values literally: no markup, no emoji, control characters made visible."""

from __future__ import annotations

import io

from rich.markup import escape
from rich.table import Table

from reproducer.cli import LiteralConsole, visible

HOSTILE = ["extra:key:", ":smile:", "[bold]x[/bold]", "[link=http://evil]y[/link]", "a\x1b[31mb", "c\rd", "e\x85f"]


def printed(*objects: object, **options: object) -> str:
    out = io.StringIO()
    console = LiteralConsole(file=out, markup=False, emoji=False, highlight=False, soft_wrap=True, width=200)
    console.print(*objects, **options)
    return out.getvalue()


def test_plain_prints_show_every_hostile_value_as_written():
    for value in HOSTILE:
        assert printed(value) == visible(value) + "\n"
    assert printed("a\x1b[31mb") == "a\\x1b[31mb\n"
    assert printed("c\rd") == "c\\x0dd\n"
    assert printed("tab\tand\nnewline") == "tab     and\nnewline\n"  # rich expands tabs; newlines stay


def test_markup_calls_keep_their_escaped_values_literal():
    for value in HOSTILE:
        shown = printed(f"[dim]·[/dim] {escape(value)}", markup=True)
        assert shown == f"· {visible(value)}\n", shown


def test_table_cells_are_not_markup():
    table = Table()
    table.add_column("node")
    table.add_row(visible(":smile:[bold]n[/bold]\x1b"))
    shown = printed(table)
    assert ":smile:[bold]n[/bold]\\x1b" in shown and "\x1b" not in shown
