"""The teaching server's TLS certificate: self-signed for mx.tutor.test, made once.

The key and certificate are cached under the data directory, so every run (and every
learner's `openssl s_client`) sees the same fingerprint. Self-signed on purpose: the
STARTTLS lesson shows what "not verified" means and what real MTAs do about it.
"""

from __future__ import annotations

import datetime
import os
import ssl
from pathlib import Path

from tutor.paths import tls_dir

CERT_NAME = "mx.tutor.test.pem"
KEY_NAME = "mx.tutor.test.key"


def ensure_certificate(
    hostname: str = "mx.tutor.test", directory: Path | None = None
) -> tuple[Path, Path]:
    """Return (certificate, key) paths, creating them the first time."""
    directory = directory or tls_dir()
    cert_path, key_path = directory / CERT_NAME, directory / KEY_NAME
    if cert_path.exists() and key_path.exists():
        return cert_path, key_path
    directory.mkdir(parents=True, exist_ok=True)
    cert_pem, key_pem = _make_self_signed(hostname)
    _write_atomic(key_path, key_pem, mode=0o600)
    _write_atomic(cert_path, cert_pem, mode=0o644)
    return cert_path, key_path


def server_context(
    hostname: str = "mx.tutor.test", directory: Path | None = None
) -> ssl.SSLContext:
    cert_path, key_path = ensure_certificate(hostname, directory)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_path, key_path)
    return context


def _make_self_signed(hostname: str) -> tuple[bytes, bytes]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, hostname),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "smtp-tutor (self-signed, for teaching)"),
        ]
    )
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    temporary = path.with_suffix(path.suffix + f".{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(temporary, path)
