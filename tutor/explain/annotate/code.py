"""The reply code alone: what a rule can say when neither the stage nor the enhanced
status code had anything more specific."""

from __future__ import annotations

from tutor.explain.annotate.note import Context, Note, Rule
from tutor.explain.annotate.status import too_many_recipients

R5321 = "RFC 5321"


def by_code(c: Context) -> Note | None:
    rule = _CODES.get(c.code)
    return rule(c) if rule else None


def _line_too_long(c: Context) -> Note:
    return Note(
        "Line too long",
        "A command line may be at most 512 octets and a line of message text 1000, "
        "both counting the CRLF. Extensions lengthen MAIL and RCPT lines by what their "
        "parameters need: SIZE=, BODY=, SMTPUTF8, and AUTH= adds 500 octets (RFC 4954 §3).",
        f"{R5321} §4.5.3.1.4, §4.5.3.1.6; RFC 4954 §3",
        "Wrap long lines (or encode the content, e.g. quoted-printable).",
    )


def _unrecognised(c: Context) -> Note:
    if "too long" in c.text:
        return _line_too_long(c)
    if c.stage == "" and not c.alone:  # the line sent was empty (or only spaces)
        return Note(
            "An empty line: no command at all",
            "Pressing Enter on its own sends just CRLF. Outside DATA an empty line is not a "
            "command, so the server says so and waits; nothing else changes. Inside DATA an "
            "empty line is message text: the first one separates the headers from the body.",
            f"{R5321} §4.1.1, §4.2.4",
            "Type a command, or QUIT to leave.",
        )
    if not c.verb:
        return Note(
            "Command not recognised",
            "The server did not understand the line as a command.",
            f"{R5321} §4.2.4",
        )
    return Note(
        f"Command not recognised: {c.stage}",
        "Check the spelling. The SMTP verbs are HELO, EHLO, MAIL, RCPT, DATA, RSET, "
        "NOOP, QUIT, VRFY, HELP, plus extensions such as STARTTLS and AUTH.",
        f"{R5321} §4.2.4",
    )


_CODES: dict[int, Rule] = {
    221: lambda c: Note(
        "The server closes the connection",
        "221 is the normal end of a session.",
        f"{R5321} §4.1.1.10",
    ),
    450: lambda c: Note(
        "Mailbox unavailable for now: try again later",
        "Temporary: keep the message and retry. Greylisting servers answer a first "
        "attempt this way and accept the retry minutes later.",
        f"{R5321} §4.2.1, §4.5.4.1; RFC 6647",
        "Retry later.",
    ),
    451: lambda c: Note(
        "Error on the server's side, temporary: try again later",
        "Something failed inside the server (a lookup, a filter, storage) and it "
        "expects the problem to pass. Greylisting servers use 451 too.",
        f"{R5321} §4.2.1, §4.5.4.1",
        "Retry later.",
    ),
    452: lambda c: (
        too_many_recipients(c)
        if c.stage == "RCPT"
        else Note(
            "Not now: the server is short of storage",
            "It cannot take the message at the moment; nothing was kept.",
            f"{R5321} §4.2.1",
            "Retry later.",
        )
    ),
    454: lambda c: Note(
        "TLS or login temporarily unavailable",
        "A passing problem on the server's side, not a wrong password.",
        "RFC 3207 §4; RFC 4954 §6",
        "Retry later; do not fall back to an unencrypted session for mail that must be protected.",
    ),
    500: _unrecognised,
    501: lambda c: Note(
        "Syntax error in the arguments",
        "The command is known, but what follows it is malformed. The forms are "
        "MAIL FROM:<a@b>, RCPT TO:<a@b>, EHLO host.name.",
        f"{R5321} §4.1.1, §4.1.2",
    ),
    502: lambda c: Note(
        "Command not implemented: the server knows it but does not offer it",
        "500 would mean 'unknown'; 502 means 'known, but not here'.",
        f"{R5321} §4.2.4",
    ),
    504: lambda c: Note(
        "Parameter not implemented: the command is fine, this option is not",
        "Use only parameters the server lists in its EHLO reply.",
        f"{R5321} §4.2.3",
    ),
    534: lambda c: Note(
        "Login mechanism too weak for this account",
        "Policy demands a stronger mechanism than the one chosen.",
        "RFC 4954 §6",
        "Pick a stronger mechanism from the AUTH line.",
    ),
    535: lambda c: Note(
        "Login failed: wrong user name or password",
        "The server refused the credentials.",
        "RFC 4954 §6",
    ),
    538: lambda c: Note(
        "Encrypt first (538, a historical code): this login mechanism needs TLS",
        "It would send the password readable by anyone on the path. RFC 4954 §6 keeps "
        "538 for historical purposes only; servers today answer 503 (AUTH not offered "
        "before TLS) or 504 5.5.4 (mechanism needs encryption, RFC 4954 §4).",
        "RFC 4954 §6",
        "STARTTLS, then EHLO again, then AUTH.",
    ),
    550: lambda c: Note(
        "Refused: mailbox unavailable, or policy says no",
        "550 alone covers 'no such user', 'relay denied' and policy rejections alike; "
        "the enhanced code and the text say which. It is permanent.",
        f"{R5321} §4.2.2, §4.2.3",
        "Read the text; do not retry unchanged.",
    ),
    551: lambda c: Note(
        f"User not local: the server will not forward to {c.who()}",
        "The mailbox is not here. The text may name a new address; the sender can resend there.",
        f"{R5321} §3.4, §7.4",
    ),
    552: lambda c: Note(
        "Too big: over a size or quota limit",
        "The message, or the mailbox it is for, would exceed a storage limit.",
        f"{R5321} §4.2.2, §4.5.3.1.9; RFC 1870 §6",
        "Send it smaller, or wait until the mailbox has room.",
    ),
    553: lambda c: Note(
        f"Address not allowed: {c.who()}",
        "The mailbox name is malformed or not acceptable to this server.",
        f"{R5321} §4.2.2",
        "Fix the address.",
    ),
    554: lambda c: Note(
        "Transaction failed",
        "A permanent refusal with no more specific code, often a spam, virus or "
        "policy filter. The text and enhanced code say why.",
        f"{R5321} §4.2.3, §3.3",
        "Do not retry unchanged.",
    ),
    555: lambda c: Note(
        f"{c.verb or 'MAIL/RCPT'} parameter not recognised",
        "The address is fine; a parameter after it belongs to no extension this server "
        "offers (not a syntax error, which would be 501). Only parameters of extensions "
        "the EHLO reply listed may follow the address"
        + ("; after HELO there are none." if c.state.greeting == "HELO" else "."),
        f"{R5321} §4.1.1.11",
        "Drop the parameter.",
    ),
    556: lambda c: Note(
        f"The domain of {c.who()} accepts no mail",
        "It publishes a null MX record: nothing can ever be delivered there.",
        "RFC 7504; RFC 7505 §4.1",
        "Do not retry.",
    ),
}
