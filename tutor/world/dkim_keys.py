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

import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TXT
import dns.rrset

from tutor.paths import data_home
from tutor.world.zone import TTL, Zone

KEY_BITS = 2048
_TXT_CHUNK = 255  # one TXT character-string holds at most 255 bytes (RFC 1035 §3.3)


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


def add_key_records(zone: Zone, keys: dict[SigningKey, bytes]) -> Zone:
    """The zone with each key's TXT record added (in place; returned for chaining). A key
    record is some 400 bytes: a UDP answer with it is still under 512, but dig's default
    EDNS buffer and a TCP retry are both served (tutor.world.dns_server)."""
    for key, pem in keys.items():
        name = dns.name.from_text(key.record_name)
        data = public_record(pem).encode("ascii")
        chunks = [data[i : i + _TXT_CHUNK] for i in range(0, len(data), _TXT_CHUNK)]
        rdata = dns.rdtypes.ANY.TXT.TXT(dns.rdataclass.IN, dns.rdatatype.TXT, chunks)
        zone.records.setdefault(name, {})[dns.rdatatype.TXT] = dns.rrset.from_rdata_list(
            name, TTL, [rdata]
        )
    return zone
