"""Install the schema-serving providers as a Terraform filesystem mirror, with a CLI config that uses only it.

Layout (an "unpacked" mirror, which Terraform links into ``.terraform/providers`` at ``init``)::

    <root>/mirror/registry.terraform.io/<namespace>/<type>/<version>/<os>_<arch>/terraform-provider-<type>_v<version>
    <root>/mirror/registry.opentofu.org -> registry.terraform.io   (OpenTofu's default registry host)
    <root>/terraform.tfrc        disable_checkpoint = true; provider_installation { filesystem_mirror { ... } }
    <root>/home/                 HOME of the provider processes (the first one keeps their TLS certificate there:
                                 plugin-tls.json, 0600; reproducer.offline.plugin)

Each executable is a small sh wrapper that runs ``python -m reproducer.offline.serve`` with the
committed schema subset of that provider.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import reproducer
from reproducer.errors import ReproducerError, SandboxError
from reproducer.forkserver import PROVIDER_SERVER_VARIABLE

SCHEMAS_DIR = Path(__file__).resolve().parent / "schemas"
_ARCHES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64", "i686": "386", "i386": "386"}


@dataclass(frozen=True)
class OfflineProvider:
    """A provider whose schema subset ships with reproducer.

    Attributes:
        key: the short name (``aws``, ``google``, ``openstack``, ``ovh``, ``aiven``, ``random``).
        address: the full source address, e.g. ``registry.terraform.io/hashicorp/aws``.
        version: the provider version the schema was taken from.
        schema: the committed schema subset file.
    """

    key: str
    address: str
    version: str
    schema: Path

    @property
    def source(self) -> str:
        """The ``source`` to write in ``required_providers``, e.g. ``hashicorp/aws``."""
        return self.address.split("/", 1)[1]

    @property
    def type(self) -> str:
        """The provider type, e.g. ``aws``."""
        return self.address.rsplit("/", 1)[1]


def available_providers() -> list[str]:
    """The keys of the offline providers: every provider a registered target requires, and ``random``."""
    from reproducer.offline.providers import offline_providers  # the registry (and pydantic) only when asked

    return list(offline_providers())


def offline_provider(key: str) -> OfflineProvider:
    """Describe the offline provider ``key``, checking that its committed schema subset is of that very version.

    Raises:
        SandboxError: no provider has that key, or its schema subset is missing or of another provider or version.
    """
    from reproducer.offline.providers import offline_providers

    try:
        known = offline_providers()
    except ReproducerError as exc:
        raise SandboxError(exc.message, hint=exc.hint) from exc
    if key not in known:
        raise SandboxError(
            f"no offline Terraform provider named {key!r}",
            hint=f"use one of {', '.join(known)}, or give a target the provider (its `providers`) and run "
            "python -m reproducer.offline.subset",
        )
    facts, schema = known[key], SCHEMAS_DIR / f"{key}.json"
    recorded = _recorded(schema)
    if recorded != (facts.address, facts.version):
        raise SandboxError(
            f"the schema subset of the Terraform provider {key!r} ({schema}) is not of {facts.address} "
            f"{facts.version}: found {' '.join(recorded) or 'nothing'}",
            hint=f"run python -m reproducer.offline.subset --from DIR {key} with the full schema of that version",
        )
    return OfflineProvider(key, facts.address, facts.version, schema)


def _recorded(schema: Path) -> tuple[str, ...]:
    """``(address, version)`` a committed subset is of, or ``()`` when it is missing or unreadable."""
    try:
        document = json.loads(schema.read_text(encoding="utf-8"))
        (address,) = document["provider_schemas"]
        return address, document["x_reproducer"]["version"]
    except (OSError, ValueError, KeyError, TypeError):
        return ()


def platform_dir() -> str:
    """Terraform's name for this machine's platform, e.g. ``linux_amd64``."""
    machine = platform.machine().lower()
    return f"{sys.platform.split('-')[0].rstrip('0123456789')}_{_ARCHES.get(machine, machine)}"


#: What a mirror's wrapper runs for a provider: the argv after the Python interpreter.
Launcher = Callable[[OfflineProvider], Sequence[str]]


def offline_launcher(provider: OfflineProvider) -> list[str]:
    """The offline provider's command: ``-m reproducer.offline.serve SCHEMA ADDRESS``."""
    return ["-m", "reproducer.offline.serve", str(provider.schema), provider.address]


