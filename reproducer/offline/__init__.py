"""Local Terraform providers that serve real provider schemas, so Terraform runs fully offline (``plan``, tests).

The providers are those the registered targets declare (:mod:`reproducer.offline.providers`).

Each provider speaks the real plugin protocol (tfplugin6 over go-plugin gRPC) and answers from a committed
schema subset (``schemas/<key>.json``): Terraform checks configurations against the real argument names,
types and block structure, and ``plan``/``apply``/``destroy`` run with deterministic fake computed values.

- :func:`install_mirror` puts them in a filesystem mirror and returns a mirror-only CLI config.
- ``python -m reproducer.offline.serve`` is the plugin process Terraform starts.
- ``python -m reproducer.offline.subset --from DIR`` regenerates the subsets.

See ``docs/terraform-offline.md``.
"""

from reproducer.offline.mirror import (
    OfflineProvider,
    available_providers,
    cli_config_text,
    install_mirror,
    offline_provider,
)

__all__ = ["OfflineProvider", "available_providers", "cli_config_text", "install_mirror", "offline_provider"]
