"""`smtp-tutor mailbox`: read the Maildir root and print what is there."""

from __future__ import annotations

import sys
from pathlib import Path

from rich.console import Console
from rich.text import Text

from tutor import mailview
from tutor.errors import UserError
from tutor.textsafe import visible
from tutor.ui.mailbox_view import message_detail, message_table, print_raw
from tutor.ui.safe import join, untrusted


def list_messages(console: Console, root: Path, folder: str | None, *, plain: bool) -> None:
    names = mailview.folders(root)
    if not names:
        console.print(
            join(
                Text("No mailboxes yet under "),
                untrusted(str(root)),
                Text(". Start `smtp-tutor serve` and send a message first."),
            )
        )
        return
    if folder is not None:
        if folder not in names:
            raise UserError(
                f"no mailbox {visible(folder)!r} under {root}; there are: {', '.join(names)}"
            )
        names = [folder]
    for index, name in enumerate(names):
        if index:
            console.print()
        messages = mailview.read_folder(root, name)
        narrow = not console.is_terminal or console.width < 110  # the table needs room
        console.print(message_table(name, messages, plain=plain or narrow))


def show_message(console: Console, root: Path, ref: str, *, raw: bool, plain: bool) -> None:
    found = mailview.find(root, ref)
    if not found:
        raise UserError(
            f"no message {visible(ref)!r} under {root}; `smtp-tutor mailbox` lists them"
        )
    message = found[0]
    if raw:
        if sys.stdout.isatty():
            print_raw(console, message)
        else:  # piped: the exact bytes, for a file or another tool
            sys.stdout.buffer.write(message.raw)
            sys.stdout.flush()
        return
    console.print(message_detail(message, plain=plain))
    others = [m.ref for m in found[1:]]
    if others:
        console.print(untrusted(f"other copies of this message: {', '.join(others)}", "dim"))
