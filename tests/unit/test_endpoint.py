"""Endpoint URLs: forms, options, and the refusals that keep passwords out of argv."""

import pytest

from reproducer.data.endpoint import parse_endpoint
from reproducer.errors import InputError


def test_standalone_tls_with_user_db_and_password_from_env():
    ep = parse_endpoint("valkeys://app@db.example:20185/3?password_env=PW&ca=/ca.pem", environ={"PW": "s3cret"})
    assert (ep.kind, ep.hosts, ep.db, ep.username, ep.password) == (
        "standalone",
        (("db.example", 20185),),
        3,
        "app",
        "s3cret",
    )
    assert ep.tls is not None and ep.tls.ca_file == "/ca.pem" and not ep.tls.insecure
    assert "s3cret" not in repr(ep) and "s3cret" not in str(ep)


def test_sentinel_and_cluster_forms():
    sentinel = parse_endpoint("valkey+sentinel://10.0.0.1:26379,10.0.0.2:26379/mymaster", environ={})
    assert sentinel.kind == "sentinel" and sentinel.primary_name == "mymaster" and len(sentinel.hosts) == 2
    cluster = parse_endpoint("valkeys+cluster://a:7000,b:7001?insecure=1", environ={})
    assert cluster.kind == "cluster" and cluster.tls.insecure and cluster.hosts == (("a", 7000), ("b", 7001))
    assert parse_endpoint("rediss://h:1", environ={}).tls is not None


def test_password_from_file(tmp_path):
    secret = tmp_path / "pw"
    secret.write_text("from-file\n")
    assert parse_endpoint(f"valkey://u@h:1?password_file={secret}", environ={}).password == "from-file"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("valkey://u:hunter2@h:1", "password is written in the endpoint URL"),
        ("http://h:1", "unsupported endpoint scheme"),
        ("valkey://h:1?password_env=NOPE", "NOPE"),
        ("valkey://h:1?colour=red", "unknown endpoint option"),
        ("valkey://h:port", "bad port"),
        ("valkey+sentinel://h:1", "no primary name"),
        ("valkey://h:1/zero", "must be a number"),
        ("valkey://h:1?password_file=/nonexistent/pw", "cannot read password_file"),
    ],
)
def test_bad_urls_name_the_problem(url, message):
    with pytest.raises(InputError, match=message) as caught:
        parse_endpoint(url, environ={})
    assert "hunter2" not in caught.value.message and caught.value.hint
