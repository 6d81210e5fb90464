"""Reading the Maildir root back: messages, their envelope, their trace headers.

The envelope of a stored copy is recovered from the trace headers the server wrote on
top (Return-Path, our own Received, Delivered-To; a captured relay copy has no
Return-Path, RFC 5321 §4.4, and its sender is read from Received's envelope-from). Any
trace header below them came in with the message text: it is the client's claim, not the
server's record.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from functools import cached_property
from pathlib import Path

from tutor.errors import FileProblem, reason
from tutor.paths import NotAFile, home_note, read_file
from tutor.smtp.envelope import Comparison
from tutor.smtp.events import RELAY_FOLDER
from tutor.smtp.headers import (
    Field,
    HeaderSection,
    body_lines,
    decode_words,
    first_fields,
    header_section,
    squeezed,
)

_QUEUE_ID = re.compile(r"\bid\s+([A-Za-z0-9]+)")
_ENVELOPE_FROM = re.compile(r"\(envelope-from <([^>]*)>\)")


@dataclass(frozen=True)
class StoredMessage:
    folder: str
    index: int  # 1-based position in the folder, oldest first
    key: str
    path: Path
    raw: bytes
    # Why this entry of new/ or cur/ is no readable message (unreadable, a FIFO, a
    # symlink loop); "" for a message. Listed, marked, so that nothing is hidden.
    problem: str = ""

    @property
    def ref(self) -> str:
        return f"{self.folder}/{self.index}"

    @property
    def root(self) -> Path:
        """The Maildir root: ROOT/folder/new/key."""
        return self.path.parent.parent.parent

    @cached_property
    def section(self) -> HeaderSection:
        """The header section as stored (up to the first empty line; the body unread)."""
        return header_section(self.raw)

    @property
    def fields(self) -> tuple[Field, ...]:
        return self.section.fields

    @cached_property
    def _top(self) -> tuple[Field, ...]:
        """The fields the server may have added on top, read without the rest: listing a
        folder or finding a queue id never parses a long header below them."""
        return first_fields(self.raw, _MOST_OURS)

    @cached_property
    def ours(self) -> int:
        """How many fields at the top the server itself added."""
        return _count_ours(self._top, relayed=self.folder == RELAY_FOLDER)

    def header(self, name: str) -> str:
        """Every field of that name, unfolded, UTF-8 decoded (encoded-words left as sent)."""
        wanted = name.lower()
        return ", ".join(squeezed(f.value) for f in self.fields if f.name.lower() == wanted)

    def header_size(self, name: str) -> int:
        """The bytes every field of that name takes in the file (a value is read from its
        first headers.VALUE_LIMIT bytes only)."""
        wanted = name.lower()
        return sum(f.size for f in self.fields if f.name.lower() == wanted)

    def shown_header(self, name: str) -> str:
        """The same with RFC 2047 encoded-words decoded, for display only."""
        return decode_words(self.header(name))

    @property
    def envelope_sender(self) -> str:
        if self.folder == RELAY_FOLDER:
            match = _ENVELOPE_FROM.search(self.received_line)
            return match.group(1) if match else ""
        value = self.header_of_ours("return-path")
        return value.strip().removeprefix("<").removesuffix(">")

    @property
    def envelope_recipient(self) -> str:
        return self.header_of_ours("delivered-to").strip()

    @property
    def queue_id(self) -> str:
        match = _QUEUE_ID.search(self.received_line)
        return match.group(1) if match else ""

    @property
    def received_line(self) -> str:
        return " ".join(self.header_of_ours("received").split())

    def header_of_ours(self, name: str) -> str:
        for field in self._top[: self.ours]:
            if field.name.lower() == name:
                return field.value
        return ""

    @property
    def date(self) -> str:
        stamp = self.header_of_ours("received").rpartition(";")[2].strip()
        try:
            return parsedate_to_datetime(stamp).strftime("%Y-%m-%d %H:%M:%S")
        except (TypeError, ValueError):
            return ""

    def body_lines(self) -> list[bytes]:
        """The body's lines as stored (none when no empty line ends the headers)."""
        return body_lines(self.raw, self.section)

    def comparison(self, recipients: Sequence[str] | None = None) -> Comparison:
        """Its envelope against its headers; the envelope recipients are this copy's own
        unless the caller knows them all (every copy of the message)."""
        if recipients is None:
            recipients = (self.envelope_recipient,) if self.envelope_recipient else ()
        return Comparison(
            self.envelope_sender,
            self.header("From"),
            tuple(recipients),
            self.header("To"),
            self.header("Cc"),
        )


_MOST_OURS = 4  # Return-Path, Received, Authentication-Results, Delivered-To


def _count_ours(fields: Sequence[Field], *, relayed: bool = False) -> int:
    """The server adds Return-Path, Received, [Authentication-Results,] Delivered-To on top;
    a relayed copy has no Return-Path."""
    expected = ["received"] if relayed else ["return-path", "received"]
    names = [field.name.lower() for field in fields[: len(expected) + 2]]
    start = len(expected)
    if names[:start] != expected:
        return 0
    if names[start : start + 2] == ["authentication-results", "delivered-to"]:
        return start + 2
    return start + 1 if names[start : start + 1] == ["delivered-to"] else 0


