"""The bytes on the wire beside what they meant: the client's tap, grouped and dumped.

Before STARTTLS what SMTP says and what crosses the wire are the same bytes; after it the
wire carries TLS records (ciphertext) and only the endpoints see the SMTP text. These
helpers turn tap records into that picture, with a bounded hex dump whose printable
column holds only ASCII 0x20-0x7e, so it is always safe to show. Stdlib only.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from tutor.client.client import Direction, TapRecord

DUMP_LIMIT = 64  # bytes of each side shown in a dump
ROW = 16


@dataclass(frozen=True)
class WireSide:
    """Consecutive tap records of one direction: the SMTP bytes and the wire bytes."""

    direction: Direction
    plaintext: bytes
    wire: bytes
    tls: bool
    not_kept: int = 0  # wire bytes the bounded tap counted but did not keep
    not_kept_text: int = 0  # of which SMTP text


def sides(records: Iterable[TapRecord]) -> list[WireSide]:
    """Merge consecutive records that went the same way with the same protection."""
    out: list[WireSide] = []
    for record in records:
        last = out[-1] if out else None
        if last is not None and (last.direction, last.tls) == (record.direction, record.tls):
            out[-1] = WireSide(
                last.direction,
                last.plaintext + record.plaintext,
                last.wire + record.wire,
                last.tls,
                last.not_kept + record.not_kept,
                last.not_kept_text + record.not_kept_text,
            )
        else:
            out.append(
                WireSide(
                    record.direction,
                    record.plaintext,
                    record.wire,
                    record.tls,
                    record.not_kept,
                    record.not_kept_text,
                )
            )
    return out


def hex_bytes(data: bytes) -> str:
    return " ".join(f"{byte:02x}" for byte in data)


def printable(data: bytes) -> str:
    return "".join(chr(byte) if 0x20 <= byte < 0x7F else "." for byte in data)


def hexdump(data: bytes, limit: int = DUMP_LIMIT) -> list[str]:
    """`0000  16 03 03 …  |....|` rows for the first `limit` bytes, then how many were left."""
    rows = []
    shown = data[:limit]
    for offset in range(0, len(shown), ROW):
        chunk = shown[offset : offset + ROW]
        rows.append(f"{offset:04x}  {hex_bytes(chunk):<{ROW * 3 - 1}}  |{printable(chunk)}|")
    if len(data) > limit:
        rows.append(f"… {len(data) - limit} more bytes")
    return rows


def ciphertext_summary(records: Iterable[TapRecord], first: int = 12) -> str | None:
    """One line for an encrypted exchange: the bytes that left for the SMTP text sent."""
    sent = [r for r in records if r.tls and r.direction == "sent" and r.plaintext]
    if not sent:
        return None
    wire = b"".join(r.wire for r in sent)
    size = sum(r.size for r in sent)
    text = sum(r.text_size for r in sent)
    more = " …" if size > first else ""
    return (
        f"on the wire: {size} bytes of ciphertext ({hex_bytes(wire[:first])}{more}) "
        f"for your {text} bytes of SMTP text"
    )
