"""The use cases behind the commands, one module per use case (see docs/architecture.md)."""