def root_problem(root: Path) -> FileProblem | None:
    """Why the Maildir root cannot be read (it is a file, a symlink loop, unreadable, below
    a file); None when it can, or does not exist yet (no mail stored so far)."""
    try:
        with os.scandir(root):
            pass
    except FileNotFoundError:
        return None
    except OSError as error:
        note = home_note(root) or "give another Maildir root with --maildir"
        return FileProblem(root, error, note)
    return None


def folders(root: Path) -> list[str]:
    """Mailbox folders under the root: local mailboxes first, captured relay last. A folder
    that cannot be looked into is listed (read_folder marks it); a root that cannot be
    read has none (root_problem says why)."""
    try:
        names = sorted(entry.name for entry in os.scandir(root) if _is_mailbox(root / entry.name))
    except OSError:
        return []
    if RELAY_FOLDER in names:
        names.remove(RELAY_FOLDER)
        names.append(RELAY_FOLDER)
    return names


def _is_mailbox(folder: Path) -> bool:
    try:
        return stat.S_ISDIR((folder / "new").stat().st_mode)
    except (FileNotFoundError, NotADirectoryError):
        return False  # a file, or a folder that is not a Maildir
    except OSError:
        return True  # unreadable, a symlink loop: shown as such, not hidden


def read_folder(root: Path, folder: str) -> list[StoredMessage]:
    """The folder's messages, oldest first; an entry that is not a readable message file
    (or a new/ that cannot be listed) comes as a StoredMessage with its `problem`."""
    entries: list[tuple[float, str, Path, bytes, str]] = []
    for sub in ("new", "cur"):  # Maildir: delivered to new/, moved to cur/ once seen
        directory = root / folder / sub
        try:
            names = os.listdir(directory)
        except (FileNotFoundError, NotADirectoryError):
            continue  # no cur/ yet: nothing was read there
        except OSError as error:
            entries.append((0.0, sub, directory, b"", f"cannot be listed: {reason(error)}"))
            continue
        for name in names:
            if name.startswith("."):
                continue
            read = _read_entry(directory / name)
            if read is not None:
                mtime, raw, problem = read
                entries.append((mtime, name.split(":")[0], directory / name, raw, problem))
    entries.sort(key=lambda entry: (entry[0], entry[1]))
    return [
        StoredMessage(folder, index, key, path, raw, problem)
        for index, (_, key, path, raw, problem) in enumerate(entries, start=1)
    ]


def _read_entry(path: Path) -> tuple[float, bytes, str] | None:
    """(mtime, bytes, problem) of one entry; None for a folder (never a message) or an
    entry a mail program moved meanwhile. paths.read_file never blocks on a FIFO or a
    link to a device."""
    try:
        link = path.lstat()
    except OSError:
        return None  # moved meanwhile (lstat needs no more than listing did)
    try:
        return link.st_mtime, read_file(path), ""
    except FileNotFoundError:
        dangling = stat.S_ISLNK(link.st_mode)
        return (link.st_mtime, b"", "a symbolic link to a missing file") if dangling else None
    except OSError as error:  # unreadable, a symlink loop
        return link.st_mtime, b"", f"cannot be read: {reason(error)}"
    except NotAFile as why:
        return None if stat.S_ISDIR(link.st_mode) else (link.st_mtime, b"", f"{why}")


def clear_folder(root: Path, folder: str) -> int:
    """Delete every entry of one Maildir folder's new/ and cur/ (folders inside them
    stay); returns how many. The first entry that cannot be deleted is a FileProblem,
    raised once every other entry was tried."""
    removed = 0
    failed: OSError | None = None
    for sub in ("new", "cur"):
        directory = root / folder / sub
        try:
            names = os.listdir(directory)
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError as error:
            failed = failed or error
            continue
        for name in names:
            path = directory / name
            if name.startswith(".") or _is_folder(path):
                continue
            try:
                path.unlink()
            except FileNotFoundError:
                continue  # a mail program moved or removed it meanwhile
            except OSError as error:
                failed = failed or error
                continue
            removed += 1
    if failed is not None:
        note = f"{removed} deleted before this; the rest kept"
        raise FileProblem(failed.filename or root / folder, failed, note)
    return removed


def _is_folder(path: Path) -> bool:
    try:
        return stat.S_ISDIR(path.lstat().st_mode)
    except OSError:
        return False


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


def envelope_recipients(message: StoredMessage) -> tuple[str, ...]:
    """Every envelope recipient of the message: the Delivered-To of each of its copies
    still under the Maildir root (one copy per recipient, all with one queue id)."""
    if not message.queue_id:
        return (message.envelope_recipient,) if message.envelope_recipient else ()
    return recipients_by_queue_id(message.root).get(message.queue_id, ())


def recipients_by_queue_id(root: Path) -> dict[str, tuple[str, ...]]:
    found: dict[str, tuple[str, ...]] = {}
    for name in folders(root):
        for copy in read_folder(root, name):
            if copy.queue_id and copy.envelope_recipient:
                found[copy.queue_id] = (*found.get(copy.queue_id, ()), copy.envelope_recipient)
    return found
