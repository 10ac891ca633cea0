"""Target providers: one module each, registered here (imported lazily).

This table is the one place a target is named. The CLI's choices and help, ``plan``, the schema subsets,
``make golden`` and the parametrised tests all read it (see "Adding a target" in docs/architecture.md).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from importlib import import_module
from typing import TYPE_CHECKING, Literal

from reproducer.errors import InputError

if TYPE_CHECKING:  # the spec model under base.py is heavy: commands that name no target (copy) never load it
    from reproducer.targets.base import Target, TerraformProvider

#: How reproducer stands a target up: ``local`` processes on this machine, ``hosts`` over SSH with Ansible,
#: ``terraform`` a managed cloud service through its provider, or ``None`` when it only renders.
Applier = Literal["local", "hosts", "terraform"]


@dataclass(frozen=True)
class TargetEntry:
    """One registered target.

    Attributes:
        name: what ``--target`` takes.
        implementation: ``"module:Class"`` of its :class:`~reproducer.targets.base.Target`.
        applier: how ``apply``/``migrate`` stand it up, or ``None`` for render-only targets.
        cloud_passwords: which users' passwords the cloud, not the user, makes.
        single_user: the cloud has one user, ``default`` (the others are manual rows): only its password is asked.
    """

    name: str
    implementation: str
    applier: Applier | None = None
    #: Whose passwords the cloud makes and gives back in the sensitive ``user_passwords`` output: ``"all"``
    #: (OVH), ``"default"`` (Aiven's built-in user), or ``"none"`` (the user gives them all, from
    #: ``REPRODUCER_PASSWORD_<USER>``).
    cloud_passwords: Literal["none", "default", "all"] = "none"
    single_user: bool = False


TARGETS: dict[str, TargetEntry] = {
    entry.name: entry
    for entry in (
        TargetEntry("aiven", "reproducer.targets.aiven:AivenTarget", applier="terraform", cloud_passwords="default"),
        TargetEntry("aws", "reproducer.targets.aws:AwsTarget", applier="terraform"),
        TargetEntry("azure", "reproducer.targets.azure:AzureTarget", applier="terraform", cloud_passwords="all"),
        TargetEntry(
            "digitalocean",
            "reproducer.targets.digitalocean:DigitalOceanTarget",
            applier="terraform",
            cloud_passwords="all",
        ),
        TargetEntry("gcp", "reproducer.targets.gcp:GcpTarget", applier="terraform"),
        TargetEntry("local", "reproducer.targets.local:LocalTarget", applier="local"),
        TargetEntry("ovh", "reproducer.targets.ovh:OvhTarget", applier="terraform", cloud_passwords="all"),
        TargetEntry("scaleway", "reproducer.targets.scaleway:ScalewayTarget", applier="terraform", single_user=True),
        TargetEntry("selfmanaged", "reproducer.targets.selfmanaged:SelfManagedTarget", applier="hosts"),
    )
}


def target_names(*, applicable: bool = False) -> tuple[str, ...]:
    """Registered target names, sorted; with ``applicable`` only those reproducer can stand up itself."""
    return tuple(sorted(name for name, entry in TARGETS.items() if entry.applier or not applicable))


def target_entry(name: str) -> TargetEntry:
    """The registry entry called ``name``, or an InputError listing the known ones."""
    if name not in TARGETS:
        raise InputError(f"unknown target {name!r}", hint=f"use one of {', '.join(target_names())}")
    return TARGETS[name]


def get_target(name: str) -> Target:
    """The target called ``name``, or an InputError listing the known ones."""
    module, _, cls = target_entry(name).implementation.partition(":")
    target: Target = getattr(import_module(module), cls)()
    return target


def terraform_providers() -> dict[str, TerraformProvider]:
    """Every Terraform provider a registered target requires, by key (the types of targets sharing one joined).

    Raises:
        InputError: two targets describe one provider differently (one provider, one address and version).
    """
    found: dict[str, TerraformProvider] = {}
    for name in target_names():
        for provider in get_target(name).providers:
            other = found.setdefault(provider.key, provider)
            if (other.address, other.version) != (provider.address, provider.version):
                raise InputError(
                    f"targets describe the Terraform provider {provider.key!r} twice, differently: "
                    f"{other.address} {other.version} and {provider.address} {provider.version}",
                    hint="give every target that uses it the same TerraformProvider (one address, one version)",
                )
            found[provider.key] = replace(
                other,
                resources=_joined(other.resources, provider.resources),
                data_sources=_joined(other.data_sources, provider.data_sources),
            )
    return found


def _joined(first: tuple[str, ...], second: tuple[str, ...]) -> tuple[str, ...]:
    from reproducer.targets.base import ALL_TYPES

    return ALL_TYPES if ALL_TYPES in (first, second) else tuple(dict.fromkeys((*first, *second)))
