"""The providers reproducer serves offline: those the registered targets require, and the few tests use alone.

A target's providers are its own facts (``providers`` in its module, see ``reproducer.targets``); this table
only adds the ones no target renders for.
"""

from __future__ import annotations

from reproducer.targets import terraform_providers
from reproducer.targets.base import TerraformProvider

#: Providers no target requires, served for tests and examples (``random_password`` in a hand-written module).
UNTIED: dict[str, TerraformProvider] = {
    "random": TerraformProvider("registry.terraform.io/hashicorp/random", "3.9.1", resources=("random_password",)),
}


def offline_providers() -> dict[str, TerraformProvider]:
    """Every provider with a committed schema subset, by key: the targets' (read now) and :data:`UNTIED`."""
    return dict(sorted((UNTIED | terraform_providers()).items()))
