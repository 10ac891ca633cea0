"""The go-plugin side of a provider process: gRPC server, TLS, handshake line; cheaper than ``tf.runner``.

``tf.runner.run_provider`` imports ``tf.provider``/``tf.function`` (whose servicer we replace anyway) and
``cryptography`` (to load or make its TLS certificate) at every provider start, about a fifth of the CPU of a start;
Terraform starts a provider several times per command. Here the server is ``tf.runner``'s (the same services,
handshake line and shutdown) without those imports, and the certificate is made by the first provider started with
a HOME (the mirror's ``home`` directory) and kept there (``plugin-tls.json``, mode 0600) for the next ones.
"""

# mypy: disable-error-code="import-untyped"
from __future__ import annotations

import base64
import contextlib
import json
import os
import stat
import tempfile
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import Any

from reproducer.atomic import atomic_write
from reproducer.errors import ReproducerError

#: The certificate file in the provider processes' HOME (the mirror's ``home`` directory).
CERTIFICATE_FILE = "plugin-tls.json"
_VALID_DAYS = 3650
_STOP_METHODS = frozenset({"/tfplugin6.Provider/StopProvider", "/plugin.GRPCController/Shutdown"})


@dataclass(frozen=True)
class Certificate:
    """The provider's self-signed server certificate: PEM key and certificate, and the DER chain of the handshake."""

    key_pem: bytes
    cert_pem: bytes
    chain_der: bytes


def provider_certificate(home: Path) -> Certificate:
    """The certificate kept in ``home``, or a new one, kept there (when ``home`` is writable) for the next starts.

    The certificate is only ever presented over the plugin's unix socket to the Terraform that started the
    provider, which pins it from the handshake line (go-plugin AutoMTLS); its key never leaves ``home``.
    """
    path = Path(home) / CERTIFICATE_FILE
    found = read_certificate(path)
    if found is None:
        found = Certificate(*_self_signed())
        with contextlib.suppress(OSError, ReproducerError):
            _keep(path, found)
    return found


def _keep(path: Path, certificate: Certificate) -> None:
    """Write ``certificate`` to ``path`` (0600) the project's one way: a scratch file renamed over a regular file.

    A link or anything else that is not a regular file at ``path`` is left alone (the certificate then lives only in
    this process): it was not made here.
    """
    document = {
        "key_pem": certificate.key_pem.decode(),
        "cert_pem": certificate.cert_pem.decode(),
        "chain_der": base64.b64encode(certificate.chain_der).decode(),
    }
    atomic_write(path, json.dumps(document))


def read_certificate(path: Path) -> Certificate | None:
    """The certificate stored at ``path``, or None when it is missing, not a private regular file, or malformed."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode) or info.st_mode & 0o077 or info.st_size > 65536:
            return None
        document = json.loads(os.read(descriptor, 65537))
        found = Certificate(
            document["key_pem"].encode(),
            document["cert_pem"].encode(),
            base64.b64decode(document["chain_der"], validate=True),
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    finally:
        os.close(descriptor)
    well_formed = found.key_pem.startswith(b"-----BEGIN PRIVATE KEY-----\n") and found.cert_pem.startswith(
        b"-----BEGIN CERTIFICATE-----\n"
    )
    return found if well_formed and found.chain_der else None


def _self_signed() -> tuple[bytes, bytes, bytes]:
    """A P-256 key and a self-signed ``localhost`` certificate (PEM key, PEM certificate, DER certificate)."""
    from datetime import datetime, timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.now(UTC)
    usage = x509.KeyUsage(True, False, False, False, False, True, False, False, False)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(seconds=1))
        .not_valid_after(now + timedelta(days=_VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(usage, critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=True
        )
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return (
        key_pem,
        certificate.public_bytes(serialization.Encoding.PEM),
        certificate.public_bytes(serialization.Encoding.DER),
    )


class _Stopper:
    """A gRPC interceptor that stops the server once ``StopProvider`` or go-plugin's ``Shutdown`` has answered."""

    def __init__(self) -> None:
        self.stopped = False
        self.server: Any = None

    def intercept_service(self, continuation: Any, details: Any) -> Any:
        """Answer the call, then stop the server if it asked to."""
        result = continuation(details)
        if details.method in _STOP_METHODS:
            self.stopped = True
            if self.server is not None:
                self.server.stop(grace=0)
        return result


def run_provider(servicer: Any, certificate: Certificate) -> None:
    """Serve ``servicer`` as Terraform's provider plugin until Terraform stops it (or SIGINT).

    As ``tf.runner.run_provider``: a unix socket in a private temporary directory, TLS with ``certificate``,
    the ``Provider``, ``GRPCController`` and ``GRPCStdio`` services, the handshake line on stdout.
    """
    from concurrent import futures

    import grpc
    from tf.gen import grpc_controller_pb2 as controller_pb
    from tf.gen import grpc_controller_pb2_grpc as controller_rpc
    from tf.gen import grpc_stdio_pb2_grpc as stdio_rpc
    from tf.gen import tfplugin_pb2_grpc as rpc

    stopper = _Stopper()
    server = grpc.server(thread_pool=futures.ThreadPoolExecutor(max_workers=10), interceptors=[stopper])
    stopper.server = server
    rpc.add_ProviderServicer_to_server(servicer, server)

    class Controller(controller_rpc.GRPCControllerServicer):  # type: ignore[misc]
        def Shutdown(self, request: Any, context: Any) -> Any:
            stopper.stopped = True
            return controller_pb.Empty()

    class Stdio(stdio_rpc.GRPCStdioServicer):  # type: ignore[misc]
        def StreamStdio(self, request: Any, context: Any) -> Any:
            return iter([])

    controller_rpc.add_GRPCControllerServicer_to_server(Controller(), server)
    stdio_rpc.add_GRPCStdioServicer_to_server(Stdio(), server)
    with tempfile.TemporaryDirectory() as scratch:
        socket_path = f"{scratch}/py-tf-plugin.sock"
        credentials = grpc.ssl_server_credentials([(certificate.key_pem, certificate.cert_pem)])
        server.add_secure_port(f"unix://{socket_path}", credentials)
        server.start()
        chain = base64.b64encode(certificate.chain_der).decode().rstrip("=")
        print(f"1|6|unix|{socket_path}|grpc|{chain}", flush=True)
        try:
            while server.wait_for_termination(0.05):
                if stopper.stopped:
                    break
        except KeyboardInterrupt:
            server.stop(grace=0.5)


def serve_provider(servicer: Any) -> None:
    """Serve ``servicer`` with :func:`run_provider` and the certificate of ``$HOME`` (:func:`provider_certificate`)."""
    run_provider(servicer, provider_certificate(Path(os.environ.get("HOME") or "/nonexistent")))
