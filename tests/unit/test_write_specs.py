"""`inspect -o DIR` with several services: all spec files are written, or none."""

import os

import pytest

from reproducer import pipeline
from reproducer.model import load_spec
from tests.golden.regen import HERE

BUSINESS, ESSENTIAL = (load_spec(HERE / "specs" / f"{name}.yaml") for name in ("business", "essential"))
SPECS = [
    BUSINESS,
    ESSENTIAL.model_copy(update={"source": ESSENTIAL.source.model_copy(update={"service_id": "another-service"})}),
]


def names(directory):
    return sorted(p.name for p in directory.iterdir())


def test_a_new_directory_gets_one_file_per_service(tmp_path):
    paths = pipeline.write_specs(SPECS, tmp_path / "specs")
    assert [p.read_text() for p in paths] == [s.to_yaml() for s in SPECS]
    assert names(tmp_path / "specs") == sorted(f"{s.source.service_id}.yaml" for s in SPECS)


def test_a_failure_midway_leaves_an_existing_directory_as_it_was(tmp_path, monkeypatch):
    (tmp_path / "README.md").write_text("kept\n")
    real_fdopen, calls = os.fdopen, []

    def failing_second_write(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return real_fdopen(*args, **kwargs)

    monkeypatch.setattr(os, "fdopen", failing_second_write)
    with pytest.raises(OSError, match="No space left"):
        pipeline.write_specs(SPECS, tmp_path)
    assert names(tmp_path) == ["README.md"]
    monkeypatch.undo()
    pipeline.write_specs(SPECS, tmp_path)
    assert len(names(tmp_path)) == 3 and (tmp_path / "README.md").read_text() == "kept\n"
