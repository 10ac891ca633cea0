"""Hatchling build hook: compiles ``reproducer/data/_speedups.c``, the copy's per-key hot paths in C.

A wheel gets the compiled module and its platform's tag; an editable install gets it beside the source. Without a
C compiler or Python's headers the build goes on pure Python, with a warning: the copy then runs their Python
twins (same results, about four times the copier's CPU a key; see docs/reference/performance.md).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sysconfig
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

SOURCE = "reproducer/data/_speedups.c"
MODULE = "reproducer/data/_speedups"


class RdbScanHook(BuildHookInterface):  # type: ignore[type-arg]
    """Compile the C extension into the wheel (or in place, for an editable install)."""

    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        """Compile; on failure warn and leave the build pure Python."""
        if self.target_name != "wheel":
            return
        suffix = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
        if version == "editable":
            self._compile(Path(self.root, MODULE + suffix))
            return
        self._scratch = tempfile.mkdtemp(prefix="speedups-")
        built = Path(self._scratch, "_speedups" + suffix)
        if self._compile(built):
            build_data["pure_python"] = False
            build_data["infer_tag"] = True
            build_data["force_include"][str(built)] = MODULE + suffix

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        """Remove the scratch directory of a wheel's build."""
        scratch = getattr(self, "_scratch", None)
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)

    def _compile(self, output: Path) -> bool:
        compiler = shlex.split(os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc")
        include = sysconfig.get_paths()["include"]
        argv = [*compiler, "-O2", "-shared", "-fPIC", f"-I{include}", str(Path(self.root, SOURCE)), "-o", str(output)]
        try:
            result = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=300)
        except (OSError, subprocess.TimeoutExpired) as exc:
            self.app.display_warning(f"reproducer: no C compiler ({exc}); the copy's hot paths stay pure Python")
            return False
        if result.returncode != 0:
            self.app.display_warning(
                "reproducer: compiling the copy's hot paths in C failed; they stay pure Python\n"
                + result.stderr[-2000:]
            )
            return False
        return True
