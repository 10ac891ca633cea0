"""Valkey → Valkey and Valkey ↔ files. Knows nothing of OVH, specs or targets."""
