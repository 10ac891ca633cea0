"""pipeline/archive.py without servers: a bundle's manifest is untrusted, a changed file is named, nothing half-made.

The bundles here are made by hand with the module's own ``file_table``; the live parts are in
tests/integration/test_live_inspect.py.
"""

from __future__ import annotations

import json
import os

import pytest

from reproducer.errors import InputError, Interrupted
from reproducer.model import load_spec
from reproducer.pipeline import archive as pipeline_archive
from reproducer.pipeline.live import LiveInspectRequest
from tests.golden.regen import HERE


def _bundle(directory, **changes):
    (directory / "data").mkdir(parents=True)
    (directory / "spec.yaml").write_text("schema_version: 1\n")
    (directory / "data" / "keys.jsonl").write_text('{"db":0,"key":"a","type":"string","value":"1"}\n')
    (directory / "data" / "dump.rdb").write_bytes(b"REDIS0011" + bytes(range(64)))
    manifest = {
        "format": pipeline_archive.FORMAT,
        "format_version": pipeline_archive.FORMAT_VERSION,
        "data": {"keys": 1, "databases": {"0": {"keys": 1, "types": {"string": 1}}}},
        "files": pipeline_archive.file_table(directory),
        **changes,
    }
    (directory / "MANIFEST.json").write_text(json.dumps(manifest))
    return manifest


def test_an_intact_bundle_checks(tmp_path):
    _bundle(tmp_path)
    report = pipeline_archive.verify_bundle(tmp_path)
    assert report.ok and report.files == 3 and report.keys == 1


@pytest.mark.parametrize("offset", [0, 9, 40, -1])
def test_one_flipped_bit_anywhere_is_named(tmp_path, offset):
    _bundle(tmp_path)
    rdb = tmp_path / "data" / "dump.rdb"
    data = bytearray(rdb.read_bytes())
    data[offset] ^= 0x01
    rdb.write_bytes(bytes(data))

    report = pipeline_archive.verify_bundle(tmp_path)
    assert report.problems == ["data/dump.rdb: its sha256 differs from the manifest's (the file was changed)"]


def test_missing_added_resized_and_linked_files_are_each_named(tmp_path):
    _bundle(tmp_path)
    (tmp_path / "spec.yaml").unlink()
    (tmp_path / "extra.txt").write_text("x")
    with (tmp_path / "data" / "keys.jsonl").open("a") as handle:
        handle.write("more\n")
    outside = tmp_path.parent / "outside.rdb"
    outside.write_bytes((tmp_path / "data" / "dump.rdb").read_bytes())
    (tmp_path / "data" / "dump.rdb").unlink()
    (tmp_path / "data" / "dump.rdb").symlink_to(outside)

    problems = pipeline_archive.verify_bundle(tmp_path).problems
    assert "spec.yaml: missing" in problems and "extra.txt: not in the manifest" in problems
    assert "data/dump.rdb: a symbolic link" in problems
    assert any(p.startswith("data/keys.jsonl: ") and "bytes, the manifest says" in p for p in problems)


@pytest.mark.parametrize("name", ["../outside", "/etc/passwd", "data/../../x", "a\\b", "", "./spec.yaml"])
def test_a_manifest_path_outside_the_bundle_is_refused_not_read(tmp_path, name):
    directory = tmp_path / "bundle"
    directory.mkdir()
    (tmp_path / "outside").write_text("secret")
    manifest = _bundle(directory)
    manifest["files"][name] = {"bytes": 6, "sha256": "0" * 64}
    (directory / "MANIFEST.json").write_text(json.dumps(manifest))

    problems = pipeline_archive.verify_bundle(directory).problems
    assert problems == [f"{name!r}: not a path inside the bundle"]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not json",
        "[]",
        '{"format": "reproducer-archive", "format_version": 2, "files": {}, "data": {"databases": {}}}',
        '{"format": "reproducer-archive", "format_version": 1, "files": {"a": {"bytes": -1, "sha256": "x"}}}',
        '{"format": "reproducer-archive", "format_version": 1, "files": {}, "data": {"databases": {"0": 1}}}',
        "[" * 100_000,
    ],
)
def test_a_manifest_archive_did_not_write_is_refused(tmp_path, text):
    (tmp_path / "MANIFEST.json").write_text(text)
    with pytest.raises(InputError, match="not a manifest archive wrote"):
        pipeline_archive.verify_bundle(tmp_path)


def test_no_manifest_is_no_bundle_and_a_damaged_one_is_never_imported(tmp_path):
    with pytest.raises(InputError, match="not a complete bundle"):
        pipeline_archive.verify_bundle(tmp_path)
    _bundle(tmp_path / "b")
    (tmp_path / "b" / "spec.yaml").write_text("changed\n")
    with pytest.raises(InputError, match="damaged"):  # refused before any connection (nothing listens there)
        pipeline_archive.import_bundle(tmp_path / "b", "valkey://127.0.0.1:1")


def test_an_interrupted_archive_leaves_nothing_behind(tmp_path, monkeypatch):
    spec = load_spec(HERE / "specs" / "business.yaml")
    monkeypatch.setattr(pipeline_archive, "inspect_live", lambda request, progress: spec)

    class CutShort:
        """An RDB export that writes half a file, then is interrupted (Ctrl-C)."""

        @staticmethod
        def export(source, path, **_options):
            path.write_bytes(b"REDIS0011 half")
            raise Interrupted()

    monkeypatch.setattr(pipeline_archive, "format_module", lambda fmt: CutShort)
    request = pipeline_archive.ArchiveRequest(out=tmp_path / "bundle", live=LiveInspectRequest("valkey://h:1"))

    with pytest.raises(Interrupted):
        pipeline_archive.archive(request)
    assert os.listdir(tmp_path) == []


def test_an_existing_directory_is_never_replaced(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes").write_text("x")
    _bundle(tmp_path / "old")
    for out, what in ((tmp_path / "mine", "did not write"), (tmp_path / "old", "earlier bundle")):
        request = pipeline_archive.ArchiveRequest(out=out, live=LiveInspectRequest("valkey://h:1"))
        with pytest.raises(InputError, match=what):
            pipeline_archive.archive(request)
    assert (tmp_path / "mine" / "notes").read_text() == "x"
