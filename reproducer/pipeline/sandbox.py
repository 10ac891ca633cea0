"""The sandbox use cases: start, find and stop the OVH API emulator and its Valkey services."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reproducer.pipeline.progress import Progress, quiet


def sandbox_root(root: Path | None) -> Path:
    """The sandbox directory: the given one, else the default state directory."""
    from reproducer.sandbox import control  # the emulator loads only for the commands that use it

    return Path(root) if root else control.default_root()


def sandbox_up(root: Path | None = None, progress: Progress = quiet, *, keys: int = 2000) -> dict[str, Any]:
    """Start (or find) the sandbox and return its endpoint, credentials, project, services and cloud twins.

    A new sandbox's service is loaded with ``keys`` mixed keys; a running one is returned as it is. The cloud
    twins are installed beside it: ``info["twins"]`` names the Terraform CLI configuration that selects them
    (``terraform_cli_config``) and the CA their TLS servers use (``ca_file``).
    """
    from reproducer.sandbox import control

    running = control.status(sandbox_root(root))
    if running is not None:
        progress(f"using the sandbox already running at {running['endpoint']}")
        return running | {"twins": sandbox_twins(root)}
    progress(
        f"starting the sandbox: OVH API emulator and a Business Valkey service (primary, replica, Sentinel) "
        f"holding {keys:,} keys"
    )
    return control.up(sandbox_root(root), dataset_keys=keys) | {"twins": sandbox_twins(root)}


def sandbox_twins(root: Path | None = None) -> dict[str, str]:
    """Install (idempotent) the cloud twins of every Terraform provider the targets use, under ``ROOT/twins``."""
    from reproducer.offline import available_providers
    from reproducer.twins import install_twins, trusted_ca

    twins = sandbox_root(root) / "twins"
    config = install_twins(twins, available_providers())
    return {"terraform_cli_config": str(config), "ca_file": str(trusted_ca(twins))}


def sandbox_status(root: Path | None = None) -> dict[str, Any] | None:
    """The running sandbox's info (its twins included, as ``sandbox_up`` gives them), or None."""
    from reproducer.sandbox import control

    running = control.status(sandbox_root(root))
    return None if running is None else running | {"twins": sandbox_twins(root)}


def sandbox_down(root: Path | None = None) -> bool:
    """Stop the sandbox and any Valkey its cloud twins still run; False when the sandbox was not running."""
    from reproducer.sandbox import control
    from reproducer.twins import stop_all

    if (sandbox_root(root) / "twins").is_dir():
        stop_all(sandbox_root(root) / "twins")
    return control.down(sandbox_root(root))


def credentials_of(info: dict[str, Any]) -> dict[str, str]:
    """The ``ovh`` client credentials of a sandbox info mapping."""
    return {k: info[k] for k in ("application_key", "application_secret", "consumer_key")}
