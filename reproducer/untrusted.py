"""Emitters for values that came from outside (specs, flags, API answers) and go to a tool that templates.

Ansible templates every string it reads from a vars file or ``--extra-vars`` unless the string carries the
``!unsafe`` tag. :func:`ansible_yaml` is the one way data reaches Ansible: every string (keys included) is
tagged, so ``{{ lookup('pipe', …) }}`` in a spec stays text. Nothing here evaluates anything.
"""

from __future__ import annotations

from typing import Any

import yaml


class _UnsafeDumper(yaml.SafeDumper):
    """A SafeDumper that writes every string scalar as ``!unsafe 'text'``."""


def _unsafe_string(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("!unsafe", value, style="'")


_UnsafeDumper.add_representer(str, _unsafe_string)


def ansible_yaml(data: Any) -> str:
    """YAML for Ansible with every string tagged ``!unsafe`` (never templated), keys sorted."""
    return yaml.dump(data, Dumper=_UnsafeDumper, sort_keys=True, allow_unicode=True, width=1000)


class _UnsafeLoader(yaml.SafeLoader):
    """Reads back what :func:`ansible_yaml` wrote (``!unsafe`` strings become plain strings)."""


_UnsafeLoader.add_constructor("!unsafe", lambda loader, node: loader.construct_scalar(node))  # type: ignore[arg-type]


def load_ansible_yaml(text: str) -> Any:
    """Parse YAML written by :func:`ansible_yaml` (for tests, plan comparisons and drift)."""
    return yaml.load(text, Loader=_UnsafeLoader)
