"""The bad-input corpus: every case in tests/bad_inputs/ fails with its message and exit code, and leaves
no output behind."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

CORPUS = Path(__file__).parents[1] / "bad_inputs"
SPEC = Path(__file__).parents[1] / "golden" / "specs" / "business.yaml"
CASES = sorted(CORPUS.glob("*.yaml"))
META = [
    {k: v for k, v in yaml.safe_load(c.read_text()).items() if k in ("description", "exit_code", "message")}
    for c in CASES
]


@pytest.mark.bad_input
@pytest.mark.parametrize(("case", "meta"), list(zip(CASES, META, strict=True)), ids=[c.stem for c in CASES])
def test_bad_input_gives_a_clear_error(case, meta, tmp_path):
    spec = yaml.safe_load(case.read_text())
    data = yaml.safe_load(SPEC.read_text()) | spec.get("spec_change", {})
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    for relative, text in spec.get("files", {}).items():
        path = tmp_path / relative
        if path.parent.is_file():
            path.parent.unlink()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    argv = [arg.replace("{dir}", str(tmp_path)) for arg in spec["command"]]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OVH_", "REPRODUCER_TEST_"))} | spec.get("env", {})
    result = subprocess.run(
        [sys.executable, "-m", "reproducer.cli", *argv],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    output = " ".join((result.stdout + result.stderr).split())
    assert result.returncode == spec["exit_code"], output
    assert spec["message"] in output
    assert "Traceback" not in output
    assert "hint:" in result.stderr or "Usage:" in result.stderr
    if "secret" in spec:
        assert spec["secret"] not in output
    assert not (tmp_path / "out").exists() and not (tmp_path / "run").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
