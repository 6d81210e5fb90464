"""`mailbox`: stored messages per mailbox, and one message with its envelope beside its headers."""

from __future__ import annotations

from rich.box import SIMPLE_HEAD, Box
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from tutor.envelope import Comparison
from tutor.events import RELAY_FOLDER
from tutor.mailview import StoredMessage
from tutor.ui.safe import join, untrusted


def folder_title(folder: str) -> str:
    if folder == RELAY_FOLDER:
        return f"{folder} (relay mail captured here; nothing was ever sent)"
    return f"{folder}'s mailbox"


def message_table(folder: str, messages: list[StoredMessage], *, plain: bool) -> RenderableType:
    if not messages:
        return untrusted(f"{folder_title(folder)}: empty")
    if plain:  # pipes, screen readers, narrow terminals: one labelled line per fact
        return _message_lines(folder, messages)
    table = Table(
        title=untrusted(folder_title(folder)),
        title_justify="left",
        show_lines=False,
        box=None if plain else _box(),
        expand=False,
        pad_edge=False,
    )
    for column in ("ref", "id", "received", "envelope from -> to", "header From -> To", "Subject"):
        table.add_column(column, overflow="fold")
    for message in messages:
        comparison = _comparison(message)
        claimed = untrusted(
            f"{message.header('From') or '(none)'} -> {message.header('To') or '(none)'}"
        )
        if comparison.mismatch:
            claimed.append(Text(" (!)", style="bold yellow"))
        table.add_row(
            Text(message.ref),
            Text(message.queue_id),
            Text(message.date),
            untrusted(f"<{message.envelope_sender}> -> <{message.envelope_recipient}>"),
            claimed,
            untrusted(message.header("Subject")),
        )
    return table


def _message_lines(folder: str, messages: list[StoredMessage]) -> Text:
    out = Text(folder_title(folder) + "\n", style="bold")
    for message in messages:
        mismatch = " (!)" if _comparison(message).mismatch else ""
        out.append(untrusted(f"  {message.ref}  id {message.queue_id}  received {message.date}"))
        out.append("\n")
        out.append(
            join(
                Text("    envelope: "),
                untrusted(f"<{message.envelope_sender}> -> <{message.envelope_recipient}>"),
                Text("\n"),
            )
        )
        out.append(
            join(
                Text("    headers:  "),
                untrusted(
                    f"{message.header('From') or '(none)'} -> {message.header('To') or '(none)'}"
                ),
                Text(mismatch + "\n", style="bold yellow"),
            )
        )
        out.append(join(Text("    Subject:  "), untrusted(message.header("Subject")), Text("\n")))
    out.rstrip()
    return out


def _box() -> Box:
    return SIMPLE_HEAD


def _comparison(message: StoredMessage) -> Comparison:
    return Comparison(
        message.envelope_sender,
        message.header("From"),
        (message.envelope_recipient,) if message.envelope_recipient else (),
        message.header("To"),
        message.header("Cc"),
    )


def message_detail(message: StoredMessage, *, plain: bool) -> RenderableType:
    """Envelope beside headers, then the stored copy with the trace headers marked."""
    comparison = _comparison(message)
    side = Table(
        title=untrusted(f"{message.ref}  id {message.queue_id}"),
        title_justify="left",
        box=None if plain else _box(),
        pad_edge=False,
    )
    side.add_column("")
    side.add_column("envelope (decided delivery)", overflow="fold")
    side.add_column("headers (what the message claims)", overflow="fold")
    side.add_row(
        Text("sender"),
        untrusted(f"MAIL FROM:<{message.envelope_sender}>"),
        untrusted(f"From: {message.header('From') or '(none)'}"),
    )
    side.add_row(
        Text("recipient"),
        untrusted(f"RCPT TO:<{message.envelope_recipient}>"),
        untrusted(_to_cc(message)),
    )
    notes = []
    if not comparison.sender_matches:
        notes.append("From: does not name the envelope sender; bounces go to MAIL FROM, not From:.")
    if comparison.unnamed_recipients:
        notes.append(
            "This copy went to a recipient that To:/Cc: never mention: the envelope decides."
        )
    if comparison.named_not_recipients:
        notes.append(
            "To:/Cc: name addresses this message was not delivered to: headers are just text."
        )

    header_lines = marked_headers(message)
    legend = Text(
        "server> marks trace headers this server added (Return-Path = envelope sender, Received, "
        "Authentication-Results, Delivered-To). Any other Received: line came in with the "
        "message text: a claim, not a record.",
        style="dim",
    )
    body = stored_body(message)
    parts: list[RenderableType] = [side]
    parts += [Text("! " + note, style="yellow") for note in notes]
    parts += [
        Text(""),
        Text("stored copy:", style="bold"),
        header_lines,
        body,
        Text(""),
        legend,
        join(Text("file: ", style="dim"), untrusted(str(message.path), "dim")),
    ]
    return Group(*parts)


def stored_body(message: StoredMessage, limit: int | None = None) -> Text:
    """The body as stored, line by line (each line made visible), at most `limit` lines."""
    lines = message.body.rstrip(b"\n").decode("utf-8", "backslashreplace").split("\n")
    shown = lines if limit is None else lines[:limit]
    text = Text("\n").join(untrusted(line) for line in shown)
    if limit is not None and len(lines) > limit:
        text.append(Text(f"\n… {len(lines) - limit} more lines", style="dim"))
    return text


def marked_headers(message: StoredMessage) -> Text:
    """The stored copy's headers, those the server added marked `server>`."""
    text = Text()
    for index, (name, value) in enumerate(message.headers):
        ours = index < message.ours
        text.append(
            Text("server> " if ours else "        ", style="bold magenta" if ours else "dim")
        )
        text.append(untrusted(f"{name}: {' '.join(value.split())}", "magenta" if ours else ""))
        text.append("\n")
    text.rstrip()
    return text


def _to_cc(message: StoredMessage) -> str:
    to = f"To: {message.header('To') or '(none)'}"
    cc = message.header("Cc")
    return f"{to}  Cc: {cc}" if cc else to


def print_raw(console: Console, message: StoredMessage) -> None:
    """The file exactly as stored, made visible line by line."""
    for line in message.raw.decode("utf-8", "backslashreplace").splitlines():
        console.print(untrusted(line))
