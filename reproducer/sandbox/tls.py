"""Throwaway TLS material for the sandbox: a private CA, a server and a client certificate.

By default the CA exists only for the lifetime of one fleet and its key never leaves the fleet's directory.
A cloud twin instead keeps one CA for its whole world (:func:`make_ca_files`, made once) and has each fleet's
certificates signed by it (``make_tls_files(..., ca=...)``), as a cloud signs every instance with its CA.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from reproducer.atomic import atomic_write

_VALIDITY = dt.timedelta(days=2)


@dataclass(frozen=True)
class TlsFiles:
    """Paths of the PEM files a fleet hands to servers and clients."""

    ca_cert: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _builder(subject: str, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
    )


@dataclass(frozen=True)
class CaFiles:
    """A CA kept in two PEM files: its certificate and its private key (0600)."""

    cert: Path
    key: Path


def _make_ca(common_name: str = "reproducer sandbox CA") -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = _key()
    cert = (
        _builder(common_name, _name(common_name), key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _make_leaf(
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    name: str,
    usages: list[x509.ObjectIdentifier],
    hosts: Sequence[str] = (),
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = _key()
    addresses = dict.fromkeys(["127.0.0.1", "::1", *hosts])
    alt_names: list[x509.GeneralName] = [
        x509.DNSName("localhost"),
        *(x509.IPAddress(ipaddress.ip_address(a)) for a in addresses),
    ]
    cert = (
        _builder(name, ca_cert.subject, key.public_key())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return key, cert


def _write_pair(directory: Path, stem: str, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> None:
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    key_path = directory / f"{stem}.key"
    key_path.write_bytes(key_pem)
    key_path.chmod(0o600)
    (directory / f"{stem}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def make_ca_files(files: CaFiles, common_name: str) -> CaFiles:
    """Create a CA in ``files`` unless both files exist already; the key file is 0600. Returns ``files``."""
    if files.cert.exists() and files.key.exists():
        return files
    files.cert.parent.mkdir(parents=True, exist_ok=True)
    key, cert = _make_ca(common_name)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    atomic_write(files.key, key_pem.decode("ascii"))  # through mkstemp: 0600 from the start
    atomic_write(files.cert, cert.public_bytes(serialization.Encoding.PEM).decode("ascii"))
    return files


def _load_ca(files: CaFiles) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = serialization.load_pem_private_key(files.key.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{files.key} is not an EC private key")
    return key, x509.load_pem_x509_certificate(files.cert.read_bytes())


def make_tls_files(directory: Path, *, ca: CaFiles | None = None, hosts: Sequence[str] = ()) -> TlsFiles:
    """Create a server certificate (localhost, 127.0.0.1, ::1 and ``hosts``) and a client certificate in ``directory``.

    They are signed by ``ca`` when given (its certificate is copied to ``ca.crt``), else by a new CA made there.
    """
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = _load_ca(ca) if ca else _make_ca()
    (directory / "ca.crt").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    # Servers also present their certificate as clients (replication, cluster bus, Sentinel).
    both = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    server = _make_leaf(ca_key, ca_cert, "localhost", both, hosts)
    _write_pair(directory, "server", *server)
    client = _make_leaf(ca_key, ca_cert, "reproducer client", [ExtendedKeyUsageOID.CLIENT_AUTH])
    _write_pair(directory, "client", *client)
    return TlsFiles(
        ca_cert=directory / "ca.crt",
        server_cert=directory / "server.crt",
        server_key=directory / "server.key",
        client_cert=directory / "client.crt",
        client_key=directory / "client.key",
    )
