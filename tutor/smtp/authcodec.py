"""Base64 for SMTP AUTH by hand: build the PLAIN argument, decode what a client sent.

AUTH PLAIN (RFC 4616 §2) sends base64("authzid NUL user NUL password"); AUTH LOGIN
answers two 334 challenges with base64(user) and base64(password). Base64 (RFC 4648) is
an encoding, not encryption: anyone who sees it can undo it, which is why a server
allows these mechanisms only under TLS (RFC 4954 §4, §6). Stdlib only.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

NUL_TYPED = "\\0"  # what a learner types for a NUL byte, as in printf '\0you\0pass'


def shown(data: bytes) -> str:
    """Decoded bytes as text, a NUL written as \\0 (the rest is made visible by the UI)."""
    return data.decode("utf-8", "backslashreplace").replace("\0", NUL_TYPED)


def encode(text: str) -> str:
    """base64 of the UTF-8 bytes of `text`; a typed \\0 stands for a NUL byte."""
    return base64.b64encode(text.replace(NUL_TYPED, "\0").encode("utf-8")).decode("ascii")


def decode(value: str) -> bytes | None:
    """Strict base64 (the alphabet, padding, whole groups); None if `value` is not that."""
    value = value.strip()
    if not value or len(value) % 4:
        return None
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None


def readable(data: bytes) -> bool:
    """Text a person typed (UTF-8, printable, NUL and tab allowed), not random bytes."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(ch.isprintable() or ch in "\0\t" for ch in text)


@dataclass(frozen=True)
class B64Report:
    text: str  # what was typed
    encoded: str  # its base64
    decoded: bytes | None  # if what was typed is itself base64 of readable text


def b64_report(text: str) -> B64Report:
    decoded = decode(text)
    if decoded is not None and not readable(decoded):
        decoded = None  # "test" is valid base64 too, of three random-looking bytes
    return B64Report(text, encode(text), decoded)


def auth_plain(user: str, password: str, authzid: str = "") -> str:
    """The AUTH PLAIN argument: base64(authzid NUL user NUL password), RFC 4616 §2."""
    raw = f"{authzid}\0{user}\0{password}".encode()
    return base64.b64encode(raw).decode("ascii")


@dataclass(frozen=True)
class AuthDecoding:
    """One base64 value a client sent during AUTH, decoded."""

    mechanism: str
    value: str
    decoded: bytes | None  # None: not valid base64
    meaning: str  # "NUL user NUL password", "the user name", "the password", …


def decode_auth(mechanism: str, value: str, answer: int) -> AuthDecoding | None:
    """Decode the `answer`-th value sent for `mechanism` (the initial response is 0).

    None for a cancelled exchange ("*") and for mechanisms whose values hold no
    credentials in the clear.
    """
    value = value.strip()
    if value in ("", "*", "="):
        return None
    mechanism = mechanism.upper()
    if mechanism == "PLAIN":
        meaning = "authorization identity NUL user NUL password"
    elif mechanism == "LOGIN":
        meaning = "the user name" if answer == 0 else "the password"
    else:
        return None
    return AuthDecoding(mechanism, value, decode(value), meaning)


def auth_note(decoding: AuthDecoding, *, tls: bool) -> str:
    """Base64 is not encryption: what the learner just sent, decoded, and who could read it."""
    if decoding.decoded is None:
        return f"That is not valid base64 ({decoding.mechanism} expects {decoding.meaning})."
    sent = f'You sent base64 of "{shown(decoding.decoded)}" ({decoding.meaning}).'
    if tls:
        return (
            f"{sent} Anyone who sees these bytes can decode them (/b64 does); here TLS "
            "hid them from the network (/wire shows the ciphertext). PLAIN and LOGIN "
            "are safe only inside TLS."
        )
    return (
        f"{sent} It crossed the network unencrypted: anyone on the path can decode it. "
        "That is why servers require TLS first (RFC 4954 §4); a careful client never "
        "sends a password before STARTTLS, whatever the server would have said."
    )
