"""Modules loaded on first use: what a process never touches, it never pays for at start-up."""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType


def lazy_module(name: str) -> ModuleType:
    """Module ``name``, loaded on its first attribute access (already imported: that module).

    Each ``reproducer`` command and each provider process Terraform starts would otherwise import what only some
    of them use (a pipeline, the X.509 library).
    """
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    assert spec is not None and spec.loader is not None, name
    spec.loader = importlib.util.LazyLoader(spec.loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
