"""Terraform's exit-code convention: under ``--detailed-exitcode`` (plan) and for ``drift``, 2 means only "changes".

Usage errors (click's) and input errors (a missing or malformed spec) exit 1 there, as ``terraform plan
-detailed-exitcode`` does; without the flag they keep their usual codes (2: bad input or usage). Each case runs the
real entry point, ``reproducer.cli.main``, and reads the exit status it ends with.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from reproducer.cli import detailed_exitcode, main
from tests.support import cli as support_cli

GOLDEN_SPEC = Path(__file__).resolve().parents[1] / "golden" / "specs" / "business.yaml"


def exit_code(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    with pytest.raises(SystemExit) as ended:
        main(args)
    return int(ended.value.code or 0), capsys.readouterr().err


@pytest.fixture
def bad_spec(tmp_path: Path) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text("schema_version: 1\nsource: [not, a, mapping]\n")
    return path


def plan_args(tmp_path: Path, spec: Path, *extra: str) -> list[str]:
    return ["plan", "--target", "aws", "--spec", str(spec), "--out", str(tmp_path / "out"), *extra]


@pytest.mark.parametrize("where", ["before", "after"])
def test_plan_usage_error_exits_1_with_detailed_exitcode_2_without(tmp_path, capsys, where):
    bad = ["--format", "jsn"]
    flag = ["--detailed-exitcode"]
    args = plan_args(tmp_path, GOLDEN_SPEC, *(flag + bad if where == "before" else bad + flag))
    code, err = exit_code(args, capsys)
    assert code == 1 and "'jsn' is not one of 'markdown', 'json'" in err
    code, _ = exit_code(plan_args(tmp_path, GOLDEN_SPEC, *bad), capsys)
    assert code == 2


def test_plan_unknown_option_and_missing_spec_exit_1_with_detailed_exitcode(tmp_path, capsys):
    code, err = exit_code(plan_args(tmp_path, GOLDEN_SPEC, "--detailed-exitcode", "--no-such-option"), capsys)
    assert code == 1 and "No such option '--no-such-option'" in err
    missing = tmp_path / "nope.yaml"
    code, err = exit_code(plan_args(tmp_path, missing, "--detailed-exitcode"), capsys)
    assert code == 1 and "nope.yaml" in err
    code, _ = exit_code(plan_args(tmp_path, missing), capsys)
    assert code == 2


def test_plan_malformed_spec_exits_1_with_detailed_exitcode_2_without(tmp_path, capsys, bad_spec):
    code, err = exit_code(plan_args(tmp_path, bad_spec, "--detailed-exitcode"), capsys)
    assert code == 1 and "error:" in err and "source" in err and "Traceback" not in err
    code, _ = exit_code(plan_args(tmp_path, bad_spec), capsys)
    assert code == 2


def test_drift_missing_or_malformed_spec_and_usage_errors_exit_1(tmp_path, capsys, bad_spec):
    code, err = exit_code(["drift", "--spec", str(tmp_path / "nope.yaml")], capsys)
    assert code == 1 and "nope.yaml" in err
    code, err = exit_code(["drift", "--spec", str(bad_spec)], capsys)
    assert code == 1 and "source" in err
    code, err = exit_code(["drift", "--spec", str(bad_spec), "--no-such-option"], capsys)
    assert code == 1 and "No such option '--no-such-option'" in err
    code, err = exit_code(["drift"], capsys)
    assert code == 1 and "Missing option '--spec'" in err


def test_other_commands_keep_exit_2_for_usage_and_input_errors(tmp_path, capsys, bad_spec):
    out = str(tmp_path / "out")
    assert exit_code(["render", "--target", "aws", "--spec", str(bad_spec), "--out", out], capsys)[0] == 2
    assert exit_code(["render", "--target", "nowhere", "--spec", str(bad_spec), "--out", out], capsys)[0] == 2
    assert not (tmp_path / "out").exists()


def test_the_flag_is_read_from_the_raw_arguments():
    assert detailed_exitcode(["plan", "--detailed-exitcode", "--format", "jsn"])
    assert detailed_exitcode(["plan", "--format", "jsn", "--detailed-exitcode"])
    assert detailed_exitcode(["plann", "--detailed-exitcode"])  # even a mistyped command: Terraform exits 1 too
    assert detailed_exitcode(["drift", "--spec", "x"]) and detailed_exitcode(["drift"])
    assert not detailed_exitcode(["plan", "--spec", "x"])
    assert not detailed_exitcode(["plan", "--", "--detailed-exitcode"])  # after --: an argument, not the flag
    assert not detailed_exitcode(["render", "--spec", "drift"])  # drift as a value is not the drift command
    assert not detailed_exitcode([])


def test_a_real_process_exits_1_on_a_usage_error_under_detailed_exitcode(tmp_path):
    result = support_cli.run(*plan_args(tmp_path, GOLDEN_SPEC, "--detailed-exitcode", "--format", "jsn"))
    assert result.returncode == 1 and "Invalid value for '--format'" in result.stderr
    assert result.stdout == ""
