r"""The one Jinja2 environment for every target, the HCL filters, and a ``terraform fmt`` aligner.

HCL strings are not JSON strings: only ``\\n \\r \\t \\" \\\\`` and ``\\uNNNN`` escapes exist, and ``${`` and
``%{`` start template sequences, so they are doubled. Every data value reaches a template through a filter.
"""

from __future__ import annotations

import json
import re
from functools import cache
from typing import Any

import jinja2

from reproducer import __version__
from reproducer.resources import data_dir

_IDENT = re.compile(r"[^a-z0-9_]+")
_ATTRIBUTE = re.compile(r'^(\s*)([A-Za-z_][A-Za-z0-9_-]*|"[^"]*")\s*=\s*(.*)$')


def hcl_string(value: object) -> str:
    """A double-quoted HCL string literal."""
    text = str(value)
    text = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    text = text.replace("\t", "\\t").replace("${", "$${").replace("%{", "%%{")
    text = "".join(c if c.isprintable() or c in "\\" else f"\\u{ord(c):04x}" for c in text)
    return f'"{text}"'


def hcl_fragment(value: object) -> str:
    """The inside of an HCL string literal (escaped, without the quotes), to join with interpolations."""
    return hcl_string(value)[1:-1]


def hcl_value(value: Any) -> str:
    """An HCL literal for a string, number, bool, None, list or map (maps inline: use loops for long ones)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(hcl_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{hcl_string(k)} = {hcl_value(v)}" for k, v in value.items()) + " }"
    return hcl_string(value)


def hcl_ident(value: object) -> str:
    """A stable Terraform identifier from any name (``cache-prod`` → ``cache_prod``)."""
    ident = _IDENT.sub("_", str(value).lower()).strip("_") or "unnamed"
    return f"r_{ident}" if ident[0].isdigit() else ident


def slug(value: object, *, max_length: int = 40) -> str:
    """A resource name that providers accept: lowercase letters, digits and dashes."""
    text = re.sub(r"[^a-z0-9-]+", "-", str(value).lower()).strip("-") or "valkey"
    text = text if text[0].isalpha() else f"v-{text}"
    return text[:max_length].rstrip("-")


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
def environment() -> jinja2.Environment:
    """The Jinja2 environment over ``templates/`` with StrictUndefined and the HCL filters."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(data_dir("templates"))),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    env.filters.update(hcl=hcl_value, hcl_string=hcl_string, hcl_fragment=hcl_fragment, ident=hcl_ident, slug=slug)
    env.globals["reproducer_version"] = __version__
    return env


def render_template(name: str, context: dict[str, Any]) -> str:
    """Render one template and normalise it (aligned attributes, single blank lines, final newline)."""
    text = environment().get_template(name).render(**context)
    text = re.sub(r"\n{3,}", "\n\n", text).strip("\n")
    return align(text) if name.endswith((".tf.j2", ".tfvars.example.j2")) else text + "\n"
