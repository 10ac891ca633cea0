"""The emulator's signature check against the reference test vectors (docs/reference/ovh-api.md#signature)."""

from reproducer.sandbox.ovh_api import signature

AS = "EXEgWIz07P0HYwtQDs7cNIqCiQaWSuHF"
CK = "MtSwSrPpNjqfVSmJhLbPyr2i45lSwPU1"
URL = "https://eu.api.ovh.com/1.0/cloud/project/0123456789abcdef0123456789abcdef/database/valkey"


def test_get_without_body_matches_reference_vector():
    assert signature(AS, CK, "GET", URL, "", "1718000000") == "$1$65ab8f5ab70fece5e33d095fb40d343cd24af1a9"


def test_post_with_body_matches_reference_vector():
    expected = "$1$4a93a4504efa9d6ab649fd9a88921ccc8da1bfa3"
    assert signature(AS, CK, "POST", URL, '{"description":"demo"}', "1718000000") == expected


def test_method_is_upper_cased_and_every_part_counts():
    base = signature(AS, CK, "get", URL, "", "1718000000")
    assert base == signature(AS, CK, "GET", URL, "", "1718000000")
    assert base != signature(AS, CK, "GET", URL, "", "1718000001")
    assert base != signature(AS + "x", CK, "GET", URL, "", "1718000000")
