"""Endpoint URLs: forms, options, and the refusals that keep passwords out of argv."""

import certifi
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reproducer.data.endpoint import parse_endpoint, redact_url
from reproducer.errors import DataError, InputError


def test_standalone_tls_with_user_db_and_password_from_env():
    ca = certifi.where()
    ep = parse_endpoint(f"valkeys://app@db.example:20185/3?password_env=PW&ca={ca}", environ={"PW": "s3cret"})
    assert (ep.kind, ep.hosts, ep.db, ep.username, ep.password) == (
        "standalone",
        (("db.example", 20185),),
        3,
        "app",
        "s3cret",
    )
    assert ep.tls is not None and ep.tls.ca_file == ca and not ep.tls.insecure
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


@pytest.mark.parametrize(
    "url",
    [
        "valkey://h:0",
        "valkey://h:99999",
        "valkey://h:65536,g:1/0",
        "valkey://[::1",
        "valkey://bad host:1",
        "valkey://h\n:1",
    ],
)
def test_impossible_addresses_are_refused_at_parse_time(url):
    with pytest.raises(InputError) as caught:
        parse_endpoint(url, environ={})
    assert caught.value.hint


@pytest.mark.parametrize(
    "url",
    [
        "valkey://app%3Ahunter2@h:1",
        "valkey://app%3ahunter2@h:1?password_env=NOPE",
        "valkey://h:1?password=hunter2",
        "valkey://h:1?password_env=NOPE&pass=hunter2",
        "valkey://h:0?auth=hunter2",
        "valkey+sentinel://app%3Ahunter2@h:1",
        "valkey://h:1/zero?token=hunter2",
    ],
)
def test_credentials_in_any_url_form_never_reach_a_message(url):
    with pytest.raises(InputError) as caught:
        parse_endpoint(url, environ={})
    assert "hunter2" not in caught.value.message + caught.value.hint


@pytest.mark.parametrize("option", ["ca", "cert", "key"])
def test_missing_or_unusable_tls_files_are_input_errors(tmp_path, option):
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate")
    for path in (tmp_path / "missing.pem", tmp_path, garbage):
        cert = f"&cert={garbage}" if option == "key" else ""
        with pytest.raises(InputError, match=option) as caught:
            parse_endpoint(f"valkeys://h:1?{option}={path}{cert}", environ={})
        assert caught.value.hint, path


def test_password_file_that_is_not_text_is_an_input_error(tmp_path):
    secret = tmp_path / "pw"
    secret.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(InputError, match="password_file"):
        parse_endpoint(f"valkey://u@h:1?password_file={secret}", environ={})


@pytest.mark.parametrize(
    "url",
    [
        "valkey://app:hunter2@h:1",
        "valkey://app%3Ahunter2@h:1/0",
        "valkeys://h:1?password=hunter2&ca=/ca.pem",
        "valkey://h:1;pwd=hunter2?x=1&secret=hunter2",
        "valkey://h:1?hunter2",
        "valkey://h:1#hunter2",
        "valkey://[::1?password=hunter2",
        "hunter2@h:1",
    ],
)
def test_redacted_urls_keep_the_address_and_drop_every_credential(url):
    shown = redact_url(url)
    assert "hunter2" not in shown
    assert "h:1" in shown or "[::1" in shown


@pytest.mark.parametrize("url", ["?ca=valkey://app:hunter2@", "h?password_env=app:hunter2@h", "?cert=u%3Ahunter2@"])
def test_a_secret_inside_a_known_options_value_is_masked(url):
    """Found by the property test below: a URL with no scheme is all query, and its ``ca`` took the credentials."""
    assert "hunter2" not in redact_url(url)
    with pytest.raises(InputError) as caught:
        parse_endpoint(url, environ={})
    assert "hunter2" not in caught.value.message + caught.value.hint


def test_redaction_keeps_options_that_only_name_where_a_secret_is():
    url = "valkeys://h:1?password_env=PW&password_file=/run/pw&ca=/ca.pem"
    assert redact_url(url) == url


URL_PIECES = st.sampled_from(
    ["valkey://", "valkeys://", "valkey+sentinel://", "valkeys+cluster://", "u", "%3A", ":", "@", "h", "[::1]", "[",
     "]", ",", "/", "0", "99999", "?", "&", "=", "ca", "cert", "key", "password_env", "password", "#", ";", "\n", "é"]
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(URL_PIECES, max_size=12).map("".join), st.text(max_size=6))
def test_any_url_parses_or_is_an_input_error(url, noise):
    try:
        endpoint = parse_endpoint(url + noise, environ={})
    except InputError as exc:
        assert exc.hint
        return
    assert all(0 < port <= 65535 for _host, port in endpoint.hosts)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(URL_PIECES, max_size=10).map("".join),
    st.sampled_from(["app:{}@", "app%3A{}@", "app%3a{}@", "{}@"]),
    st.sampled_from(["", "?password={}", "&token={}", "?ca=/x&pass={}"]),
)
def test_a_secret_in_credential_places_never_reaches_a_message(url, userinfo, parameter):
    scheme, slashes, rest = url.rpartition("://")
    hostile = f"{scheme}{slashes}{userinfo.format('hunter2')}{rest}{parameter.format('hunter2')}"
    try:
        parse_endpoint(hostile, environ={})
    except InputError as exc:
        assert "hunter2" not in exc.message + exc.hint, hostile


@pytest.mark.parametrize("url", ["valkey://h:\uff11", "valkey://h:1/\u0663", "valkey://h:\u0663\u0663"])
def test_numbers_in_other_scripts_are_not_ports_or_databases(url):
    with pytest.raises(InputError, match="port|number"):
        parse_endpoint(url, environ={})


def test_a_server_error_never_quotes_the_data_it_was_about():
    import valkey

    from reproducer.data.endpoint import valkey_errors

    failure = valkey.exceptions.ResponseError(
        "Command # 2 (RESTORE session:TOKEN=s3cr3t 0 b'\\x00payload') of pipeline caused error: "
        "unknown subcommand 'TOKEN=s3cr3t'"
    )
    with pytest.raises(DataError) as caught, valkey_errors("copying db 0"):
        raise failure
    assert "s3cr3t" not in caught.value.message and "command 2 of the batch" in caught.value.message
