"""Cloud twins: local Terraform providers whose apply stands up real Valkey shaped like the cloud's resource.

A twin serves the committed schema subset of a real provider (``reproducer/offline/schemas``) over the real
plugin protocol, like the offline providers, but its managed-Valkey resources are backed by real
``valkey-server`` processes (a :class:`reproducer.sandbox.fleet.Fleet`), its computed attributes are filled the
way the real provider fills them, and it rejects what the cloud rejects (``docs/twins.md`` lists each rule
with its source). Resource types a twin does not model behave as in the offline provider.

Only the sandbox's Terraform CLI configuration selects the twins: the rendered files stay byte-identical to
those sent to the real cloud. Twins are test infrastructure, not a promise about the clouds.
"""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from reproducer.twins.mirror import install_twins, running_processes, stop_all, trusted_ca

__all__ = ["install_twins", "running_processes", "stop_all", "trusted_ca"]


def __getattr__(name: str) -> object:
    """The names of :mod:`reproducer.twins.mirror`, imported on first use.

    A twin provider process (Terraform starts one or two per command) imports this package; most of them only
    answer the schema, and never need the fleets, valkey-py or the TLS machinery the mirror pulls in.
    """
    if name in __all__:
        from reproducer.twins import mirror

        return getattr(mirror, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
