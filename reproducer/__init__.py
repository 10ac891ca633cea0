"""reproducer: leave (or join) a managed Valkey service, routinely and losslessly."""

__version__ = "0.1.0"
