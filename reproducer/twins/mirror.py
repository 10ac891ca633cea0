"""Install the cloud twins as a Terraform filesystem mirror: the offline mirror, with wrappers that run twins.

The layout, CLI config and schema subsets are those of :func:`reproducer.offline.install_mirror`; only what
each wrapper runs differs (``python -m reproducer.twins.serve SCHEMA ADDRESS KEY``, with
``REPRODUCER_TWIN_ROOT=<root>/world``). The rendered Terraform files are the same as for the real cloud.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from reproducer.errors import ReproducerError, SandboxError
from reproducer.offline.mirror import OfflineProvider, install_mirror
from reproducer.twins import valkey
from reproducer.twins.base import ROOT_VARIABLE, TwinWorld
from reproducer.twins.serve import NETNS_VARIABLE


def world_of(root: Path) -> TwinWorld:
    """The twin world of an installation root (``<root>/world``)."""
    return TwinWorld(Path(root).resolve() / "world")


def _twin_launcher(provider: OfflineProvider) -> list[str]:
    return ["-m", "reproducer.twins.serve", str(provider.schema), provider.address, provider.key]


def install_twins(root: Path, providers: Sequence[str], *, netns: str | None = None) -> Path:
    """Install the twin providers ``providers`` (keys such as ``aws``) under ``root``; return the CLI config.

    The world (``<root>/world``) and its CA are made now, so :func:`trusted_ca` exists before any apply.
    Pass the returned file to Terraform as ``TF_CLI_CONFIG_FILE``. With ``netns``, the providers run in that
    network namespace, so their Valkey is reachable only from there (through a bastion: ``--via``).

    Raises:
        SandboxError: a provider key is unknown or the files cannot be written.
    """
    world = world_of(root)
    environment = {ROOT_VARIABLE: str(world.root)} | ({NETNS_VARIABLE: netns} if netns else {})
    config = install_mirror(root, providers, launcher=_twin_launcher, environment=environment)
    try:
        valkey.world_ca(world)
    except (OSError, ReproducerError) as exc:
        raise SandboxError(
            f"cannot make the twins' CA in {world.root}: {exc}",
            hint="pass a writable directory",
        ) from exc
    return config


def trusted_ca(root: Path) -> Path:
    """The world CA's certificate (PEM): the CA to give the copy for a twin target that runs TLS."""
    return valkey.world_ca(world_of(root)).cert


def running_processes(root: Path) -> list[int]:
    """Pids of the twins' Valkey processes still running (empty after every resource was destroyed)."""
    return valkey.running_pids(world_of(root))


def stop_all(root: Path) -> None:
    """Stop every Valkey process of the twins under ``root`` (test and sandbox teardown)."""
    valkey.stop_all(world_of(root))
