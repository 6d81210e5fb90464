"""The teaching server's TLS material: a local CA, the certificate it signs, an impostor's.

Made once per data home (under `tls/`) and cached, so every run — and every learner's
`openssl s_client -CAfile …` — sees the same CA and the same fingerprints:

- `smtp-tutor-ca.pem`: the "smtp-tutor local CA" certificate, the file a learner tells a
  client to trust. CA:true with pathlen 0, and name-constrained to `tutor.test` and the
  loopback addresses, so trusting it can vouch for nothing else on the Internet. Its key
  (`smtp-tutor-ca.key`) signs once and stays in the directory, mode 0600.
- `mx.tutor.test.pem` / `.key`: the server certificate (SAN DNS:mx.tutor.test,
  IP:127.0.0.1, IP:::1), signed by that CA.
- `impostor.mx.tutor.test.pem` / `.key`: a self-signed certificate for the same name, made
  with a key of the "attacker"'s own, for the man-in-the-middle demonstration
  (tutor/client/mitm.py). No client that verifies accepts it.

RFC 8314 §5.3 and RFC 7817 require a mail client to verify the server's certificate; a
local CA is how a loopback server can be verified for real (see docs/sandbox.md).
Material from before the CA (a self-signed server certificate) is replaced cleanly.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import os
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tutor.paths import tls_dir

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey

CA_NAME = "smtp-tutor local CA"
CA_FILE = "smtp-tutor-ca.pem"
CA_KEY = "smtp-tutor-ca.key"
CERT_NAME = "mx.tutor.test.pem"
KEY_NAME = "mx.tutor.test.key"
IMPOSTOR_CERT = "impostor.mx.tutor.test.pem"
IMPOSTOR_KEY = "impostor.mx.tutor.test.key"
IMPOSTOR_ORG = "an attacker in the middle (smtp-tutor demonstration)"
PERMITTED_DOMAIN = "tutor.test"  # the CA's name constraint: the tutor's own names only
LOOPBACK = ("127.0.0.1", "::1")
CHECKED_STAMP = "checked"  # the files as they were when the certificate check last passed
_VALID_DAYS = 3650


@dataclass(frozen=True)
class TlsMaterial:
    """Where the files are; every key file is mode 0600."""

    ca_file: Path
    ca_key: Path
    cert: Path
    key: Path
    impostor_cert: Path
    impostor_key: Path


class TeachingTlsContext(ssl.SSLContext):
    """A server context that remembers the CA file a client should trust for it."""

    ca_file: Path | None = None


def material_paths(hostname: str = "mx.tutor.test", directory: Path | None = None) -> TlsMaterial:
    directory = directory or tls_dir()
    return TlsMaterial(
        ca_file=directory / CA_FILE,
        ca_key=directory / CA_KEY,
        cert=directory / f"{hostname}.pem",
        key=directory / f"{hostname}.key",
        impostor_cert=directory / f"impostor.{hostname}.pem",
        impostor_key=directory / f"impostor.{hostname}.key",
    )


def ensure_material(hostname: str = "mx.tutor.test", directory: Path | None = None) -> TlsMaterial:
    """Return the material's paths, creating (or cleanly replacing) what is missing."""
    paths = material_paths(hostname, directory)
    paths.cert.parent.mkdir(parents=True, exist_ok=True)
    if not _complete(paths):
        _make_all(hostname, paths)
    return paths


def ensure_certificate(
    hostname: str = "mx.tutor.test", directory: Path | None = None
) -> tuple[Path, Path]:
    """Return (certificate, key) paths of the CA-signed server certificate."""
    paths = ensure_material(hostname, directory)
    return paths.cert, paths.key


def ca_file(hostname: str = "mx.tutor.test", directory: Path | None = None) -> Path:
    """The CA certificate to trust for the teaching server (created if need be)."""
    return ensure_material(hostname, directory).ca_file


def server_context(
    hostname: str = "mx.tutor.test", directory: Path | None = None, *, impostor: bool = False
) -> TeachingTlsContext:
    """The teaching server's context; `impostor` presents the attacker's certificate."""
    paths = ensure_material(hostname, directory)
    context = TeachingTlsContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if impostor:
        context.load_cert_chain(paths.impostor_cert, paths.impostor_key)
    else:
        context.load_cert_chain(paths.cert, paths.key)
        context.ca_file = paths.ca_file
    return context


