"""Start-up cost of the processes the tool and its tests start by the hundred: the CLI and the twin providers.

Each ``reproducer`` command and each provider process Terraform starts pays for its imports; these tests pin
what a fresh interpreter loads, so a heavy import creeping back to module level fails here, not as a slower
suite nobody can explain.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import reproducer.offline
from reproducer.offline.schema import load
from reproducer.twins.provider import TwinProvider
from tests.support import cli

#: Imported by the commands that use them, never at start-up.
SCHEMAS = Path(reproducer.offline.__file__).with_name("schemas")
HEAVY = ("reproducer.data.copy", "reproducer.run.terraform", "reproducer.run.ansible", "ansible_runner", "valkey")


def loaded_after(statements: str) -> dict[str, list[str]]:
    """Modules a fresh interpreter has executed after ``statements`` (lazy placeholders not counted)."""
    probe = (
        f"{statements}\n"
        "import importlib.util, json, sys\n"
        "lazy = importlib.util._LazyModule\n"
        "print(json.dumps(sorted(n for n, m in sys.modules.items() if m is not None and type(m) is not lazy)))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60)
    names = json.loads(done.stdout.splitlines()[-1])
    return {"names": names, "heavy": [n for n in HEAVY if n in names]}


def test_the_cli_loads_no_pipeline_before_a_command_needs_it() -> None:
    loaded = loaded_after("import reproducer.cli")
    assert loaded["heavy"] == []
    assert not [n for n in loaded["names"] if n.startswith("reproducer.pipeline.")]


#: What ``copy`` and ``verify`` must never load: the spec model (pydantic), templates, YAML, valkey-py, the sources.
NOT_ON_THE_DATA_PATH = ("pydantic", "pydantic_core", "jinja2", "yaml", "valkey", "ovh", "requests", "cryptography")
NOT_ON_THE_DATA_PATH_OF_REPRODUCER = (
    "reproducer.model",
    "reproducer.targets.base",
    "reproducer.catalog",
    "reproducer.sources",
)
_RUN_AND_LIST = """
import atexit, importlib.util, json, runpy, sys
def listed():
    lazy = importlib.util._LazyModule
    names = sorted(n for n, m in sys.modules.items() if m is not None and type(m) is not lazy)
    print(json.dumps(names), file=sys.__stdout__)
atexit.register(listed)
sys.argv = ["reproducer", *sys.argv[1:]]
runpy.run_module("reproducer.cli", run_name="__main__")
"""


@pytest.mark.parametrize("command", ["copy", "verify"])
def test_copy_and_verify_load_no_spec_model_templates_or_valkey_py(command: str, tmp_path: Path) -> None:
    """The copy path's start-up (issue 17): a refused connection still runs the command's whole import chain."""
    argv = [command, "valkey://127.0.0.1:1", "valkey://127.0.0.1:2", "--run-dir", str(tmp_path / "run")]
    done = subprocess.run(
        [sys.executable, "-c", _RUN_AND_LIST, *argv], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 1 and "error: cannot connect to 127.0.0.1:1" in done.stderr, done.stderr
    names = json.loads(done.stdout.splitlines()[-1])
    assert "reproducer.pipeline.data" in names and "reproducer.data.copy" in names
    assert [n for n in names if n.split(".")[0] in NOT_ON_THE_DATA_PATH] == []
    assert [n for n in names if n.startswith(NOT_ON_THE_DATA_PATH_OF_REPRODUCER)] == []
    assert [n for n in names if n in ("rich.progress", "rich.live")] == [], "a bar where no terminal shows it"


def test_a_command_still_loads_its_pipeline() -> None:
    loaded = loaded_after("import reproducer.cli as c\nc.pipeline_data.FollowOptions")
    assert "reproducer.pipeline.data" in loaded["names"] and "reproducer.pipeline.job" not in loaded["names"]


def test_demo_help_shows_the_pipelines_default_key_count() -> None:
    from reproducer import cli as cli_module
    from reproducer.pipeline.demo import DEMO_KEYS

    result = cli.run("demo", "--help")
    assert result.returncode == 0, result.stderr
    assert f"[default: {DEMO_KEYS};" in " ".join(result.stdout.split())
    assert cli_module.DEMO_KEYS == DEMO_KEYS


def test_a_schema_only_twin_provider_imports_no_fleet_machinery() -> None:
    """Terraform starts a provider just to read its schema: that process needs no fleets, valkey-py or TLS."""
    loaded = loaded_after(
        "from pathlib import Path\n"
        "from reproducer.offline.schema import load\n"
        "from reproducer.twins.provider import TwinProvider\n"
        "from reproducer.twins.serve import twins_of\n"
        f"schema = load(Path({str(SCHEMAS / 'aws.json')!r}), None)\n"
        "TwinProvider(schema, load_twins=lambda: twins_of('aws')).GetProviderSchema(None, None)\n"
    )
    assert loaded["heavy"] == []
    assert not [n for n in loaded["names"] if n.startswith(("reproducer.sandbox", "cryptography"))]


def test_the_twins_are_loaded_on_first_use_and_once() -> None:
    calls: list[int] = []

    def loader() -> tuple[tuple[object, ...], tuple[object, ...]]:
        from reproducer.twins import aws

        calls.append(1)
        return tuple(aws.RESOURCES), tuple(aws.DATA_SOURCES)

    provider = TwinProvider(load(SCHEMAS / "aws.json", None), load_twins=loader)  # type: ignore[arg-type]
    assert calls == []
    assert "aws_elasticache_replication_group" in provider.resources
    assert provider.data_sources is provider.data_sources and calls == [1]


def test_twin_providers_load_valkey_py_only_to_change_a_server() -> None:
    """Each provider start imports its cloud's twins; most starts validate or plan, which talk to no server."""
    twins = ("aws", "google", "azurerm", "scaleway", "digitalocean", "aiven", "ovh")
    loaded = loaded_after(
        "import reproducer.offline.server\n" + "\n".join(f"import reproducer.twins.{t}" for t in twins)
    )
    assert "valkey" not in loaded["names"]
