"""Entry point Terraform starts as a provider plugin: ``python -m reproducer.offline.serve SCHEMA [ADDRESS]``.

``SCHEMA`` is a ``terraform providers schema -json`` file; ``ADDRESS`` picks the provider in it (needed only
when it describes several). The go-plugin handshake, TLS and gRPC server come from
:func:`reproducer.offline.plugin.serve_provider` (``tf.runner``'s, without its costly imports, when the mirror
holds its certificate); the ``Provider`` service is :class:`~reproducer.offline.server.SchemaProvider`.
"""

# mypy: disable-error-code="import-untyped"
from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from reproducer.offline.schema import load

_USAGE = "usage: python -m reproducer.offline.serve SCHEMA.json [PROVIDER-ADDRESS]\n"


def serve(schema_path: Path, address: str | None = None) -> None:
    """Serve the provider described by ``schema_path`` until Terraform stops it.

    Terraform starts this with the go-plugin environment (magic cookie, client certificate); it prints the
    handshake line on stdout and answers on a unix socket.
    """
    from reproducer.offline.plugin import serve_provider
    from reproducer.offline.server import SchemaProvider

    serve_provider(SchemaProvider(load(schema_path, address)))


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not 1 <= len(args) <= 2:
        sys.stderr.write(_USAGE)
        return 2
    serve(Path(args[0]), args[1] if len(args) == 2 else None)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
