"""File round trips: source → file → empty server → verify is exact, for JSONL, RDB and AOF."""

from __future__ import annotations

import base64
import json
import os
import tempfile
import time

import pytest
import valkey

from reproducer.data import rebuild
from reproducer.data.endpoint import parse_endpoint
from reproducer.data.formats import format_module
from reproducer.data.formats.entries import Entry, EntryWriter
from reproducer.data.formats.scratch import ScratchServer, scratch_directory
from reproducer.data.verify import VerifyOptions
from reproducer.errors import InputError
from reproducer.pipeline import data as pipeline_data
from reproducer.sandbox.fleet import Fleet, FleetSpec
from reproducer.sandbox.seed import load_dataset
from tests.support.proxy import CuttableProxy


@pytest.fixture(scope="module")
def source():
    fleet = Fleet.start(FleetSpec())
    client = fleet.client(fleet.primary)
    load_dataset(client, 1200)
    client.set(b"binary:\xff\xfe", b"\x00\x01\xff")
    client.hset("big:hash", mapping={f"f{i}": i for i in range(2500)})
    client.xgroup_create("empty:stream", "g", id="0", mkstream=True)
    client.execute_command("SELECT", 3)
    client.set("in-db-3", "x", px=3_600_000)
    yield fleet
    fleet.stop()


def url(fleet: Fleet) -> str:
    return f"valkey://127.0.0.1:{fleet.primary.port}"


@pytest.mark.parametrize("fmt", ["jsonl", "rdb", "aof"])
def test_round_trip_is_exact(source, tmp_path, fmt):
    path = tmp_path / f"dump.{fmt}"
    exported = pipeline_data.export_data(pipeline_data.ExportRequest(url(source), path))
    assert exported == 1204 and path.stat().st_size > 0
    with Fleet.start(FleetSpec()) as empty:
        written, expired, _skipped = pipeline_data.import_data(pipeline_data.ImportRequest(path, url(empty)))
        assert written >= 1204 and expired == 0
        report = pipeline_data.verify_data(url(source), url(empty), VerifyOptions())
        assert report.ok, report.to_dict()
        assert report.compared == 1204
        assert valkey.Valkey(port=empty.primary.port).get(b"binary:\xff\xfe") == b"\x00\x01\xff"


def test_jsonl_is_binary_safe_and_keeps_absolute_expiry(source, tmp_path):
    path = tmp_path / "dump.jsonl"
    pipeline_data.export_data(pipeline_data.ExportRequest(url(source), path, dbs=(0, 3)))
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    binary = next(line for line in lines if line.get("b64") and base64.b64decode(line["key"]) == b"binary:\xff\xfe")
    assert binary["type"] == "string" and binary["value"] == "AAH/"
    assert any(not line.get("b64") and line["key"] == "big:hash" for line in lines)
    timed = next(line for line in lines if line["key"] == "in-db-3")
    assert timed["db"] == 3 and timed["expire_at_ms"] > 1.7e12


def test_expired_lines_are_skipped_and_counted(tmp_path):
    path = tmp_path / "old.jsonl"
    path.write_text(
        '{"db":0,"key":"gone","type":"string","expire_at_ms":1000,"value":"x"}\n'
        '{"db":0,"key":"kept","type":"string","expire_at_ms":null,"value":"y"}\n'
    )
    with Fleet.start(FleetSpec()) as empty:
        assert pipeline_data.import_data(pipeline_data.ImportRequest(path, url(empty))) == (1, 1, 0)


def test_bad_files_get_clear_errors(tmp_path):
    broken = tmp_path / "broken.jsonl"
    broken.write_text("{not json\n")
    rdb = tmp_path / "fake.rdb"
    rdb.write_text("hello")
    with Fleet.start(FleetSpec()) as empty:
        with pytest.raises(InputError, match=r"broken.jsonl:1: not a reproducer JSONL line"):
            pipeline_data.import_data(pipeline_data.ImportRequest(broken, url(empty)))
        with pytest.raises(InputError, match="not an RDB file"):
            pipeline_data.import_data(pipeline_data.ImportRequest(rdb, url(empty)))
        with pytest.raises(InputError, match="cannot tell the format"):
            pipeline_data.export_data(pipeline_data.ExportRequest(url(empty), tmp_path / "out.txt"))
        truncated = tmp_path / "cut.aof"
        truncated.write_bytes(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nab")
        with pytest.raises(InputError, match="truncated AOF"):
            pipeline_data.import_data(pipeline_data.ImportRequest(truncated, url(empty)))
    assert not list(tmp_path.glob(".out.txt*"))


def test_import_skip_existing_keeps_target_keys(source, tmp_path):
    path = tmp_path / "dump.jsonl"
    pipeline_data.export_data(pipeline_data.ExportRequest(url(source), path, dbs=(0,)))
    with Fleet.start(FleetSpec()) as target:
        client = target.client(target.primary)
        client.set("session:000000", "the target's own value")
        client.xadd("events:000005", {"kept": "yes"})
        load = format_module("jsonl").load
        written, _expired, skipped = load(path, parse_endpoint(url(target), environ={}), conflict="skip")
        assert skipped == 2 and written == 1203 - 2
        assert client.get("session:000000") == "the target's own value"


def test_an_rdb_import_works_when_tmpdir_is_too_long_for_a_unix_socket(tmp_path, monkeypatch):
    """The scratch server's socket path must fit 107 bytes: a deep TMPDIR falls back to /tmp."""
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    monkeypatch.setenv("TMPDIR", str(deep))
    monkeypatch.setattr(tempfile, "tempdir", None)
    directory = scratch_directory()
    try:
        assert len(os.fsencode(directory / "valkey.sock")) <= 107 and not directory.is_relative_to(deep)
        assert directory.stat().st_mode & 0o777 == 0o700
    finally:
        directory.rmdir()
    with ScratchServer() as server, server.client() as client:
        assert client.ping()


def test_an_imported_expiry_counts_from_the_write_not_from_when_the_entry_was_queued():
    with Fleet.start(FleetSpec()) as empty:
        writer = EntryWriter(parse_endpoint(url(empty)))
        expire_at_ms = int(time.time() * 1000) + 60_000
        writer.write(Entry(0, b"queued", rebuild.Value("string", b"x"), expire_at_ms))
        time.sleep(1.5)  # a batch waits to fill (or for a slow source) before it is written
        writer.flush()
        writer.close()
        pttl = empty.client(empty.primary).pttl("queued")
        left = expire_at_ms - int(time.time() * 1000)
        assert abs(pttl - left) < 300, f"the key lives {pttl} ms more, its expiry {left} ms away"


def test_an_imported_expiry_is_kept_across_a_far_link():
    """Through a link of 0.7 s each way, a key still expires when the file says, not 0.7 s (or a pipeline) later."""
    with Fleet.start(FleetSpec()) as empty:
        proxy = CuttableProxy(empty.primary.port, delay=0.7)
        try:
            endpoint = parse_endpoint(f"valkey://127.0.0.1:{proxy.port}")
            writer = EntryWriter(endpoint)
            expire_at_ms = int(time.time() * 1000) + 60_000
            writer.write(Entry(0, b"far", rebuild.Value("string", b"x"), expire_at_ms))
            writer.flush()
            writer.close()
        finally:
            proxy.close()
        pttl = empty.client(empty.primary).pttl("far")
        left = expire_at_ms - int(time.time() * 1000)
        assert abs(pttl - left) < 300, f"the key lives {pttl - left} ms more than the file says"
