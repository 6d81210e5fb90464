"""`mailbox`: stored messages per mailbox, and one message with its envelope beside its headers."""

from __future__ import annotations

from rich.box import SIMPLE_HEAD, Box
from rich.console import Console, RenderableType
from rich.table import Table
from rich.text import Text

from tutor.engine.checks import mailbox_words
from tutor.maildir.mailview import StoredMessage, recipients_by_queue_id
from tutor.smtp.events import RELAY_FOLDER
from tutor.smtp.headers import one_line
from tutor.ui.common.message_view import message_view
from tutor.ui.common.safe import join, untrusted, untrusted_bytes


def folder_title(folder: str, domain: str = "tutor.test") -> str:
    if folder == RELAY_FOLDER:
        return f"{folder} (relay mail captured here; nothing was ever sent)"
    return mailbox_words(folder, domain=domain)


def message_table(
    folder: str, messages: list[StoredMessage], *, plain: bool, domain: str = "tutor.test"
) -> RenderableType:
    """A mailbox's messages; `domain` is the mail domain of the Maildir that holds it."""
    title = folder_title(folder, domain)
    if not messages:
        return untrusted(f"{title}: empty")
    if plain:  # pipes, screen readers, narrow terminals: one labelled line per fact
        return _message_lines(title, messages)
    table = Table(
        title=untrusted(title),
        title_justify="left",
        show_lines=False,
        box=None if plain else _box(),
        expand=False,
        pad_edge=False,
    )
    for column in ("ref", "id", "received", "envelope from -> to", "header From -> To", "Subject"):
        table.add_column(column, overflow="fold")
    recipients = recipients_by_queue_id(messages[0].root)
    for message in messages:
        if message.problem:
            table.add_row(Text(message.ref), Text(""), Text(""), _problem(message))
            continue
        claimed = untrusted(_claimed(message))
        if _mismatch(message, recipients):
            claimed.append(Text(" (!)", style="bold yellow"))
        table.add_row(
            Text(message.ref),
            Text(message.queue_id),
            Text(message.date),
            untrusted(_envelope(message)),
            claimed,
            untrusted(_shown(message, "Subject")),
        )
    return table


def _problem(message: StoredMessage) -> Text:
    """An entry that is no readable message: marked, with its file name, never hidden."""
    return untrusted(f"({message.problem}: {message.path.name})", "bold yellow")


def _envelope(message: StoredMessage) -> str:
    if not message.ours:  # no Return-Path/Received on top: the server did not write it
        return "(unknown: no trace headers, not stored by this server)"
    return f"<{message.envelope_sender}> -> <{message.envelope_recipient}>"


def _claimed(message: StoredMessage) -> str:
    sender = _shown(message, "From") or "(none)"
    return f"{sender} -> {_shown(message, 'To') or '(none)'}"


def _shown(message: StoredMessage, name: str) -> str:
    """A header as one line of the list: decoded, cut short with its size (headers.one_line)."""
    return one_line(message.header(name), size=message.header_size(name))


def _mismatch(message: StoredMessage, recipients: dict[str, tuple[str, ...]]) -> bool:
    """Judged against every copy's recipient: To: you, alice is no mismatch in you/."""
    known = recipients.get(message.queue_id) if message.queue_id else None
    return message.comparison(known).mismatch


def _message_lines(title: str, messages: list[StoredMessage]) -> Text:
    out = Text(title + "\n", style="bold")
    recipients = recipients_by_queue_id(messages[0].root)
    for message in messages:
        if message.problem:
            out.append(join(Text(f"  {message.ref}  "), _problem(message), Text("\n")))
            continue
        mismatch = " (!)" if _mismatch(message, recipients) else ""
        out.append(untrusted(f"  {message.ref}  id {message.queue_id}  received {message.date}"))
        out.append("\n")
        out.append(
            join(
                Text("    envelope: "),
                untrusted(_envelope(message)),
                Text("\n"),
            )
        )
        out.append(
            join(
                Text("    headers:  "),
                untrusted(_claimed(message)),
                Text(mismatch + "\n", style="bold yellow"),
            )
        )
        subject = untrusted(_shown(message, "Subject"))
        out.append(join(Text("    Subject:  "), subject, Text("\n")))
    out.rstrip()
    return out


def _box() -> Box:
    return SIMPLE_HEAD


def message_detail(message: StoredMessage, *, plain: bool) -> RenderableType:
    """Envelope beside headers, then the stored copy as stored (ui/common/message_view.py)."""
    return message_view(message, plain=plain)


def print_raw(console: Console, message: StoredMessage) -> None:
    """The file exactly as stored, made visible line by line (a CR before the LF shows as
    \\x0d: the file's own ending); the terminal wraps long lines, so that a long file costs
    no more than its size."""
    lines = message.raw.split(b"\n")
    if lines[-1] == b"":
        lines.pop()  # the last line's ending
    console.print(Text("\n").join(untrusted_bytes(line) for line in lines), soft_wrap=True)
