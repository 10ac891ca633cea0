"""The endpoint scheme registry: every listed scheme parses to what it says, and the help text names them all."""

import re

import pytest

from reproducer.data.endpoint import OPTIONS, SCHEMES, describe_options, describe_schemes, parse_endpoint
from reproducer.errors import InputError


def _example(form: str) -> str:
    """A concrete URL for a documented form: placeholders filled, optional parts dropped."""
    url = re.sub(r"\[[^]]*\]", "", form)
    url = url.replace("<primary>", "mymaster")
    return re.sub(r"\b(?:host|h\d|seed\d):(?:port|p\d)", "127.0.0.1:6379", url)


@pytest.mark.parametrize("name", sorted(SCHEMES))
def test_each_registered_form_parses_to_its_kind_and_tls(name):
    scheme = SCHEMES[name]
    url = _example(scheme.form)
    assert url.startswith(f"{name}://"), url
    endpoint = parse_endpoint(url, environ={})
    assert endpoint.kind == scheme.kind
    assert (endpoint.tls is not None) == scheme.tls
    assert (endpoint.primary_name == "mymaster") == (scheme.kind == "sentinel")


def test_every_valkey_scheme_has_its_redis_alias():
    aliases = {name: scheme for name, scheme in SCHEMES.items() if scheme.alias_of is not None}
    assert {scheme.alias_of for scheme in aliases.values()} == {n for n, s in SCHEMES.items() if s.alias_of is None}
    for name, alias in aliases.items():
        original = SCHEMES[alias.alias_of]
        assert (alias.kind, alias.tls) == (original.kind, original.tls)
        assert name.startswith("redis")


def test_help_text_names_every_scheme_and_option():
    text = describe_schemes()
    assert len(text.splitlines()) == sum(1 for s in SCHEMES.values() if s.alias_of is None) + 1
    for name in SCHEMES:
        assert f"{name}://" in text
    options = describe_options("; ")
    for option in OPTIONS:
        assert f"?{option}=" in options


def test_unknown_scheme_hint_lists_the_registered_schemes():
    with pytest.raises(InputError) as caught:
        parse_endpoint("memcached://127.0.0.1:11211", environ={})
    for name, scheme in SCHEMES.items():
        assert (f"{name}://" in caught.value.hint) == (scheme.alias_of is None)
