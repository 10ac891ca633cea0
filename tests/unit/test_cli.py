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
