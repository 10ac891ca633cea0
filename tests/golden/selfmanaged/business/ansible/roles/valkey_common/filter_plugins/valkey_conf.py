r"""Jinja filters that write values into valkey.conf, sentinel.conf and ACL files the way Valkey reads them back.

Valkey splits each line of these files with ``sdssplitargs``: a double-quoted argument may hold any byte through
``\"``, ``\\``, ``\n`` and ``\xHH`` escapes, and nothing in it can end the line or start another argument.
Every value a template writes goes through :func:`valkey_arg`; directive names are checked, not quoted. ACL
files are split at single spaces with no quoting at all, so user names and rules are checked to hold no
whitespace or control character (:func:`valkey_acl_user`, :func:`valkey_acl_rules`). A spec value can never add
a directive, a user or an ACL rule.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from ansible.errors import AnsibleFilterError

_DIRECTIVE = re.compile(r"^[a-z][a-z0-9-]{0,63}$")
#: Directives the roles write themselves, or that load code, read files or open debugging commands.
_RESERVED = frozenset(
    {
        "aclfile",
        "bind",
        "cluster-config-file",
        "cluster-enabled",
        "daemonize",
        "dir",
        "enable-debug-command",
        "enable-module-command",
        "enable-protected-configs",
        "include",
        "loadmodule",
        "logfile",
        "masterauth",
        "masteruser",
        "pidfile",
        "port",
        "rename-command",
        "replicaof",
        "requirepass",
        "sentinel",
        "slaveof",
        "tls-ca-cert-file",
        "tls-cert-file",
        "tls-key-file",
        "tls-port",
        "unixsocket",
        "user",
    }
)
_ESCAPES = {ord('"'): '\\"', ord("\\"): "\\\\", ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t"}
_USER = re.compile(r"^[^\s\"'\\\x00-\x1f\x7f]{1,128}$")
_RULE = re.compile(r"^[^\s\x00-\x1f\x7f]{1,1024}$")


def valkey_arg(value: Any) -> str:
    """One argument of a Valkey configuration line, double-quoted (booleans as yes/no, None as empty)."""
    text = ("yes" if value else "no") if isinstance(value, bool) else "" if value is None else str(value)
    escaped = "".join(
        _ESCAPES.get(byte) or (chr(byte) if 0x20 <= byte < 0x7F else f"\\x{byte:02x}") for byte in text.encode()
    )
    return f'"{escaped}"'


def valkey_directive(name: Any) -> str:
    """A configuration directive name from the spec, refused unless it is a plain name the roles do not own."""
    text = str(name)
    if not _DIRECTIVE.match(text) or text in _RESERVED:
        raise AnsibleFilterError(f"refusing valkey.conf directive {text!r}: not a setting a spec may change")
    return text


def valkey_acl_user(name: Any) -> str:
    """An ACL user name, refused when it holds spaces, quotes, backslashes or control characters."""
    text = str(name)
    if not _USER.match(text):
        raise AnsibleFilterError(
            f"refusing ACL user name {text!r}: spaces, quotes and control characters are not allowed"
        )
    return text


def valkey_acl_rules(rules: Any) -> list[str]:
    """ACL rules as separate arguments: a list is taken as is, a string is split at whitespace (legacy form).

    A rule holding whitespace or a control character is refused: Valkey would read it as several rules.
    """
    tokens: Iterable[Any] = rules.split() if isinstance(rules, str) else rules
    checked = [str(token) for token in tokens]
    for token in checked:
        if not _RULE.match(token):
            raise AnsibleFilterError(f"refusing ACL rule {token!r}: whitespace and control characters are not allowed")
    return checked


class FilterModule:
    """The filters above, for the templates and tasks of the Valkey roles."""

    def filters(self) -> dict[str, Any]:
        """Name → filter."""
        return {
            "valkey_arg": valkey_arg,
            "valkey_directive": valkey_directive,
            "valkey_acl_user": valkey_acl_user,
            "valkey_acl_rules": valkey_acl_rules,
        }
