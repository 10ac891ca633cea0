import pytest

from reproducer.resources import KINDS, data_dir


@pytest.mark.parametrize("kind", KINDS)
def test_each_resource_directory_is_found(kind):
    assert (data_dir(kind) / "README.md").is_file()


def test_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="unknown resource kind"):
        data_dir("nope")
