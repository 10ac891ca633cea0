"""Target providers: one module each, registered here (imported lazily)."""

from __future__ import annotations

from importlib import import_module

from reproducer.errors import InputError
from reproducer.targets.base import Target

#: target name → "module:class"
TARGETS: dict[str, str] = {
    "aiven": "reproducer.targets.aiven:AivenTarget",
    "aws": "reproducer.targets.aws:AwsTarget",
    "gcp": "reproducer.targets.gcp:GcpTarget",
    "local": "reproducer.targets.local:LocalTarget",
    "ovh": "reproducer.targets.ovh:OvhTarget",
    "selfmanaged": "reproducer.targets.selfmanaged:SelfManagedTarget",
}


def get_target(name: str) -> Target:
    """The target called ``name``, or an InputError listing the known ones."""
    if name not in TARGETS:
        raise InputError(f"unknown target {name!r}", hint=f"use one of {', '.join(sorted(TARGETS))}")
    module, _, cls = TARGETS[name].partition(":")
    target: Target = getattr(import_module(module), cls)()
    return target
