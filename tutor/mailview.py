"""Reading the Maildir root back: messages, their envelope, their trace headers.

The envelope of a stored copy is recovered from the trace headers the server wrote on
top (Return-Path, our own Received, Delivered-To). Any trace header below them came in
with the message text: it is the client's claim, not the server's record.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.message import Message
from email.parser import BytesParser
from email.policy import compat32
from email.utils import parsedate_to_datetime
from pathlib import Path

from tutor.events import RELAY_FOLDER

_QUEUE_ID = re.compile(r"\bid\s+([A-Za-z0-9]+)")


@dataclass(frozen=True)
class StoredMessage:
    folder: str
    index: int  # 1-based position in the folder, oldest first
    key: str
    path: Path
    raw: bytes
    message: Message
    ours: int  # how many headers at the top the server itself added

    @property
    def ref(self) -> str:
        return f"{self.folder}/{self.index}"

    def header(self, name: str) -> str:
        values = self.message.get_all(name) or []
        return ", ".join(" ".join(str(v).split()) for v in values)

    @property
    def headers(self) -> list[tuple[str, str]]:
        return [(name, str(value)) for name, value in self.message.items()]

    @property
    def server_headers(self) -> list[tuple[str, str]]:
        return self.headers[: self.ours]

    @property
    def claimed_headers(self) -> list[tuple[str, str]]:
        return self.headers[self.ours :]

    @property
    def envelope_sender(self) -> str:
        value = self.header_of_ours("return-path")
        return value.strip().removeprefix("<").removesuffix(">")

    @property
    def envelope_recipient(self) -> str:
        return self.header_of_ours("delivered-to").strip()

    @property
    def queue_id(self) -> str:
        match = _QUEUE_ID.search(" ".join(self.header_of_ours("received").split()))
        return match.group(1) if match else ""

    @property
    def received_line(self) -> str:
        return " ".join(self.header_of_ours("received").split())

    def header_of_ours(self, name: str) -> str:
        for header, value in self.server_headers:
            if header.lower() == name:
                return str(value)
        return ""

    @property
    def date(self) -> str:
        received = self.header_of_ours("received")
        stamp = received.rpartition(";")[2].strip()
        try:
            return parsedate_to_datetime(stamp).strftime("%Y-%m-%d %H:%M:%S")
        except (TypeError, ValueError):
            return ""

    @property
    def body(self) -> bytes:
        _head, sep, body = self.raw.partition(b"\n\n")
        return body if sep else b""


def _count_ours(message: Message) -> int:
    """The server adds Return-Path, Received, [Authentication-Results,] Delivered-To on top."""
    names = [name.lower() for name in message.keys()[:4]]
    if names[:2] != ["return-path", "received"]:
        return 0
    if names[2:3] == ["authentication-results"] and names[3:4] == ["delivered-to"]:
        return 4
    return 3 if names[2:3] == ["delivered-to"] else 0


def folders(root: Path) -> list[str]:
    """Mailbox folders under the root: local mailboxes first, captured relay last."""
    if not root.is_dir():
        return []
    names = sorted(
        p.name for p in root.iterdir() if (p / "new").is_dir() and p.name != RELAY_FOLDER
    )
    if (root / RELAY_FOLDER / "new").is_dir():
        names.append(RELAY_FOLDER)
    return names


def read_folder(root: Path, folder: str) -> list[StoredMessage]:
    entries = []
    for sub in ("new", "cur"):  # Maildir: delivered to new/, moved to cur/ once seen
        directory = root / folder / sub
        if not directory.is_dir():
            continue
        for path in directory.iterdir():
            if path.name.startswith("."):
                continue
            try:
                raw = path.read_bytes()
                mtime = path.stat().st_mtime
            except OSError:
                continue  # moved or removed by a MUA meanwhile
            entries.append((mtime, path.name.split(":")[0], path, raw))
    entries.sort()
    messages = []
    for index, (_, key, path, raw) in enumerate(entries, start=1):
        message = BytesParser(policy=compat32).parsebytes(raw, headersonly=True)
        messages.append(StoredMessage(folder, index, key, path, raw, message, _count_ours(message)))
    return messages


def clear_folder(root: Path, folder: str) -> int:
    """Delete every message of one Maildir folder (new/ and cur/); returns how many."""
    removed = 0
    for sub in ("new", "cur"):
        directory = root / folder / sub
        if not directory.is_dir():
            continue
        for path in directory.iterdir():
            if path.name.startswith(".") or not path.is_file():
                continue
            try:
                path.unlink()
            except FileNotFoundError:
                continue  # a mail program moved or removed it meanwhile
            removed += 1
    return removed


def find(root: Path, ref: str) -> list[StoredMessage]:
    """Messages matching `folder/N`, a queue id, or a Maildir key."""
    folder, slash, number = ref.partition("/")
    if slash:
        if folder not in folders(root):
            return []
        return [m for m in read_folder(root, folder) if str(m.index) == number or m.key == number]
    found = []
    for name in folders(root):
        found += [m for m in read_folder(root, name) if ref in (m.queue_id, m.key)]
    return found
