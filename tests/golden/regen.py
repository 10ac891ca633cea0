"""Regenerate the golden outputs: `make golden` (or python -m tests.golden.regen). Review the diff.

Every registered target gets ``<target>/<scenario>/`` for every scenario: the registry is the only list.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path

from reproducer.model import load_spec
from reproducer.targets import get_target, target_names
from reproducer.targets.base import RenderOptions

#: The golden specs are in HERE/specs.
HERE = Path(__file__).parent
#: Where the golden outputs are; the add-a-target test points it at a scratch directory for its test-only target.
GOLDEN = HERE
#: scenario → (spec file, render options)
SCENARIOS: dict[str, tuple[str, RenderOptions]] = {
    "essential": ("essential.yaml", RenderOptions()),
    "business": ("business.yaml", RenderOptions()),
    "business-3x1": ("business.yaml", RenderOptions(shards=3, replicas=1)),
}


def golden_dir(target: str, scenario: str) -> Path:
    """The committed output of one target and scenario."""
    return GOLDEN / target / scenario


def rendered(target: str, scenario: str) -> dict[str, str]:
    """The files of one target and scenario."""
    spec_file, options = SCENARIOS[scenario]
    return get_target(target).render(load_spec(HERE / "specs" / spec_file), options).files


def write(targets: Iterable[str]) -> list[Path]:
    """Rewrite the golden directories of ``targets`` for every scenario; returns them."""
    written = []
    for target in targets:
        for scenario in SCENARIOS:
            directory = golden_dir(target, scenario)
            shutil.rmtree(directory, ignore_errors=True)
            for relative, text in rendered(target, scenario).items():
                path = directory / relative
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text, encoding="utf-8")
            written.append(directory)
    return written


def main() -> None:
    """Rewrite tests/golden/<target>/<scenario>/ for every registered target and scenario."""
    for directory in write(target_names()):
        print(f"wrote {directory}")


if __name__ == "__main__":
    main()
