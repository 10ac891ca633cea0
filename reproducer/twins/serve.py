"""Entry point of a twin provider: ``python -m reproducer.twins.serve SCHEMA ADDRESS KEY``.

Serves :class:`~reproducer.twins.provider.TwinProvider` over the plugin protocol with the twins of the
module ``reproducer.twins.<KEY>`` (its ``RESOURCES`` and ``DATA_SOURCES`` sequences). A provider key with
no such module is served as the offline provider: schema only, fake values at apply.
"""

# mypy: disable-error-code="import-untyped"
from __future__ import annotations

import importlib
import importlib.util
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from reproducer.offline.schema import load
from reproducer.twins.base import DataSourceTwin, ResourceTwin

_USAGE = "usage: python -m reproducer.twins.serve SCHEMA.json PROVIDER-ADDRESS KEY\n"
_KEY = re.compile(r"[a-z][a-z0-9_]{0,31}")
#: Modules of this package that are machinery, not a cloud's twins.
_MACHINERY = frozenset({"base", "provider", "serve", "mirror", "valkey"})


def twins_of(key: str) -> tuple[Sequence[ResourceTwin], Sequence[DataSourceTwin]]:
    """The resource and data source twins of provider ``key`` (both empty when no module models it)."""
    if not _KEY.fullmatch(key) or key in _MACHINERY:
        return (), ()
    name = f"{__package__}.{key}"
    if importlib.util.find_spec(name) is None:
        return (), ()
    module = importlib.import_module(name)
    return tuple(getattr(module, "RESOURCES", ())), tuple(getattr(module, "DATA_SOURCES", ()))


def serve(schema_path: Path, address: str, key: str) -> None:
    """Serve the twin provider ``key`` until Terraform stops it (handshake on stdout, gRPC on a unix socket)."""
    from reproducer.offline.plugin import serve_provider
    from reproducer.twins.provider import TwinProvider

    serve_provider(TwinProvider(load(schema_path, address), load_twins=lambda: twins_of(key)))


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 3:
        sys.stderr.write(_USAGE)
        return 2
    serve(Path(args[0]), args[1], args[2])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
