"""`archive --project P --service S` with no --from: the data read through temporary access, always removed."""

from __future__ import annotations

import json

import pytest

from reproducer.pipeline import archive as pipeline_archive
from reproducer.pipeline import migrate as pipeline_migrate
from tests.support import cli
from tests.support.ovh import leftovers, ovh_env, service_fleet


def test_archive_of_an_ovh_service_alone_grants_reads_and_removes_its_access(api_server, seeded, load_source, tmp_path):
    load_source(120, seed=21)
    fleet = service_fleet(api_server, seeded)
    bundle = tmp_path / "bundle"
    argv = ["archive", "--project", seeded.project, "--service", seeded.service_id, "--endpoint", api_server.url]
    argv += ["--allow-cidr", "127.0.0.1/32", "--source-ca", str(fleet.tls_files.ca_cert), "-o", str(bundle)]

    made = cli.run(*argv, env=ovh_env(seeded))

    assert made.returncode == 0, made.stderr[-2000:]
    assert f"temporary user {pipeline_migrate.MIGRATION_USER} created" in made.stderr
    assert f"temporary user {pipeline_migrate.MIGRATION_USER} removed" in made.stderr
    assert "allow-list: 127.0.0.1/32 added" in made.stderr and "allow-list: 127.0.0.1/32 removed" in made.stderr
    assert leftovers(api_server, seeded) == ([], [])
    manifest = json.loads((bundle / "MANIFEST.json").read_text())
    assert manifest["data"]["keys"] == 120 and manifest["verification"]["ok"] is True
    assert manifest["source"]["spec"]["service_id"] == seeded.service_id
    assert sorted(manifest["files"]) == ["data/dump.rdb", "data/keys.jsonl", "spec.yaml"]
    assert "run.json" not in " ".join(p.name for p in tmp_path.rglob("*"))
    checked = cli.run("archive", "verify", str(bundle))
    assert checked.returncode == 0, checked.stderr[-2000:]


@pytest.mark.fault("Ctrl-C during archive's exports: temporary user and allow-list entry removed, no bundle")
def test_an_interrupted_archive_of_an_ovh_service_still_removes_its_access(api_server, seeded, load_source, tmp_path):
    load_source(50, seed=22)
    fleet = service_fleet(api_server, seeded)
    request = pipeline_archive.ArchiveRequest(
        out=tmp_path / "bundle",
        project=seeded.project,
        service=seeded.service_id,
        endpoint=api_server.url,
        credentials=seeded.credentials,
        allow_cidr="127.0.0.1/32",
        source_ca=fleet.tls_files.ca_cert,
    )
    seen: list[str] = []

    def interrupt_at_jsonl(message: str) -> None:
        seen.append(message)
        if message.startswith("archive: exporting the data as JSONL"):
            assert leftovers(api_server, seeded) == ([pipeline_migrate.MIGRATION_USER], ["127.0.0.1/32"])
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pipeline_archive.archive(request, interrupt_at_jsonl)

    assert leftovers(api_server, seeded) == ([], [])
    assert any(m.startswith(f"temporary user {pipeline_migrate.MIGRATION_USER} removed") for m in seen)
    assert list(tmp_path.iterdir()) == [], "no bundle, no staging directory left"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--project", "p", "--service", "s", "--allow-cidr", "10.0.0.1/32", "--allow-cidr", "10.0.0.2/32"], "one"),
        (["--from", "valkey://127.0.0.1:1", "--source-ca", "ca.pem"], "--source-ca goes without --from"),
        ([], "--project/--service or --from URL"),
    ],
)
def test_archive_refuses_ambiguous_access_options_before_anything_is_read(extra, message, tmp_path):
    refused = cli.run("archive", "-o", str(tmp_path / "bundle"), *extra)
    assert refused.returncode == 2 and message in refused.stderr, refused.stderr
    assert list(tmp_path.iterdir()) == []
