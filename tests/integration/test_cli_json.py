"""Output for logs and machines: `--json` summaries on stdout, full tables outside a terminal, verify's progress."""

from __future__ import annotations

import json

import pytest

from reproducer.pipeline import data as pipeline_data
from reproducer.sandbox.fleet import Fleet, FleetSpec
from reproducer.sandbox.seed import load_dataset
from tests.support.cli import run as reproducer
from tests.support.ovh import leftovers, ovh_env, service_fleet

KEYS = 1500


@pytest.fixture(scope="module")
def source():
    fleet = Fleet.start(FleetSpec())
    load_dataset(fleet.client(fleet.primary), KEYS, seed=3)
    yield fleet
    fleet.stop()


def url(fleet: Fleet) -> str:
    return f"valkey://127.0.0.1:{fleet.primary.port}"


def test_copy_json_holds_the_numbers_of_stats_json_and_the_table_is_whole(source, fleets, tmp_path):
    target = fleets()
    run = tmp_path / "run"
    done = reproducer("copy", url(source), url(target), "--run-dir", run, "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    stats = json.loads((run / "data" / "stats.json").read_text())
    assert summary["command"] == "copy" and summary["run_dir"] == str(run)
    assert summary["total"] == stats["total"] and summary["per_node"] == stats["per_node"]
    assert summary["total"]["copied"] == KEYS and summary["verify"]["ok"] is True
    assert summary["verify"]["compared"] == KEYS
    table = done.stderr[done.stderr.index("copy summary") :].splitlines()
    assert table[1].split() == ["node", "scanned", "copied", "rebuilt", "expired", "skipped", "MB", "retries"]
    total = next(line for line in table if line.startswith("total"))
    assert total.split()[1:3] == [f"{KEYS:,}", f"{KEYS:,}"] and "…" not in done.stderr


def test_export_and_import_json(source, fleets, tmp_path):
    dump = tmp_path / "all.jsonl"
    exported = reproducer("export", url(source), dump, "--json")
    assert exported.returncode == 0, exported.stderr
    assert json.loads(exported.stdout) == {
        "format_version": "1.0",
        "command": "export",
        "file": str(dump),
        "format": None,
        "keys": KEYS,
    }
    target = fleets()
    imported = reproducer("import", dump, url(target), "--json")
    assert imported.returncode == 0, imported.stderr
    summary = json.loads(imported.stdout)
    assert (summary["command"], summary["written"], summary["skipped"]) == ("import", KEYS, 0)
    refused = reproducer("export", url(source), "-", "--format", "jsonl", "--json")
    assert refused.returncode == 2 and refused.stdout == "" and "--json" in refused.stderr


def test_verify_reports_progress_as_it_goes(source, fleets):
    target = fleets()
    assert reproducer("copy", url(source), url(target), "--no-verify").returncode == 0
    seen: list[int] = []
    request = pipeline_data.VerifyRequest(url(source), url(target), progress=seen.append)
    report = pipeline_data.verify_endpoints(request)
    assert report.ok and len(seen) >= 2 and seen == sorted(seen) and seen[-1] == report.compared == KEYS


def test_migrate_to_url_json(api_server, seeded, load_source, fleets, tmp_path):
    load_source(300, seed=5)
    target = fleets()
    argv = ["migrate", "--project", seeded.project, "--service", seeded.service_id, "--to", url(target)]
    argv += ["--endpoint", api_server.url, "--allow-cidr", "127.0.0.1/32", "--run-dir", str(tmp_path / "run")]
    ca = service_fleet(api_server, seeded).tls_files.ca_cert
    done = reproducer(*argv, "--source-ca", ca, "--json", env=ovh_env(seeded))
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["command"] == "migrate" and summary["copy"]["total"]["copied"] == 300
    assert summary["verify"]["ok"] is True and summary["cutover"] is None
    assert seeded.app_password not in done.stdout
    assert leftovers(api_server, seeded) == ([], [])
