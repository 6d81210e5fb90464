"""The lesson policy: what the teaching server refuses on purpose, decided without a socket.

The session (protocol.py) reads lines and sends replies; these functions only decide,
from the persona and the facts of the session or message, which refusal (a ReplyKey)
applies, None meaning none. SPF and DMARC are evaluated (tutor/world/authresults.py)
and recorded in Authentication-Results, never refused, so no decision about them lives
here (docs/server.md).
"""

from __future__ import annotations

import hmac

from tutor.server.persona import Persona
from tutor.server.replies import ReplyKey

# The Generic Test for Unsolicited Bulk Email: every spam filter refuses it, on purpose.
GTUBE = b"XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"

Triplet = tuple[str, str, str]  # (client address, sender, recipient), lower-cased addresses


def greylist_refusal(
    persona: Persona, seen: set[Triplet], client: str, sender: str, recipient: str
) -> ReplyKey | None:
    """Greylisting (RFC 6647): refuse a triplet's first try; a real client retries.

    The first try is remembered in `seen` (shared by the server's connections), so the
    retry passes at once; real servers make it wait some minutes.
    """
    if not persona.greylist:
        return None
    triplet = (client, sender.lower(), recipient.lower())
    if triplet in seen:
        return None
    seen.add(triplet)
    return ReplyKey.RCPT_GREYLISTED


def spam_refusal(content: bytes) -> ReplyKey | None:
    """A message holding the GTUBE string is refused as spam after DATA."""
    return ReplyKey.DATA_SPAM if GTUBE in content else None


def password_refusal(persona: Persona, login: str, password: str) -> ReplyKey | None:
    """AUTH against the persona's demo accounts; compared in constant time, as a real
    server must, even though these passwords are public."""
    expected = persona.accounts.get(login)
    if expected is not None and hmac.compare_digest(expected.encode(), password.encode()):
        return None
    return ReplyKey.AUTH_FAILED
