"""Small things of issue 18: render's missing parents, ``inspect -o DIR/``, ``--config``'s endpoint, the sandbox's
ovh.conf and the official ``ovh`` client."""

from __future__ import annotations

from pathlib import Path

import ovh
import pytest
from ovh.exceptions import InvalidRegion

from reproducer.cli import cli, main, ovh_conf
from reproducer.ovhconf import sandbox_conf
from reproducer.pipeline.inspect import write_specs
from reproducer.sources.ovh import make_client

GOLDEN_SPEC = Path(__file__).resolve().parents[1] / "golden" / "specs" / "business.yaml"
URL = "http://127.0.0.1:9/1.0"  # nothing listens: no test here sends a request
KEYS = {"application_key": "ak1", "application_secret": "as1", "consumer_key": "ck1"}


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    try:
        main(args)
    except SystemExit as ended:
        return int(ended.code or 0), capsys.readouterr().err
    return 0, capsys.readouterr().err


@pytest.fixture
def no_ovh_environment(monkeypatch):
    """No OVH_* variable, and the client's endpoint table as it ships (make_client registers URLs in it)."""
    for name in ("OVH_ENDPOINT", "OVH_APPLICATION_KEY", "OVH_APPLICATION_SECRET", "OVH_CONSUMER_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(ovh.client, "ENDPOINTS", dict(ovh.client.ENDPOINTS))


# -- render --out with missing parents -----------------------------------------------------------------------------


def test_render_creates_the_missing_parents_of_out(tmp_path, capsys):
    out = tmp_path / "infra" / "clouds" / "aws"
    code, err = run(["render", "--target", "aws", "--spec", str(GOLDEN_SPEC), "--out", str(out)], capsys)
    assert code == 0, err
    assert (out / "terraform" / "main.tf").is_file() and (out / ".reproducer-manifest.json").is_file()


def test_render_refuses_a_parent_that_is_a_file_and_creates_nothing(tmp_path, capsys):
    (tmp_path / "infra").write_text("a file the user keeps\n")
    out = tmp_path / "infra" / "aws" / "out"
    code, err = run(["render", "--target", "aws", "--spec", str(GOLDEN_SPEC), "--out", str(out)], capsys)
    assert code == 2 and "is a file, not a directory" in err and "hint:" in err and "Traceback" not in err
    assert (tmp_path / "infra").read_text() == "a file the user keeps\n"


def test_a_bad_spec_creates_no_parent(tmp_path, capsys):
    spec = tmp_path / "spec.yaml"
    spec.write_text("schema_version: 1\n")
    code, _ = run(["render", "--target", "aws", "--spec", str(spec), "--out", str(tmp_path / "new" / "aws")], capsys)
    assert code == 2 and not (tmp_path / "new").exists()


# -- inspect -o ----------------------------------------------------------------------------------------------------


def two_specs(spec):
    other = spec.model_copy(update={"source": spec.source.model_copy(update={"service_id": "0" * 32})})
    return [spec, other]


def test_a_trailing_slash_means_a_directory_even_for_one_service(recorded_spec, tmp_path):
    written = write_specs([recorded_spec], f"{tmp_path / 'specs'}/")
    assert written == [tmp_path / "specs" / f"{recorded_spec.source.service_id}.yaml"]
    assert (tmp_path / "specs").is_dir() and written[0].read_text() == recorded_spec.to_yaml()


def test_an_existing_directory_gets_the_spec_inside(recorded_spec, tmp_path):
    (tmp_path / "specs").mkdir()
    assert write_specs([recorded_spec], tmp_path / "specs") == [
        tmp_path / "specs" / f"{recorded_spec.source.service_id}.yaml"
    ]


def test_one_service_without_slash_is_a_file_and_several_a_directory(recorded_spec, tmp_path):
    assert write_specs([recorded_spec], str(tmp_path / "spec.yaml")) == [tmp_path / "spec.yaml"]
    assert (tmp_path / "spec.yaml").is_file()
    written = write_specs(two_specs(recorded_spec), str(tmp_path / "specs"))
    assert sorted(p.name for p in (tmp_path / "specs").iterdir()) == sorted(p.name for p in written)
    assert len(written) == 2


def test_the_cli_keeps_the_trailing_slash_of_output():
    param = next(p for p in cli.commands["inspect"].params if p.name == "output")
    assert param.type.convert("specs/", param, None) == "specs/"


# -- --config's [default] endpoint ---------------------------------------------------------------------------------


def conf_file(tmp_path: Path, endpoint: str = URL) -> Path:
    path = tmp_path / "my-ovh.conf"
    path.write_text(sandbox_conf(endpoint, *KEYS.values()))
    return path


def test_the_config_files_default_endpoint_is_used(tmp_path, no_ovh_environment):
    client = make_client(None, conf_file(tmp_path))
    assert client._endpoint == URL and client._application_key == "ak1" and client._consumer_key == "ck1"


def test_an_explicit_endpoint_or_ovh_endpoint_wins_over_the_file(tmp_path, no_ovh_environment, monkeypatch):
    path = conf_file(tmp_path)
    other = "http://127.0.0.1:10/1.0"
    path.write_text(path.read_text() + f"\n[{other}]\napplication_key=ak2\napplication_secret=as2\nconsumer_key=ck2\n")
    assert make_client(other, path)._application_key == "ak2"
    monkeypatch.setenv("OVH_ENDPOINT", other)
    assert make_client(None, path)._endpoint == other


# -- the sandbox's ovh.conf and the official client ----------------------------------------------------------------


def test_the_printed_conf_says_plainly_the_official_client_needs_the_url_registered(tmp_path, no_ovh_environment):
    text = ovh_conf({"endpoint": URL, **KEYS, "project": "p"})
    path = tmp_path / "ovh.conf"
    path.write_text(text)
    assert "InvalidRegion" in text and f'ovh.client.ENDPOINTS["{URL}"] = "{URL}"' in text
    with pytest.raises(InvalidRegion):  # the official client on its own, as the comment says
        ovh.Client(config_file=str(path))


def test_the_official_client_reads_the_printed_conf_once_the_url_is_registered(
    tmp_path, no_ovh_environment, monkeypatch
):
    path = tmp_path / "ovh.conf"
    path.write_text(ovh_conf({"endpoint": URL, **KEYS}))
    monkeypatch.setitem(ovh.client.ENDPOINTS, URL, URL)
    client = ovh.Client(config_file=str(path))
    assert (client._endpoint, client._application_key, client._application_secret) == (URL, "ak1", "as1")
