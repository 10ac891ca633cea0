"""``migrate`` checks what it can before it touches the source or applies a target (issue 18's small things).

A non-empty ``--to`` target is refused before any grant (no ``run.json`` is ever written); a source certificate
the CA cannot verify fails before any grant (``--to``) or apply (``--target``), with a hint that names
``--source-ca`` (the option migrate takes), not the URL's ``?ca=``.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from reproducer.errors import DataError, InputError
from reproducer.pipeline import inspect as pipeline_inspect
from reproducer.pipeline import migrate as pipeline_migrate
from reproducer.sandbox.fleet import Fleet, FleetSpec
from tests.support import cli
from tests.support.ovh import leftovers, ovh_env, service_fleet


def request(api_server, seeded, target: Fleet, run_dir) -> pipeline_migrate.MigrateRequest:
    inspect = pipeline_inspect.InspectOptions(
        project=seeded.project, service=seeded.service_id, endpoint=api_server.url, credentials=seeded.credentials
    )
    return pipeline_migrate.MigrateRequest(
        inspect=inspect,
        target_url=f"valkey://127.0.0.1:{target.primary.port}",
        run_dir=run_dir,
        allow_cidr="127.0.0.1/32",
        source_ca=service_fleet(api_server, seeded).tls_files.ca_cert,
    )


def test_a_non_empty_target_is_refused_before_any_grant(api_server, seeded, tmp_path):
    with Fleet.start(FleetSpec()) as target:
        target.client(target.primary).set("already-here", "1")
        run_dir = tmp_path / "run"
        with pytest.raises(InputError, match=r"is not empty: 1 key\(s\) in db 0") as caught:
            pipeline_migrate.migrate_data(request(api_server, seeded, target, run_dir))
        assert "--replace" in caught.value.hint and "--skip-existing" in caught.value.hint
        assert not run_dir.exists()  # run.json is written before the first grant: none was asked for
        assert leftovers(api_server, seeded) == ([], [])


def test_an_unverifiable_source_certificate_fails_before_any_grant_naming_source_ca(api_server, seeded, tmp_path):
    with Fleet.start(FleetSpec()) as target:
        run_dir = tmp_path / "run"
        no_ca = replace(request(api_server, seeded, target, run_dir), source_ca=None)  # the system CAs only
        with pytest.raises(DataError, match="certificate cannot be verified") as caught:
            pipeline_migrate.migrate_data(no_ca)
        assert "--source-ca PATH" in caught.value.hint and "?ca=" not in caught.value.hint
        assert not (run_dir / "run.json").exists()
        assert leftovers(api_server, seeded) == ([], [])


def test_the_job_checks_the_source_certificate_before_it_applies(api_server, seeded, run_dir):
    argv = ["migrate", "--project", seeded.project, "--service", seeded.service_id, "--target", "local"]
    env = ovh_env(seeded, REPRODUCER_PASSWORD_DEFAULT="target-default-Pa55word-7f3a")
    result = cli.run(*argv, "--endpoint", api_server.url, "--run-dir", run_dir, env=env, timeout=120)
    assert result.returncode == 1, result.stderr
    assert "--source-ca PATH" in result.stderr and "?ca=" not in result.stderr
    events = (run_dir / "events.jsonl").read_text()
    assert '"phase": "inspect"' in events and '"phase": "apply"' not in events and '"phase": "render"' not in events
    assert not (run_dir / "rendered").exists()
