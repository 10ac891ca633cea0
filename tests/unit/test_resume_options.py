"""A copy's options saved in its run directory: a resume takes them unless given again; the scope cannot change."""

from __future__ import annotations

import json

import pytest

from reproducer.data.copy import CopyOptions
from reproducer.errors import InputError
from reproducer.pipeline.resume import OPTIONS_FILE, save_copy_options, settle_copy_options

FIRST = CopyOptions(dbs=(0, 2), match="user:*", batch=50, max_keys_per_second=300.0, conflict="replace")


def test_a_resume_takes_every_saved_option_it_is_not_given(tmp_path):
    save_copy_options(
        tmp_path,
        settle_copy_options(FIRST, tmp_path, frozenset({"dbs", "match", "batch", "max_keys_per_second", "conflict"}))[
            0
        ],
    )
    settled, notes = settle_copy_options(CopyOptions(resume=True), tmp_path, frozenset())
    assert (settled.dbs, settled.match, settled.batch) == ((0, 2), "user:*", 50)
    assert settled.max_keys_per_second == 300.0 and settled.conflict == "replace" and settled.resume
    assert notes == []


def test_an_option_given_again_wins_is_saved_and_noted(tmp_path):
    save_copy_options(tmp_path, settle_copy_options(FIRST, tmp_path)[0])
    settled, notes = settle_copy_options(
        CopyOptions(resume=True, max_keys_per_second=900.0), tmp_path, frozenset({"max_keys_per_second"})
    )
    assert settled.max_keys_per_second == 900.0 and settled.batch == 50
    assert notes == ["resume: --max-keys-per-second 900.0 replaces the saved 300.0"]
    save_copy_options(tmp_path, settled)  # as copy_data does before it copies
    saved = json.loads((tmp_path / OPTIONS_FILE).read_text())["options"]
    assert saved["max_keys_per_second"] == 900.0


def test_without_a_given_set_a_default_value_counts_as_not_given(tmp_path):
    save_copy_options(tmp_path, settle_copy_options(FIRST, tmp_path)[0])
    settled, _ = settle_copy_options(CopyOptions(resume=True, batch=10), tmp_path)
    assert settled.batch == 10 and settled.max_keys_per_second == 300.0 and settled.match == "user:*"


@pytest.mark.parametrize("changed", [{"match": "other:*"}, {"dbs": (0,)}])
def test_another_scope_is_refused(tmp_path, changed):
    save_copy_options(tmp_path, settle_copy_options(FIRST, tmp_path)[0])
    with pytest.raises(InputError, match="differs from the interrupted copy"):
        settle_copy_options(CopyOptions(resume=True, **changed), tmp_path)


@pytest.mark.parametrize(
    "options",
    [
        {"batch": "50; rm -rf /"},
        {"max_keys_per_second": float("inf")},
        {"max_keys_per_second": -1},
        {"conflict": "overwrite"},
        {"dbs": [0, True]},
        {"from_replica": "yes"},
        {"read": "sync; rm -rf /"},
        {"read": ["sync"]},
        {},
    ],
)
def test_a_damaged_options_file_is_refused_not_used(tmp_path, options):
    save_copy_options(tmp_path, settle_copy_options(FIRST, tmp_path)[0])
    path = tmp_path / OPTIONS_FILE
    state = json.loads(path.read_text())
    state["options"] = {**state["options"], **options} if options else {}
    path.write_text(json.dumps(state).replace("Infinity", "1e999"))
    with pytest.raises(InputError, match="not a copy's saved options"):
        settle_copy_options(CopyOptions(resume=True), tmp_path)


def test_a_fresh_copy_replaces_the_saved_options(tmp_path):
    save_copy_options(tmp_path, settle_copy_options(FIRST, tmp_path)[0])
    save_copy_options(tmp_path, settle_copy_options(CopyOptions(), tmp_path)[0])
    settled, _ = settle_copy_options(CopyOptions(resume=True), tmp_path)
    assert settled.max_keys_per_second is None and settled.match is None


def test_the_read_mode_is_kept_for_a_resume_and_a_file_saved_before_it_existed_reads_as_auto(tmp_path):
    save_copy_options(tmp_path, settle_copy_options(CopyOptions(read="scan"), tmp_path)[0])
    settled, notes = settle_copy_options(CopyOptions(resume=True), tmp_path, frozenset())
    assert settled.read == "scan" and notes == []
    settled, notes = settle_copy_options(CopyOptions(resume=True, read="sync"), tmp_path, frozenset({"read"}))
    assert settled.read == "sync" and notes == ['resume: --read "sync" replaces the saved "scan"']
    path = tmp_path / OPTIONS_FILE
    state = json.loads(path.read_text())
    del state["options"]["read"]
    path.write_text(json.dumps(state))
    assert settle_copy_options(CopyOptions(resume=True), tmp_path, frozenset())[0].read == "auto"
