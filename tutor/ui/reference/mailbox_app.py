"""`smtp-tutor mailbox`: read the Maildir root and print what is there."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text

from tutor.errors import UsageError, UserError
from tutor.maildir import mailview
from tutor.smtp.textsafe import visible
from tutor.ui.common.mailbox_view import message_detail, message_table, print_raw
from tutor.ui.common.safe import join, untrusted
from tutor.ui.common.terminal import Terminal, confirm
from tutor.ui.common.words import counted
from tutor.world.dnsdata import maildir_domain


def list_messages(term: Terminal, root: Path, folder: str | None) -> None:
    console, plain = term.out, term.plain
    names = _folders(root)
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
        names = [_existing(root, names, folder)]
    for index, name in enumerate(names):
        if index:
            console.print()
        messages = mailview.read_folder(root, name)
        narrow = not console.is_terminal or console.width < 110  # the table needs room
        domain = maildir_domain(root.name)
        console.print(message_table(name, messages, plain=plain or narrow, domain=domain))


def _folders(root: Path) -> list[str]:
    """The mailboxes under the root; a root that cannot be read is one clear line."""
    if problem := mailview.root_problem(root):
        raise problem
    return mailview.folders(root)


def _existing(root: Path, names: list[str], folder: str) -> str:
    if folder not in names:
        there = ", ".join(names) if names else "none yet"
        raise UserError(f"no mailbox {visible(folder)!r} under {root}; there are: {there}")
    return folder


def show_message(term: Terminal, root: Path, ref: str, *, raw: bool) -> None:
    console = term.out
    _folders(root)  # a root that cannot be read says so, rather than "no message"
    found = mailview.find(root, ref)
    if not found:
        raise UserError(
            f"no message {visible(ref)!r} under {root}; `smtp-tutor mailbox` lists them"
        )
    message = found[0]
    if message.problem:
        raise UserError(f"{message.ref} is no message: {message.path}: {message.problem}")
    if raw:
        if term.stdout_isatty:
            print_raw(console, message)
        else:  # piped: the exact bytes, for a file or another tool
            stream = console.file
            stream.flush()
            binary = getattr(stream, "buffer", None)
            if binary is not None:
                binary.write(message.raw)
                binary.flush()
            else:  # a text-only stream (tests): the bytes as they decode
                stream.write(message.raw.decode("utf-8", "surrogateescape"))
        return
    console.print(message_detail(message, plain=term.plain))
    others = [m.ref for m in found[1:]]
    if others:
        console.print(untrusted(f"other copies of this message: {', '.join(others)}", "dim"))


def clear_messages(term: Terminal, root: Path, folder: str | None, *, yes: bool) -> int:
    """Delete the stored messages of one mailbox (or of all, folder None); the folders stay,
    so a running server and any mail program keep working."""
    names = _folders(root)
    chosen = names if folder is None else [_existing(root, names, folder)]
    count = sum(len(mailview.read_folder(root, name)) for name in chosen)
    what = "every mailbox" if folder is None else f"mailbox {folder}"
    if count == 0:
        empty = "Every mailbox" if folder is None else f"Mailbox {folder}"
        term.out.print(
            join(Text(f"{empty} under "), untrusted(str(root)), Text(" is already empty."))
        )
        return 0
    if not yes:
        if not term.stdin_isatty:
            raise UsageError(
                f"not deleting {counted(count, 'message')} without confirmation: add --yes"
            )
        if not confirm(term, f"Delete {counted(count, 'message')} from {what}? [y/N] "):
            term.out.print(Text("Nothing deleted."))
            return 1
    removed = sum(mailview.clear_folder(root, name) for name in chosen)
    term.out.print(
        join(
            Text(f"Deleted {counted(removed, 'message')} from {what} under "), untrusted(str(root))
        )
    )
    return 0
