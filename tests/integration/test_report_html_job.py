"""`migrate --target local --follow --json`: its JSON summary, and report.html with report.json's numbers and charts."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from reproducer.pipeline.job import PHASES
from reproducer.pipeline.report import follow_lag, keys_per_second, read_timeline, report_html
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


CHROMIUM = shutil.which("chromium")
#: As the machine notes advise for a closed network: no background connections, a fresh profile.
QUIET = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"]
QUIET += ["--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/setup does not install it)")
def test_the_page_renders_in_a_headless_browser(tmp_path):
    samples = [{"at": 100.0 + i, "kind": "copy", "scanned": 1000 * i} for i in range(5)]
    samples += [{"at": 200.0 + i, "kind": "follow", "oldest_ms": 50 - 10 * i} for i in range(5)]
    report = {"settings": {"service": "svc", "target": "local"}, "copy": {"copied": 4000, "source_keys": 4000}}
    report["verify"] = {"ok": True, "compared": 4000}
    page = tmp_path / "report.html"
    page.write_text(report_html(report, [("copy", 4.0)], samples, {"127.0.0.1:7100": {"scanned": 4000}}))
    profile = tmp_path / "profile"
    argv = [str(CHROMIUM), *QUIET, f"--user-data-dir={profile}", "--window-size=900,1400"]
    shot = tmp_path / "shot.png"
    subprocess.run([*argv, f"--screenshot={shot}", page.as_uri()], capture_output=True, timeout=60, check=True)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
    dom = subprocess.run([*argv, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=60, check=True)
    rendered = parse(dom.stdout)
    assert len([tag for tag, _ in rendered.tags if tag == "polyline"]) == 2
    words = " ".join(w.strip() for w in rendered.text if w.strip())
    assert "Keys copied: 4,000 of 4,000" in words and "Verification: zero differences" in words
