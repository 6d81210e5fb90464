"""What a TLS connection agreed on, and what the server's certificate says, in words.

The client's `TlsInfo` holds the negotiated version and cipher and the certificate as
DER; this module reads the certificate (with `cryptography`, a project dependency) into
the facts a learner should see: subject, names, issuer, validity, fingerprint, whether
it is self-signed and whether anyone checked it, and against which CA. No screen, no network.
"""

from __future__ import annotations

import datetime
import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tutor.client.client import TlsInfo

if TYPE_CHECKING:
    from cryptography.x509 import Certificate, Name


@dataclass(frozen=True)
class CertFacts:
    subject: str  # "CN=mx.tutor.test, O=…", in the certificate's own order
    common_name: str
    names: tuple[str, ...]  # subjectAltName entries, "DNS:mx.tutor.test", "IP:192.0.2.1"
    issuer: str
    not_before: datetime.datetime
    not_after: datetime.datetime
    sha256: str  # "AB:CD:…", the fingerprint `openssl x509 -fingerprint -sha256` prints
    self_signed: bool
    key: str  # "EC secp256r1", "RSA 2048 bits"
    issuer_common_name: str = ""  # "smtp-tutor local CA"

    def expired(self, now: datetime.datetime | None = None) -> bool:
        moment = now or datetime.datetime.now(datetime.UTC)
        return not self.not_before <= moment <= self.not_after


@dataclass(frozen=True)
class TlsFacts:
    version: str
    cipher: str
    cipher_bits: int
    verified: bool
    verify_error: str | None
    server_hostname: str
    cert: CertFacts | None  # None: no certificate, or one that cannot be read
    cert_problem: str = ""  # why `cert` is None
    ca_file: str = ""  # the CA file the certificate was verified against ("": system store)


def fingerprint(der: bytes) -> str:
    """SHA-256 of the DER bytes, as colon-separated upper-case hex pairs."""
    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def cert_facts(der: bytes) -> CertFacts:
    """Read a DER certificate; ValueError if it is not one."""
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import NameOID

    cert = x509.load_der_x509_certificate(der)
    common = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    issuer_common = cert.issuer.get_attributes_for_oid(NameOID.COMMON_NAME)
    names: list[str] = []
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        san = None
    if san is not None:
        names += [f"DNS:{name}" for name in san.get_values_for_type(x509.DNSName)]
        names += [f"IP:{address}" for address in san.get_values_for_type(x509.IPAddress)]
    public = cert.public_key()
    if isinstance(public, ec.EllipticCurvePublicKey):
        key = f"EC {public.curve.name}"
    elif isinstance(public, rsa.RSAPublicKey):
        key = f"RSA {public.key_size} bits"
    else:
        key = type(public).__name__.removesuffix("PublicKey") or "?"
    return CertFacts(
        subject=_name(cert.subject),
        common_name=str(common[0].value) if common else "",
        names=tuple(names),
        issuer=_name(cert.issuer),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        sha256=fingerprint(der),
        self_signed=_self_signed(cert),
        key=key,
        issuer_common_name=str(issuer_common[0].value) if issuer_common else "",
    )


def _name(name: Name) -> str:
    """A distinguished name as written in the certificate: "CN=mx.tutor.test, O=…"."""
    return ", ".join(f"{a.rfc4514_attribute_name}={a.value!s}" for a in name)


def _self_signed(cert: Certificate) -> bool:
    """Issuer equals subject and the certificate's own key verifies its signature."""
    from cryptography.exceptions import InvalidSignature

    if cert.issuer != cert.subject:
        return False
    try:
        cert.verify_directly_issued_by(cert)
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def tls_facts(info: TlsInfo) -> TlsFacts:
    cert: CertFacts | None = None
    problem = ""
    if not info.peer_cert_der:
        problem = "the server sent no certificate"
    else:
        try:
            cert = cert_facts(info.peer_cert_der)
        except ValueError as error:
            problem = f"the certificate cannot be read: {error}"
    return TlsFacts(
        info.version,
        info.cipher,
        info.cipher_bits,
        info.verified,
        info.verify_error,
        info.server_hostname,
        cert,
        problem,
        info.ca_file,
    )


def verification_note(facts: TlsFacts, *, builtin: bool) -> str:
    """What "verified" or "not verified" means here, and what real mail servers do."""
    if facts.verified:
        return _verified_note(facts)
    if facts.cert is not None and facts.cert.self_signed:
        what = (
            "The certificate is self-signed: it vouches for itself, so nothing confirms that "
            f"{facts.server_hostname} is who it claims to be."
        )
    elif builtin:
        what = "The certificate was accepted without checking it."
    else:
        what = "The certificate was accepted without checking it (--insecure)."
    return (
        f"Not verified. {what} The connection is encrypted, but an attacker in the middle "
        "could have presented their own certificate and read everything, passwords "
        "included (/mitm in the sandbox shows it). A mail client MUST verify "
        "(RFC 8314 §5.3, RFC 7817). Between mail servers it is common: STARTTLS on port 25 "
        "is opportunistic (RFC 3207) and usually unverified, and an attacker can even "
        "strip STARTTLS from the EHLO reply. MTA-STS (RFC 8461) and DANE (RFC 7672) let a "
        "domain publish that its MX hosts must use verified TLS."
    )


def _verified_note(facts: TlsFacts) -> str:
    host = facts.server_hostname
    hop = "Only this hop is protected; the next server may receive the message in plaintext."
    if not facts.ca_file:
        return (
            "Verified: the chain leads to a certificate authority this system trusts, and "
            f"the certificate names {host}. {hop}"
        )
    issuer = facts.cert.issuer_common_name if facts.cert is not None else ""
    return (
        f"Verified: the certificate for {host} was signed by the {issuer or 'CA'} you trust "
        f"({facts.ca_file}), and it names {host}. An attacker without that CA's key cannot "
        "pass as this server, so a password sent now reaches only it: what a mail client "
        f"MUST check (RFC 8314 §5.3, RFC 7817). {hop}"
    )
