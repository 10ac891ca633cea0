"""report.md of a migrate job: the target endpoint, the phases in the order they ran, the verification's time."""

from __future__ import annotations

import json

from reproducer.pipeline.job import PHASES, report_markdown

#: job.json as a resumed job reads it back: saved with sorted keys, so the phases come alphabetically
PHASES_AS_SAVED = json.loads(
    json.dumps({name: {"finished": "2026-01-01T00:00:00Z", "seconds": 1.5} for name in PHASES[:-1]}, sort_keys=True)
)
TARGET = {
    "topology": "cluster",
    "hosts": ["127.0.0.1"] * 3,
    "ports": [7100, 7101, 7102],
    "sentinel_hosts": [],
    "sentinel_ports": [],
    "tls": False,
    "ca": None,
}


def report(**changes) -> dict:
    base = {
        "settings": {"service": "svc-1", "target": "local"},
        "phases": {**PHASES_AS_SAVED, "copy": {"seconds": 9.0}, "verify": {"seconds": 0.001}},
        "target": TARGET,
        "copy": {"copied": 3000, "source_keys": 3000},
        "verify": {"ok": True, "compared": 3000, "seconds": 4.25},
    }
    return {**base, **changes}


def rows(markdown: str) -> list[tuple[str, str]]:
    cells = [line.strip("|").split("|") for line in markdown.splitlines() if line.startswith("| ")]
    return [(name.strip(), seconds.strip()) for name, seconds in cells[1:]]


def test_phases_are_listed_in_the_order_they_ran_even_when_read_back_sorted():
    assert list(PHASES_AS_SAVED) != list(PHASES[:-1]), "the fixture is really out of order"
    assert [name for name, _ in rows(report_markdown(report()))] == list(PHASES[:-1])


def test_verify_shows_the_comparisons_own_time_taken_from_the_copy_phase():
    shown = dict(rows(report_markdown(report())))
    assert shown["verify"] == "4.251" and shown["copy"] == "4.75"


def test_a_report_without_the_verification_time_keeps_the_phase_times():
    shown = dict(rows(report_markdown(report(verify={"ok": True, "compared": 1}))))
    assert shown["verify"] == "0.001" and shown["copy"] == "9.0"


def test_the_target_endpoint_is_named_without_a_password():
    markdown = report_markdown(report())
    line = next(line for line in markdown.splitlines() if line.startswith("- target endpoint:"))
    assert "valkey+cluster://default@127.0.0.1:7100,127.0.0.1:7101,127.0.0.1:7102" in line
    assert "password_env=REPRODUCER_TARGET_PASSWORD" in line
    assert "not stood up" in report_markdown(report(target=None))
