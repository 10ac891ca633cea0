"""Regenerate the golden outputs: `make golden` (or python -m tests.golden.regen). Review the diff."""

from __future__ import annotations

import shutil
from pathlib import Path

from reproducer.model import load_spec
from reproducer.targets import TARGETS, get_target
from reproducer.targets.base import RenderOptions

HERE = Path(__file__).parent
#: scenario → (spec file, render options)
SCENARIOS: dict[str, tuple[str, RenderOptions]] = {
    "essential": ("essential.yaml", RenderOptions()),
    "business": ("business.yaml", RenderOptions()),
    "business-3x1": ("business.yaml", RenderOptions(shards=3, replicas=1)),
}


def rendered(target: str, scenario: str) -> dict[str, str]:
    """The files of one target and scenario."""
    spec_file, options = SCENARIOS[scenario]
    return get_target(target).render(load_spec(HERE / "specs" / spec_file), options).files


def main() -> None:
    """Rewrite tests/golden/<target>/<scenario>/ for every target and scenario."""
    for target in TARGETS:
        for scenario in SCENARIOS:
            directory = HERE / target / scenario
            shutil.rmtree(directory, ignore_errors=True)
            for relative, text in rendered(target, scenario).items():
                path = directory / relative
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text, encoding="utf-8")
            print(f"wrote {directory}")


if __name__ == "__main__":
    main()
