"""`inspect -o DIR` with several services: all spec files are written, or none."""

import errno
import tempfile

import pytest

from reproducer.errors import OutputError
from reproducer.model import load_spec
from reproducer.pipeline import inspect as pipeline_inspect
from tests.golden.regen import HERE

BUSINESS, ESSENTIAL = (load_spec(HERE / "specs" / f"{name}.yaml") for name in ("business", "essential"))
SPECS = [
    BUSINESS,
    ESSENTIAL.model_copy(update={"source": ESSENTIAL.source.model_copy(update={"service_id": "another-service"})}),
]


def names(directory):
    return sorted(p.name for p in directory.iterdir())


def test_a_new_directory_gets_one_file_per_service(tmp_path):
    paths = pipeline_inspect.write_specs(SPECS, tmp_path / "specs")
    assert [p.read_text() for p in paths] == [s.to_yaml() for s in SPECS]
    assert names(tmp_path / "specs") == sorted(f"{s.source.service_id}.yaml" for s in SPECS)


def test_a_file_where_the_directory_should_be_is_bad_input(tmp_path):
    from reproducer.errors import InputError

    (tmp_path / "specs").write_text("mine\n")
    with pytest.raises(InputError, match="is not a directory"):
        pipeline_inspect.write_specs(SPECS, tmp_path / "specs")
    assert (tmp_path / "specs").read_text() == "mine\n"


def test_a_failure_midway_leaves_an_existing_directory_as_it_was(tmp_path, monkeypatch):
    (tmp_path / "README.md").write_text("kept\n")
    real_mkstemp, calls = tempfile.mkstemp, []

    def failing_second_file(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_mkstemp(*args, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", failing_second_file)
    with pytest.raises(OutputError, match="No space left") as error:
        pipeline_inspect.write_specs(SPECS, tmp_path)
    assert error.value.hint
    assert names(tmp_path) == ["README.md"]
    monkeypatch.undo()
    pipeline_inspect.write_specs(SPECS, tmp_path)
    assert len(names(tmp_path)) == 3 and (tmp_path / "README.md").read_text() == "kept\n"
