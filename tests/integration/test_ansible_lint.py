"""ansible-lint (production profile) is clean on the shipped playbooks and on a rendered selfmanaged output."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from reproducer.resources import data_dir
from tests.golden.regen import rendered

LINT = Path(sys.executable).with_name("ansible-lint")
pytestmark = pytest.mark.skipif(not LINT.exists(), reason="ansible-lint is not installed (pip install -e '.[test]')")


def lint(directory: Path, *playbooks: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT), "--nocolor", "-q", *playbooks],
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_shipped_playbooks_are_lint_clean(tmp_path: Path) -> None:
    copy = tmp_path / "playbooks"
    shutil.copytree(data_dir("playbooks"), copy)
    result = lint(copy, "site.yml", "local.yml", "local-teardown.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_rendered_selfmanaged_ansible_is_lint_clean(tmp_path: Path) -> None:
    for relative, text in rendered("selfmanaged", "business").items():
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    result = lint(tmp_path / "ansible", "site.yml")
    assert result.returncode == 0, result.stdout + result.stderr
