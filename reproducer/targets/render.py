r"""The one Jinja2 environment for every target, the HCL filters, and a ``terraform fmt`` aligner.

Escaping holds by construction, not by care: every ``{{ … }}`` of a template goes through the environment's
``finalize`` hook. In ``.tf`` templates a plain value becomes an escaped HCL string literal (a number or a bool
its HCL literal); only :class:`Safe` text, which the filters below return after escaping or validating, is
written as it is. In every other template (``ansible.cfg``, the Python helper) ``finalize`` refuses any value
that is not :class:`Safe` or an integer, so a forgotten filter fails the render instead of injecting.

HCL strings are not JSON strings: only ``\\n \\r \\t \\" \\\\`` and ``\\uNNNN`` escapes exist, and ``${`` and
``%{`` start template sequences, so they are doubled.
"""

from __future__ import annotations

import json
import math
import re
from functools import cache
from typing import Any

import jinja2

from reproducer import __version__
from reproducer.errors import InputError
from reproducer.resources import data_dir

_IDENT = re.compile(r"[^a-z0-9_]+")
_ATTRIBUTE = re.compile(r'^(\s*)([A-Za-z_][A-Za-z0-9_-]*|"[^"]*")\s*=\s*(.*)$')
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
#: Templates whose output is HCL: plain values are escaped into string literals there.
HCL_TEMPLATES = (".tf.j2", ".tfvars.example.j2")


class Safe(str):
    """Text a filter made safe to write as it is: an escaped HCL literal, a validated name, a one-line comment."""

    __slots__ = ()


def hcl_string(value: object) -> Safe:
    """A double-quoted HCL string literal."""
    text = str(value)
    text = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    text = text.replace("\t", "\\t").replace("${", "$${").replace("%{", "%%{")
    return Safe('"' + "".join(c if c.isprintable() else _unicode_escape(c) for c in text) + '"')


def _unicode_escape(char: str) -> str:
    code = ord(char)
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def hcl_fragment(value: object) -> Safe:
    """The inside of an HCL string literal (escaped, without the quotes), to join with interpolations."""
    return Safe(hcl_string(value)[1:-1])


def hcl_value(value: Any) -> Safe:
    """An HCL literal for a string, number, bool, None, list or map (maps inline: use loops for long ones)."""
    if value is None:
        return Safe("null")
    if isinstance(value, bool):
        return Safe("true" if value else "false")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise InputError(f"{value!r} is not a finite number", hint="use a finite number in the spec")
        return Safe(json.dumps(value))
    if isinstance(value, list | tuple):
        return Safe("[" + ", ".join(hcl_value(v) for v in value) + "]")
    if isinstance(value, dict):
        return Safe("{ " + ", ".join(f"{hcl_string(k)} = {hcl_value(v)}" for k, v in value.items()) + " }")
    return hcl_string(value)


def hcl_ident(value: object) -> Safe:
    """A stable Terraform identifier from any name (``cache-prod`` → ``cache_prod``): ``[a-z0-9_]`` only."""
    ident = _IDENT.sub("_", str(value).lower()).strip("_") or "unnamed"
    return Safe(f"r_{ident}" if ident[0].isdigit() else ident)


def slug(value: object, *, max_length: int = 40) -> Safe:
    """A resource name that providers accept: lowercase letters, digits and dashes."""
    text = re.sub(r"[^a-z0-9-]+", "-", str(value).lower()).strip("-") or "valkey"
    text = text if text[0].isalpha() else f"v-{text}"
    return Safe(text[:max_length].rstrip("-"))


def one_line(value: object) -> str:
    """``value`` with every line break and control character replaced by a space (for comments and notes)."""
    return _CONTROL.sub(" ", str(value))


def comment(value: object) -> Safe:
    """``# `` comment lines (``#``, ``//``-free HCL, YAML, INI and Python agree) that no value can leave."""
    return Safe("\n".join(f"# {one_line(line)}".rstrip() for line in str(value).split("\n")))


def _finalize_hcl(value: Any) -> Any:
    return value if isinstance(value, Safe) else hcl_value(value)


def _finalize_strict(value: Any) -> Any:
    if isinstance(value, Safe) or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    raise TypeError(f"a template interpolates an unescaped {type(value).__name__}: pass it through a filter")


def align(text: str) -> str:
    """Align ``=`` of consecutive one-line attributes at the same indent, as ``terraform fmt`` does."""
    lines, out = text.splitlines(), []
    group: list[tuple[str, ...]] = []
    for line in lines:
        match = _ATTRIBUTE.match(line)
        if match and _balanced(match.group(3)) and (not group or group[0][0] == match.group(1)):
            group.append(match.groups())
            continue
        out += _flush(group)
        group = [match.groups()] if match and _balanced(match.group(3)) else []
        if not group:
            out.append(line)
    out += _flush(group)
    return "\n".join(out) + "\n"


def _flush(group: list[tuple[str, ...]]) -> list[str]:
    width = max((len(name) for _indent, name, _value in group), default=0)
    lines = [f"{indent}{name.ljust(width)} = {value}" for indent, name, value in group]
    group.clear()
    return lines


def _balanced(value: str) -> bool:
    depth, quoted, escaped = 0, False, False
    for char in value:
        if quoted:
            escaped, quoted = (not escaped and char == "\\"), quoted and (escaped or char != '"')
            continue
        if char == '"':
            quoted = True
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
    return depth == 0 and not quoted


@cache
def environment(hcl: bool = True, search: tuple[str, ...] = ()) -> jinja2.Environment:
    """The Jinja2 environment over ``templates/``: StrictUndefined, the filters, and the escaping ``finalize``.

    ``hcl``: plain values become HCL string literals; otherwise anything not :class:`Safe` (or an int) is refused.
    ``search``: directories looked in before ``templates/`` (a target that keeps its templates elsewhere).
    """
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader([*search, str(data_dir("templates"))]),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
        finalize=_finalize_hcl if hcl else _finalize_strict,
    )
    env.filters.update(
        hcl=hcl_value, hcl_string=hcl_string, hcl_fragment=hcl_fragment, ident=hcl_ident, slug=slug, comment=comment
    )
    env.globals["reproducer_version"] = Safe(__version__)
    return env


def render_template(name: str, context: dict[str, Any], *, shared: str = "", search: tuple[str, ...] = ()) -> str:
    """Render one template and normalise it (aligned attributes, single blank lines, final newline).

    ``shared``: the template to use when ``name`` does not exist; ``search``: see :func:`environment`.
    """
    hcl = name.endswith(HCL_TEMPLATES)
    text = environment(hcl, search).select_template([name, *([shared] if shared else [])]).render(**context)
    text = re.sub(r"\n{3,}", "\n\n", text).strip("\n")
    return align(text) if hcl else text + "\n"
