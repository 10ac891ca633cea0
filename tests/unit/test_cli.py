"""Every command is documented and answers --help; bad usage exits 2."""

import pytest
from click.testing import CliRunner

from reproducer.cli import cli, ovh_conf


def _commands(group, prefix=()):
    for name, command in sorted(group.commands.items()):
        yield [*prefix, name]
        if hasattr(command, "commands"):
            yield from _commands(command, (*prefix, name))


COMMANDS = list(_commands(cli))


def test_the_command_list_is_complete():
    names = {" ".join(c) for c in COMMANDS}
    assert {
        "inspect",
        "render",
        "plan",
        "drift",
        "copy",
        "verify",
        "export",
        "import",
        "migrate",
        "apply",
        "destroy",
        "demo",
        "sandbox up",
    } <= names


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_has_help(command):
    result = CliRunner().invoke(cli, [*command, "--help"])
    assert result.exit_code == 0
    assert "Usage:" in result.output and len(result.output.splitlines()) > 3


def test_inspect_without_project_is_a_usage_error():
    result = CliRunner().invoke(cli, ["inspect"])
    assert result.exit_code == 2
    assert "--project" in result.output


def test_ovh_conf_names_the_endpoint_section():
    text = ovh_conf(
        {"endpoint": "http://127.0.0.1:1/1.0", "application_key": "a", "application_secret": "s", "consumer_key": "c"}
    )
    assert "[default]\nendpoint=http://127.0.0.1:1/1.0" in text
    assert "[http://127.0.0.1:1/1.0]\napplication_key=a\napplication_secret=s\nconsumer_key=c" in text


def test_resuming_a_finished_migration_whose_verification_failed_still_exits_3(tmp_path, monkeypatch):
    """A finished job is not re-run (no apply, no copy) and its failed verification is not forgotten."""
    import json

    from reproducer.errors import VerifyMismatchError
    from reproducer.pipeline.job import PHASES

    settings = dict.fromkeys(("target", "shards", "replicas", "name", "region", "base_port"))
    state = {
        "format_version": "1.0",
        "phases": {phase: {"finished": "2026-11-26T00:00:00Z", "seconds": 1.0} for phase in PHASES},
        "settings": {**settings, "target": "local", "base_port": 7100},
        "verify": {"ok": False, "missing": 2},
    }
    (tmp_path / "job.json").write_text(json.dumps(state))
    (tmp_path / "report.json").write_text(json.dumps({"verify": state["verify"], "target": {}}))
    monkeypatch.setenv("REPRODUCER_PASSWORD_DEFAULT", "not-used-here")
    args = ["migrate", "--project", "p" * 32, "--service", "s", "--target", "local"]
    result = CliRunner().invoke(cli, [*args, "--resume", "--run-dir", str(tmp_path)])
    assert isinstance(result.exception, VerifyMismatchError) and result.exception.exit_code == 3, result.output
    assert "source and target differ" in str(result.exception)
    assert "apply: finished by an earlier attempt, skipped" in result.output