def _wrapper(
    provider: OfflineProvider,
    home: Path,
    launcher: Launcher,
    environment: Mapping[str, str],
    prefix: Sequence[str] = (),
) -> str:
    package_parent = Path(reproducer.__file__).resolve().parent.parent
    served = launcher(provider)
    command = [*prefix, sys.executable, *served]
    exports = [f"{name}={shlex.quote(value)}; export {name}" for name, value in sorted(environment.items())]
    return "\n".join(
        [
            "#!/bin/sh",
            f"# reproducer provider: serves the {provider.source} {provider.version} schema subset"
            + ("; no API behind it." if launcher is offline_launcher else " through " + " ".join(served[:2]) + "."),
            f"HOME={shlex.quote(str(home))}; export HOME",
            f"PYTHONPATH={shlex.quote(str(package_parent))}${{PYTHONPATH:+:$PYTHONPATH}}; export PYTHONPATH",
            *exports,
            *_through_fork_server(served, prefix),
            "exec " + shlex.join(command),
            "",
        ]
    )


def _through_fork_server(served: Sequence[str], prefix: Sequence[str]) -> list[str]:
    """Lines that run ``python -m MODULE ARGS`` through the fork server the environment names, when it runs.

    Not for a provider run through a prefix (a network namespace): the server's children run where it does.
    """
    if prefix or len(served) < 2 or served[0] != "-m":
        return []
    client = [sys.executable, "-s", "-S", "-m", "reproducer.forkclient"]
    variable = PROVIDER_SERVER_VARIABLE
    return [
        f'if [ -S "${{{variable}:-}}" ]; then',
        f'  exec {shlex.join(client)} "${variable}" {shlex.join(served[1:])}',
        "fi",
    ]


def _hcl_string(text: str) -> str:
    return json.dumps(text).replace("${", "$${").replace("%{", "%%{")


def cli_config_text(mirror: Path) -> str:
    """A Terraform CLI config that installs providers only from ``mirror`` and never calls home."""
    return (
        "# written by reproducer: providers come only from the local mirror below; no registry, no checkpoint.\n"
        "disable_checkpoint = true\n"
        "provider_installation {\n"
        "  filesystem_mirror {\n"
        f"    path = {_hcl_string(str(mirror))}\n"
        "  }\n"
        "}\n"
    )


def _install_one(
    mirror: Path,
    provider: OfflineProvider,
    home: Path,
    launcher: Launcher,
    environment: Mapping[str, str],
    prefix: Sequence[str] = (),
) -> Path:
    host, namespace, type_ = provider.address.split("/")
    directory = mirror / host / namespace / type_ / provider.version / platform_dir()
    directory.mkdir(parents=True, exist_ok=True)
    executable = directory / f"terraform-provider-{type_}_v{provider.version}"
    executable.write_text(_wrapper(provider, home, launcher, environment, prefix), encoding="utf-8")
    executable.chmod(0o755)
    return executable


def install_mirror(
    root: Path,
    providers: Sequence[str],
    *,
    launcher: Launcher = offline_launcher,
    environment: Mapping[str, str] | None = None,
    prefix: Sequence[str] = (),
) -> Path:
    """Install offline providers into ``root/mirror`` and write a CLI config that uses only that mirror.

    Args:
        root: a writable directory (created if needed) that will hold the mirror, the config and a HOME for
            the provider processes. Installing again over the same root is harmless.
        providers: provider keys, e.g. ``["aws", "random"]``; see :func:`available_providers`.
        launcher: what each wrapper runs with the Python interpreter (default: the offline provider; the
            cloud twins install their own, serving the same schema subsets).
        environment: variables each wrapper exports to its provider process (values are quoted).
        prefix: a command each wrapper runs the interpreter through (e.g. ``ip netns exec NAME``), quoted.

    Returns:
        The CLI config file, to pass to Terraform as ``TF_CLI_CONFIG_FILE``.

    Raises:
        SandboxError: a provider key is unknown or the files cannot be written.
    """
    root = root.resolve()
    mirror, home = root / "mirror", root / "home"
    resolved = [offline_provider(key) for key in providers]
    bad = [name for name in environment or {} if not name.isidentifier() or not name.isascii()]
    if bad:
        raise SandboxError(f"invalid environment variable name {bad[0]!r}", hint="use letters, digits and _")
    try:
        home.mkdir(parents=True, exist_ok=True)
        for provider in resolved:
            _install_one(mirror, provider, home, launcher, environment or {}, prefix)
        opentofu = mirror / "registry.opentofu.org"
        if (mirror / "registry.terraform.io").is_dir() and not os.path.lexists(opentofu):
            opentofu.symlink_to("registry.terraform.io", target_is_directory=True)
        config = root / "terraform.tfrc"
        config.write_text(cli_config_text(mirror), encoding="utf-8")
    except OSError as exc:
        raise SandboxError(
            f"cannot install the offline Terraform providers in {root}: {exc}",
            hint="pass a writable directory",
        ) from exc
    return config
