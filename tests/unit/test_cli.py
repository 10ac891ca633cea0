"""Every command is documented and answers --help; bad usage exits 2; no error shows a traceback or a secret."""

import errno
import os

import pytest
from click.testing import CliRunner

from reproducer import cli as cli_module
from reproducer.cli import cli, ovh_conf
from reproducer.errors import ReproducerError, redact
from reproducer.pipeline import data as pipeline_data
from reproducer.pipeline import render as pipeline_render


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


# ---- bad flags, the last-resort handler, redaction ------------------------------------------------


SPEC = "tests/golden/specs/business.yaml"


@pytest.mark.parametrize(
    "argv",
    [
        ["apply", "--target", "local", "--spec", SPEC, "--out", "x", "--base-port", "0"],
        ["apply", "--target", "local", "--spec", SPEC, "--out", "x", "--base-port", "99999"],
        ["copy", "valkey://127.0.0.1:1", "valkey://127.0.0.1:2", "--max-keys-per-second", "nan"],
        ["copy", "valkey://127.0.0.1:1", "valkey://127.0.0.1:2", "--max-mb-per-second", "-5"],
        ["copy", "valkey://127.0.0.1:1", "valkey://127.0.0.1:2", "--follow", "--follow-seconds", "inf"],
        ["verify", "valkey://127.0.0.1:1", "valkey://127.0.0.1:2", "--db", "-1"],
        ["verify", "valkey://127.0.0.1:1", "valkey://127.0.0.1:2", "--ttl-tolerance-ms", "-1"],
        ["verify", "valkey://127.0.0.1:1", "valkey://127.0.0.1:2", "--sample", "nan"],
        ["copy", "valkey://127.0.0.1:1", "valkey://127.0.0.1:2", "--max-batch-mb", "0"],
        ["verify", "valkey://127.0.0.1:1", "valkey://127.0.0.1:2", "--max-batch-mb", "-1"],
        ["plan", "--target", "aws", "--spec", SPEC, "--out", "x", "--format", "jsno"],
        ["export", "valkey://127.0.0.1:1", "x.jsonl", "--format", "jsnol"],
    ],
    ids=lambda argv: " ".join(argv[:1] + argv[-2:]),
)
def test_out_of_range_numbers_and_format_typos_are_usage_errors(argv, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tests/golden/specs").mkdir(parents=True)
    with pytest.raises(SystemExit) as exit_:
        cli_module.main(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2, err
    assert "Error: Invalid value" in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tests"], "nothing was written"


class _Stop(Exception):
    """Raised by a spy once it has seen the options a command built."""


@pytest.mark.parametrize(("flags", "mib"), [([], 64), (["--max-batch-mb", "3"], 3)])
def test_max_batch_mb_bounds_the_bytes_of_a_copy_and_a_verify_batch(monkeypatch, capsys, tmp_path, flags, mib):
    seen = {}

    def spy(name):
        def record(*args, **_kwargs):
            seen[name] = next(a for a in args if hasattr(a, "max_batch_bytes"))
            raise _Stop

        return record

    monkeypatch.setattr(pipeline_data, "copy_data", spy("copy"))
    monkeypatch.setattr(pipeline_data, "verify_data", spy("verify"))
    urls = ["valkey://127.0.0.1:1", "valkey://127.0.0.1:2"]
    for command in (["copy", *urls, "--run-dir", str(tmp_path / "run")], ["verify", *urls]):
        with pytest.raises((SystemExit, _Stop)):
            cli_module.main([*command, *flags])
    assert {name: options.max_batch_bytes for name, options in seen.items()} == {
        "copy": mib * 1024 * 1024,
        "verify": mib * 1024 * 1024,
    }


def _failing_render(exc: BaseException):
    def render(_request):
        raise exc

    return render


def test_an_unexpected_exception_is_an_internal_error_line_without_secrets(monkeypatch, capsys):
    leak = "cannot reach valkey://admin:hunter2@10.0.0.5:6379/0?password=hunter2 (user%3Ahunter2@db)"
    monkeypatch.setattr(pipeline_render, "render", _failing_render(RuntimeError(leak)))
    with pytest.raises(SystemExit) as exit_:
        cli_module.main(["render", "--target", "aws", "--spec", SPEC, "--out", "/nonexistent/out"])
    err = capsys.readouterr().err
    assert exit_.value.code == 1
    assert "error: internal error: RuntimeError: cannot reach valkey://***@10.0.0.5:6379/0?password=***" in err
    assert "hint: this is a bug; please report it with the run directory" in err
    assert "hunter2" not in err and "admin" not in err and "Traceback" not in err


def test_reproducer_debug_re_raises_the_unexpected_exception(monkeypatch):
    monkeypatch.setattr(pipeline_render, "render", _failing_render(ZeroDivisionError("boom")))
    monkeypatch.setenv("REPRODUCER_DEBUG", "1")
    with pytest.raises(ZeroDivisionError, match="boom"):
        cli_module.main(["render", "--target", "aws", "--spec", SPEC, "--out", "/nonexistent/out"])


@pytest.mark.parametrize("code", [errno.EROFS, errno.ENOSPC])
def test_a_file_system_refusing_a_write_is_an_error_with_a_hint(monkeypatch, capsys, code):
    refused = OSError(code, os.strerror(code), "/data/run/data/checkpoint.json")
    monkeypatch.setattr(pipeline_render, "render", _failing_render(refused))
    with pytest.raises(SystemExit) as exit_:
        cli_module.main(["render", "--target", "aws", "--spec", SPEC, "--out", "/nonexistent/out"])
    err = capsys.readouterr().err
    assert exit_.value.code == 1 and "Traceback" not in err
    assert f"error: cannot write /data/run/data/checkpoint.json: {os.strerror(code)}" in err
    assert "hint: make room or choose a writable location" in err


def test_error_messages_and_hints_are_redacted_when_printed(monkeypatch, capsys):
    error = ReproducerError(
        "WRONGPASS for valkeys://mover:s3cr3t@h:6380?password=s3cr3t&ca=/ca.pem",
        hint="check rediss://u%3As3cr3t@h",
    )
    monkeypatch.setattr(pipeline_render, "render", _failing_render(error))
    with pytest.raises(SystemExit):
        cli_module.main(["render", "--target", "aws", "--spec", SPEC, "--out", "/nonexistent/out"])
    err = capsys.readouterr().err
    assert "s3cr3t" not in err and "mover" not in err
    assert "valkeys://***@h:6380?password=***&ca=/ca.pem" in err


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("valkey://bob:pw@h:1/0", "valkey://***@h:1/0"),
        ("valkey://bob@h:1?password_env=P", "valkey://***@h:1?password_env=P"),
        ("x?password=pw&ca=/c", "x?password=***&ca=/c"),
        ("x?foo=1&token=t0k", "x?foo=1&token=***"),
        ("user%3Apass@host:1", "***@host:1"),
        ("10.0.0.1:6379 refused", "10.0.0.1:6379 refused"),
        ("see a@b.c", "see a@b.c"),
    ],
)
def test_redact(text, expected):
    assert redact(text) == expected


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("job.json", "{not json"),
        ("job.json", '{"phases": [], "settings": {}}'),
        ("job.json", '{"phases": {}, "settings": {"target": "local"}}'),
        ("job.json", b"\xff\xfe"),
    ],
)
def test_a_damaged_job_state_on_resume_is_bad_input(tmp_path, monkeypatch, capsys, name, text):
    (tmp_path / name).write_bytes(text if isinstance(text, bytes) else text.encode())
    monkeypatch.setenv("REPRODUCER_PASSWORD_DEFAULT", "not-used-here")
    argv = ["migrate", "--project", "p" * 32, "--service", "s", "--target", "local", "--resume"]
    with pytest.raises(SystemExit) as exit_:
        cli_module.main([*argv, "--run-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert exit_.value.code == 2, err
    assert "internal error" not in err and "hint: " in err and str(tmp_path / name) in err
