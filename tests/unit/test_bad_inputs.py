"""The bad-input corpus: every case in tests/bad_inputs/ fails with its message and exit code, and leaves
no output behind.

A case is one YAML file: ``description``, ``command`` (argv after ``reproducer``), ``exit_code``, ``message``
(a substring of the output), and optionally ``spec_change`` (merged into the golden Business spec written to
``{dir}/spec.yaml``), ``files`` (written under ``{dir}``), ``env``, ``hint`` (a substring of the hint),
``secret`` (a string or a list, never to be echoed), and ``servers``: real valkey-server processes started
for the case, by name::

    servers:
      source: {keys: 3, password: ..., users: {mover: ...}, tls: true}

In ``command``, ``{NAME.port}`` is the port of server NAME. After the command,
``{dir}`` must hold nothing new and every server exactly its ``keys``: nothing was written anywhere.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from reproducer.sandbox.fleet import AclUser, Fleet, FleetSpec
from tests.support import cli

CORPUS = Path(__file__).parents[1] / "bad_inputs"
SPEC = Path(__file__).parents[1] / "golden" / "specs" / "business.yaml"
CASES = sorted(CORPUS.glob("*.yaml"))
DATA = [yaml.safe_load(c.read_text()) for c in CASES]
META = [{k: v for k, v in d.items() if k in ("description", "exit_code", "message")} for d in DATA]
LIVE = [
    pytest.param(
        case,
        meta,
        id=case.stem,
        marks=[
            pytest.mark.integration,
            pytest.mark.skipif(shutil.which("valkey-server") is None, reason="valkey-server is not installed"),
        ],
    )
    if "servers" in data
    else pytest.param(case, meta, id=case.stem)
    for case, meta, data in zip(CASES, META, DATA, strict=True)
]


@pytest.fixture
def servers(request) -> dict[str, Fleet]:
    """The case's servers (none for most cases), started with their keys and stopped afterwards."""
    wanted: dict[str, dict[str, Any]] = yaml.safe_load(request.node.callspec.params["case"].read_text()).get(
        "servers", {}
    )
    started: dict[str, Fleet] = {}
    try:
        for name, options in wanted.items():
            started[name] = _start(options)
        yield started
    finally:
        for fleet in started.values():
            fleet.stop()


def _start(options: dict[str, Any]) -> Fleet:
    users = tuple(AclUser(name, password) for name, password in options.get("users", {}).items())
    fleet = Fleet.start(
        FleetSpec(tls=options.get("tls", False), users=users, default_user_password=options.get("password"))
    )
    if options.get("keys"):
        fleet.client(fleet.primary).mset({f"key:{i}": f"value-{i}" for i in range(options["keys"])})
    return fleet


def _argv(command: list[str], directory: Path, servers: dict[str, Fleet]) -> list[str]:
    values = {"{dir}": str(directory)}
    for name, fleet in servers.items():
        values[f"{{{name}.port}}"] = str(fleet.primary.port)
    argv = []
    for template in command:
        arg = template
        for placeholder, value in values.items():
            arg = arg.replace(placeholder, value)
        argv.append(arg)
    return argv


def _prepare(spec: dict[str, Any], directory: Path) -> None:
    data = yaml.safe_load(SPEC.read_text()) | spec.get("spec_change", {})
    (directory / "spec.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    for relative, text in spec.get("files", {}).items():
        path = directory / relative
        if path.parent.is_file():
            path.parent.unlink()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


@pytest.mark.bad_input
@pytest.mark.parametrize(("case", "meta"), LIVE)
def test_bad_input_gives_a_clear_error(case, meta, servers, tmp_path):
    spec = yaml.safe_load(case.read_text())
    _prepare(spec, tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OVH_", "REPRODUCER_TEST_"))} | spec.get("env", {})
    result = cli.run(*_argv(spec["command"], tmp_path, servers), env=env, cwd=tmp_path, timeout=60)
    output = " ".join((result.stdout + result.stderr).split())
    assert result.returncode == spec["exit_code"], output
    assert spec["message"] in output
    assert "Traceback" not in output
    assert "hint:" in result.stderr or "Usage:" in result.stderr
    secrets = spec.get("secret", [])
    for secret in [secrets] if isinstance(secrets, str) else secrets:
        assert secret not in output
    if "hint" in spec:
        assert spec["hint"] in " ".join(result.stderr.split())
    expected = {"spec.yaml", *(Path(relative).parts[0] for relative in spec.get("files", {}))}
    assert sorted(p.name for p in tmp_path.iterdir() if p.name not in expected) == [], "output was left behind"
    for name, fleet in servers.items():
        assert fleet.client(fleet.primary).dbsize() == spec["servers"][name].get("keys", 0), f"{name} was written"
