"""The world's DKIM keys: made once per data home, kept, and published in the world's DNS.

Two signers (docs/world.md, "DKIM, SPF and DMARC in the world"): smtp.tutor.test signs
what it submits as d=tutor.test s=lesson, and mx.forward.example ARC-seals what it
forwards as d=forward.example s=arc. Each private key is an RSA 2048 PEM file under
`<data home>/dkim/` (mode 0600), made the first time the world starts and never again,
so that a signature made yesterday still verifies and a learner can look the key up.
The public half is a TXT record at `<selector>._domainkey.<domain>` (RFC 6376 §3.6.2);
it is not in dnsdata's static table but added to the zone when it is built, because
each data home has its own key.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from pathlib import Path

from tutor.paths import data_home

KEY_BITS = 2048


@dataclass(frozen=True)
class SigningKey:
    """Who signs with it (d=), the selector (s=), and where its private key is kept."""

    domain: str
    selector: str

    @property
    def record_name(self) -> str:
        """Where verifiers find the public key (RFC 6376 §3.6.2.1)."""
        return f"{self.selector}._domainkey.{self.domain}"

    def path(self, directory: Path | None = None) -> Path:
        return (directory or keys_dir()) / f"{self.record_name}.key"


SUBMISSION_KEY = SigningKey("tutor.test", "lesson")
FORWARDER_KEY = SigningKey("forward.example", "arc")
WORLD_KEYS = (SUBMISSION_KEY, FORWARDER_KEY)


def keys_dir() -> Path:
    return data_home() / "dkim"


def ensure_key(key: SigningKey, directory: Path | None = None) -> bytes:
    """The private key's PEM, made (RSA 2048) and written the first time only."""
    path = key.path(directory)
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    private = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written aside and linked into place: two worlds starting at once keep one key.
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    partial.write_bytes(pem)
    partial.chmod(0o600)
    try:
        os.link(partial, path)
    except FileExistsError:
        pass  # the other one won: its key is the key
    finally:
        partial.unlink()
    return path.read_bytes()


def ensure_keys(directory: Path | None = None) -> dict[SigningKey, bytes]:
    return {key: ensure_key(key, directory) for key in WORLD_KEYS}


def public_record(private_pem: bytes) -> str:
    """The key record's text: `v=DKIM1; k=rsa; p=<SubjectPublicKeyInfo, base64>`."""
    from cryptography.hazmat.primitives import serialization

    private = serialization.load_pem_private_key(private_pem, password=None)
    der = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode('ascii')}"


def existing_keys(directory: Path | None = None) -> dict[SigningKey, bytes]:
    """The keys this data home already has (none made here): for `smtp-tutor dns`."""
    found = {}
    for key in WORLD_KEYS:
        try:
            found[key] = key.path(directory).read_bytes()
        except OSError:
            continue
    return found


def key_records(keys: dict[SigningKey, bytes]) -> list[tuple[str, str]]:
    """Each key's TXT record as (name, text), for the zone to serve (tutor.world.zone). A
    key record is some 410 bytes, split into 255-byte strings; its answer still fits in
    a 512-byte UDP message, and TCP is served as well (tutor.world.dns_server)."""
    return [(key.record_name, public_record(pem)) for key, pem in keys.items()]
