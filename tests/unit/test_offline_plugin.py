"""The provider processes' TLS certificate, made by the first and kept in the mirror's home (``offline.plugin``).

The file is an input of every provider start: anything but a private regular file holding the three fields is
ignored (a regular file is replaced by a private one of ours; a link is never followed nor replaced).
"""

from __future__ import annotations

import os
import stat

import pytest

from reproducer.offline.plugin import CERTIFICATE_FILE, provider_certificate, read_certificate


def test_the_certificate_is_made_once_and_private(tmp_path):
    first = provider_certificate(tmp_path)
    path = tmp_path / CERTIFICATE_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and read_certificate(path) == first
    assert first.key_pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    assert first.cert_pem.startswith(b"-----BEGIN CERTIFICATE-----") and first.chain_der[:1] == b"\x30"
    assert provider_certificate(tmp_path) == first
    assert [entry.name for entry in tmp_path.iterdir()] == [CERTIFICATE_FILE]


def test_without_a_writable_home_each_start_makes_its_own(tmp_path):
    missing = tmp_path / "missing"
    first, second = provider_certificate(missing), provider_certificate(missing)
    assert first != second and not missing.exists()


def test_a_certificate_for_localhost_valid_for_years(tmp_path):
    from datetime import UTC, datetime, timedelta

    from cryptography import x509

    certificate = provider_certificate(tmp_path)
    parsed = x509.load_der_x509_certificate(certificate.chain_der)
    assert parsed.not_valid_after_utc > datetime.now(UTC) + timedelta(days=365 * 5)
    names = parsed.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"not json",
        b"[]",
        b'{"key_pem": "k", "cert_pem": "c"}',
        b'{"key_pem": 1, "cert_pem": "c", "chain_der": "AA=="}',
        b'{"key_pem": "k", "cert_pem": "c", "chain_der": "***"}',
        b'{"key_pem": "k", "cert_pem": "c", "chain_der": "MAA="}',
        b'{"key_pem": "-----BEGIN PRIVATE KEY-----\\nx", "cert_pem": "-----BEGIN CERTIFICATE-----\\nx", '
        b'"chain_der": ""}',
        b'{"key_pem": "k", "cert_pem": "c", "chain_der": "' + b"A" * 70000 + b'"}',
    ],
)
def test_a_malformed_file_is_ignored(tmp_path, content):
    path = tmp_path / CERTIFICATE_FILE
    path.write_bytes(content)
    path.chmod(0o600)
    assert read_certificate(path) is None
    made = provider_certificate(tmp_path)
    assert read_certificate(path) == made and stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_file_others_can_read_is_ignored_and_replaced(tmp_path):
    old = provider_certificate(tmp_path)
    path = tmp_path / CERTIFICATE_FILE
    path.chmod(0o644)
    assert read_certificate(path) is None
    new = provider_certificate(tmp_path)
    assert new != old and stat.S_IMODE(path.stat().st_mode) == 0o600 and read_certificate(path) == new


def test_a_link_or_a_directory_is_not_followed(tmp_path):
    (tmp_path / "elsewhere").mkdir()
    provider_certificate(tmp_path / "elsewhere")
    elsewhere = tmp_path / "elsewhere" / CERTIFICATE_FILE
    before = elsewhere.read_bytes()
    home = tmp_path / "home"
    home.mkdir()
    (home / CERTIFICATE_FILE).symlink_to(elsewhere)
    assert read_certificate(home / CERTIFICATE_FILE) is None
    made = provider_certificate(home)  # a link it did not make is left alone, never written through or replaced
    assert made is not None and (home / CERTIFICATE_FILE).is_symlink()
    assert elsewhere.read_bytes() == before
    assert sorted(os.listdir(home)) == [CERTIFICATE_FILE]
    (tmp_path / "dir" / CERTIFICATE_FILE).mkdir(parents=True)
    assert read_certificate(tmp_path / "dir" / CERTIFICATE_FILE) is None
    assert read_certificate(tmp_path / "missing.json") is None