def trusted_ca(context: ssl.SSLContext | None, hostname: str = "mx.tutor.test") -> Path:
    """The CA file for a teaching server run with `context` (None: the data home's)."""
    if isinstance(context, TeachingTlsContext) and context.ca_file is not None:
        return context.ca_file
    return ca_file(hostname)


# --- making the material --------------------------------------------------------------------


def _complete(paths: TlsMaterial) -> bool:
    """All files present, and the server certificate really issued by this CA.

    The check parses both certificates with cryptography (some 20 ms of imports in every
    server's start), so once it passes, what the six files looked like then (size,
    modification time, inode) is kept in CHECKED_STAMP; files that still look the same
    are not checked again. Any rewrite, by us or anyone, changes the stamp."""
    try:
        stamp = _file_stamp(paths)
    except OSError:  # a file is missing
        return False
    checked = paths.ca_file.parent / CHECKED_STAMP
    with contextlib.suppress(OSError, UnicodeDecodeError):
        if checked.read_text(encoding="utf-8") == stamp:
            return True
    if not _issued_by_our_ca(paths):
        return False
    with contextlib.suppress(OSError):  # a read-only home: checked again next time
        checked.write_text(stamp, encoding="utf-8")
    return True


def _file_stamp(paths: TlsMaterial) -> str:
    files = (paths.ca_file, paths.ca_key, paths.cert, paths.key)
    lines = []
    for path in (*files, paths.impostor_cert, paths.impostor_key):
        info = path.stat()
        lines.append(f"{path.name} {info.st_size} {info.st_mtime_ns} {info.st_ino}")
    return "\n".join(lines) + "\n"


def _issued_by_our_ca(paths: TlsMaterial) -> bool:
    from cryptography import x509

    try:
        ca = x509.load_pem_x509_certificate(paths.ca_file.read_bytes())
        cert = x509.load_pem_x509_certificate(paths.cert.read_bytes())
        cert.verify_directly_issued_by(ca)
    except Exception:  # an old self-signed certificate, a torn write: make it all again
        return False
    return True


def _make_all(hostname: str, paths: TlsMaterial) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = _ca_certificate(ca_key)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = _server_certificate(hostname, server_key, ca_cert, ca_key)
    impostor_key = ec.generate_private_key(ec.SECP256R1())
    impostor_cert = _impostor_certificate(hostname, impostor_key)
    # Keys first, certificates last: a crash in between leaves material `_complete` rejects.
    _write_atomic(paths.ca_key, _key_pem(ca_key), mode=0o600)
    _write_atomic(paths.key, _key_pem(server_key), mode=0o600)
    _write_atomic(paths.impostor_key, _key_pem(impostor_key), mode=0o600)
    _write_atomic(paths.impostor_cert, _cert_pem(impostor_cert), mode=0o644)
    _write_atomic(paths.ca_file, _cert_pem(ca_cert), mode=0o644)
    _write_atomic(paths.cert, _cert_pem(server_cert), mode=0o644)


def _validity() -> tuple[datetime.datetime, datetime.datetime]:
    now = datetime.datetime.now(datetime.UTC)
    return now - datetime.timedelta(days=1), now + datetime.timedelta(days=_VALID_DAYS)


def _ca_certificate(key: EllipticCurvePrivateKey) -> x509.Certificate:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, CA_NAME),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "smtp-tutor (this machine only)"),
        ]
    )
    permitted: list[x509.GeneralName] = [x509.DNSName(PERMITTED_DOMAIN)]
    permitted += [x509.IPAddress(ipaddress.ip_network(address)) for address in LOOPBACK]
    start, end = _validity()
    public = key.public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.NameConstraints(permitted, None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )


def _server_certificate(
    hostname: str,
    key: EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    ca_key: EllipticCurvePrivateKey,
) -> x509.Certificate:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    names: list[x509.GeneralName] = [x509.DNSName(hostname)]
    names += [x509.IPAddress(ipaddress.ip_address(address)) for address in LOOPBACK]
    start, end = _validity()
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )


def _impostor_certificate(hostname: str, key: EllipticCurvePrivateKey) -> x509.Certificate:
    """Self-signed, the same name: what an attacker can make without the CA's key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, hostname),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, IMPOSTOR_ORG),
        ]
    )
    start, end = _validity()
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )


def _key_pem(key: EllipticCurvePrivateKey) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _cert_pem(cert: x509.Certificate) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return cert.public_bytes(serialization.Encoding.PEM)


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    temporary = path.with_suffix(path.suffix + f".{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(temporary, mode)  # the umask may have narrowed it; a key must never widen
    os.replace(temporary, path)
