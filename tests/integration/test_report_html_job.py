"""`migrate --target local --follow --json`: its JSON summary, and report.html with report.json's numbers and charts."""

from __future__ import annotations

import json

import pytest

from reproducer.pipeline.job import PHASES
from reproducer.pipeline.report import follow_lag, keys_per_second, read_timeline
from reproducer.sandbox.seed import ovh_client
from tests.support import cli
from tests.support.htmlpage import parse
from tests.support.ovh import leftovers, ovh_env, service_fleet, service_path, wait_ready

PASSWORD = "report-default-Pa55word-3c1d"
ENV = {"REPRODUCER_PASSWORD_DEFAULT": PASSWORD}
NOTIFY = "redis_notify_keyspace_events"


@pytest.fixture
def notifications_on(api_server, seeded):
    """Keyspace notifications on for the seeded service (the follower needs them), put back afterwards."""
    client, path = ovh_client(api_server, seeded.credentials), service_path(seeded)
    before = client.get(f"{path}/advancedConfiguration")[NOTIFY]
    client.put(f"{path}/advancedConfiguration", **{NOTIFY: "KA"})
    wait_ready(client, path)
    yield
    client.put(f"{path}/advancedConfiguration", **{NOTIFY: before})
    wait_ready(client, path)


def test_the_job_writes_a_report_page_matching_report_json(api_server, seeded, load_source, run_dir, notifications_on):
    load_source(2000, seed=31)
    argv = ["migrate", "--project", seeded.project, "--service", seeded.service_id, "--target", "local"]
    argv += ["--shards", "1", "--replicas", "0", "--endpoint", api_server.url, "--allow-cidr", "127.0.0.1/32"]
    argv += ["--source-ca", str(service_fleet(api_server, seeded).tls_files.ca_cert), "--run-dir", str(run_dir)]
    done = cli.run(*argv, "--follow", "--follow-seconds", "2.5", "--json", env=ovh_env(seeded, **ENV))
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["command"] == "migrate" and summary["phases_run"] == list(PHASES)
    written = json.loads((run_dir / "report.json").read_text())
    assert {k: v for k, v in summary["report"].items() if k != "phases"} == {
        k: v for k, v in written.items() if k != "phases"
    }
    assert written["phases"].items() <= summary["report"]["phases"].items(), "the summary adds the report phase"
    assert summary["verify"]["ok"] and summary["copy"]["total"]["copied"] == summary["report"]["copy"]["copied"]
    report = json.loads((run_dir / "report.json").read_text())
    text = (run_dir / "report.html").read_text()
    page = parse(text)
    assert page.errors == [] and page.open == []
    words = " ".join(w.strip() for w in page.text if w.strip())
    copied, source_keys = report["copy"]["copied"], report["copy"]["source_keys"]
    assert copied == source_keys >= 2000 and f"Keys copied: {copied:,} of {source_keys:,}" in words
    assert "Verification: zero differences" in words and f"compared {report['verify']['compared']:,}" in words
    for phase in report["phases"]:
        assert f" {phase} " in f" {words} ", phase
    samples = read_timeline(run_dir)
    assert keys_per_second(samples), "the copy was sampled over time"
    assert follow_lag(samples), "the follower's lag was sampled over time"
    assert len([tag for tag, _ in page.tags if tag == "polyline"]) == 2
    assert PASSWORD not in text and seeded.app_password not in text and "password" not in text.lower()
    assert leftovers(api_server, seeded) == ([], [])
