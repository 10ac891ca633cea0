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
from typing import Any

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


def _as_is(servicer: Any) -> Any:
    return servicer


def serve(schema_path: Path, address: str, key: str) -> None:
    """Serve the twin provider ``key`` until Terraform stops it (handshake on stdout, gRPC on a unix socket)."""
    import tf.provider
    import tf.runner

    from reproducer.twins.provider import TwinProvider

    resources, data_sources = twins_of(key)
    servicer = TwinProvider(load(schema_path, address), resources, data_sources)
    # As in reproducer.offline.serve: run_provider must get our servicer unwrapped.
    tf.provider.ProviderServicer = _as_is
    tf.runner.run_provider(servicer, argv=["serve"])


#: Names a network namespace (``ip netns``) the provider enters before serving: its Valkey then lives on a
#: network only a bastion there reaches (tests of ``--via``). Unset: this machine's network.
NETNS_VARIABLE = "REPRODUCER_TWIN_NETNS"
_NETNS = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_CLONE_NEWNET = 0x40000000


def enter_netns(name: str) -> None:
    """Move this (single-threaded, just started) process into the network namespace ``/run/netns/<name>``.

    The plugin's gRPC socket is a unix socket on the file system, which Terraform still reaches from its own
    namespace; every server the twins start, and every connection they make, is inside ``name``.
    """
    if not _NETNS.fullmatch(name):
        raise SystemExit(f"{NETNS_VARIABLE}: invalid namespace name {name[:64]!r}")
    import ctypes
    import os

    fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        if ctypes.CDLL(None, use_errno=True).setns(fd, _CLONE_NEWNET) != 0:
            raise SystemExit(f"{NETNS_VARIABLE}: cannot enter {name}: {os.strerror(ctypes.get_errno())}")
    finally:
        os.close(fd)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    import os

    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 3:
        sys.stderr.write(_USAGE)
        return 2
    if os.environ.get(NETNS_VARIABLE):
        enter_netns(os.environ[NETNS_VARIABLE])
    serve(Path(args[0]), args[1], args[2])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
