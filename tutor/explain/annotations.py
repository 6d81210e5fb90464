"""What a reply means here: the same code explained by the command it answers and the state.

A 250 after MAIL, after RCPT and after the final dot are three different lessons, and a
503 is only useful if it names the step that is missing. `annotate()` therefore looks
at the command verb, the reply code, the enhanced status code (RFC 3463: the text after
the code is not irrelevant) and what the server knew before, together, and falls back
to the catalogue in `codes.py` for anything it has no special words for.
`annotate_alone()` does the same for a reply seen without its conversation (a bounce).
Stdlib only: the UI decides how an Annotation looks.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace

from tutor.smtp import authcodec
from tutor.smtp.codes import (
    enhanced_code,
    reply_category,
    reply_class,
    reply_code,
    short_meaning,
)
from tutor.smtp.session_state import SessionState, path_argument, queue_id
from tutor.smtp.wire import Reply, split_command

R5321 = "RFC 5321"


@dataclass(frozen=True)
class Annotation:
    headline: str  # one line: what happened
    detail: str  # why, in 1-3 sentences (an EHLO reply adds one line per extension)
    rfc: str  # where it is defined, e.g. "RFC 5321 §4.1.1.3"
    reply_class: str  # what the first digit says
    enhanced: str | None  # the enhanced status code in the reply, e.g. "5.1.1"
    enhanced_meaning: str | None  # what that code says
    advice: str | None  # what to do next


@dataclass(frozen=True)
class _Note:
    headline: str
    detail: str
    rfc: str
    advice: str | None = None


@dataclass(frozen=True)
class _Context:
    stage: str  # "greeting", "notice", "data-end", "auth", a verb ("MAIL") or "?" (unknown)
    argument: str
    reply: Reply
    state: SessionState
    alone: bool = False  # seen without its conversation: the state is unknown, not empty

    @property
    def verb(self) -> str:
        """The command verb the reply answers, or "" when it did not answer a command."""
        return self.stage if self.stage.isupper() else ""

    @property
    def code(self) -> int:
        return self.reply.code

    @property
    def text(self) -> str:
        """The reply text in lower case, for matching words such as "relay" or "timeout"."""
        return self.reply.text.lower()

    @property
    def status(self) -> str | None:
        """The enhanced code without its class, as the registry spells it: "X.1.1"."""
        enhanced = self.reply.enhanced
        if enhanced is None:
            return None
        _klass, subject, detail = enhanced.split(".")
        return f"X.{int(subject)}.{int(detail)}"

    @property
    def address(self) -> str:
        """The address the reply is about: from MAIL/RCPT, else the first <…> in the text."""
        if self.argument and self.stage in ("MAIL", "RCPT"):
            return path_argument(self.argument)
        match = re.search(r"<([^<>\s]*)>", self.reply.text)
        return match.group(1) if match else ""

    def who(self) -> str:
        return f"<{self.address}>" if self.address else "this address"


# --- entry points -------------------------------------------------------------------------


def annotate(command: str | None, reply: Reply, state_before: SessionState) -> Annotation:
    """Explain `reply` as the answer to `command`, given what the server knew before it.

    `command` None is the greeting (or, once greeted, a reply nobody asked for). While
    `state_before.in_data`, the reply answers the message that ended with the lone dot.
    """
    context = _Context(*_stage(command, state_before), reply, state_before)
    note = _by_stage(context) or _by_status(context) or _by_code(context)
    return _finish(note or _from_catalogue(context), context)


def annotate_alone(reply: Reply, hint: str = "") -> Annotation:
    """Explain a reply seen out of context (a bounce): code, enhanced code and text.

    Bounces often say which command the reply answered, as Postfix's "(in reply to RCPT
    TO command)" or Exim's "after RCPT TO:<…>"; `hint` is any text around the reply.
    """
    stage = _stage_from_words(f"{hint} {reply.text}")
    context = _Context(stage, "", reply, SessionState(), alone=True)
    note = _by_status(context) or _by_code(context)
    return _finish(note or _from_catalogue(context), context)


def _stage_from_words(text: str) -> str:
    words = " ".join(text.split())  # bounces wrap lines anywhere
    match = re.search(
        r"(?:in reply to|after) (end of data|data|rcpt to|mail from)\b", words, re.IGNORECASE
    )
    if match is None:
        return "?"  # unknown: no rule may assume anything about the state
    return {"end of data": "data-end", "data": "DATA", "rcpt to": "RCPT"}.get(
        match.group(1).lower(), "MAIL"
    )


def _stage(command: str | None, state: SessionState) -> tuple[str, str]:
    if state.in_data:
        return "data-end", ""
    if command is None:
        return ("notice" if state.banner is not None else "greeting"), ""
    if state.auth_pending:
        return "auth", command
    return split_command(command)


# --- the conversation stage ---------------------------------------------------------------


def _by_stage(c: _Context) -> _Note | None:
    handler = _STAGES.get(c.stage)
    return handler(c) if handler else None


def _greeting(c: _Context) -> _Note | None:
    if c.code == 220:
        name = c.reply.lines[0].text.split(" ", 1)[0]
        return _Note(
            f"Greeting: {name} is ready for you",
            "The server speaks first; the name after 220 is its own domain, which RFC "
            "5321 §4.3.1 requires in the greeting. "
            "The word ESMTP in a banner is a custom, not a promise: a client should "
            "start with EHLO anyway.",
            f"{R5321} §4.3.1, §3.2",
            "Introduce yourself: EHLO your.host.name (HELO only for very old servers).",
        )
    if c.code == 554:
        return _Note(
            "The server refuses to serve you (554 instead of a greeting)",
            "It will take no mail from this client. RFC 5321 asks it to keep the line "
            "open until QUIT and to answer anything else with 503.",
            f"{R5321} §3.1",
            "Send QUIT. The text often says why (a blocklist, for instance).",
        )
    if c.code == 521:
        return _Note(
            "This host accepts no mail at all",
            "521 at connect says the machine is not a mail server for anyone, so no "
            "command can help.",
            "RFC 7504 §3",
            "Do not retry here; try another MX of the domain, or give up.",
        )
    return None


def _hello(c: _Context) -> _Note | None:
    if c.code == 250 and c.stage == "HELO":
        return _Note(
            f"Greeting accepted (HELO): the server now knows you as {c.argument}",
            "HELO is the old greeting: its reply lists no extensions, so this session "
            "has plain SMTP only (no STARTTLS, SIZE, PIPELINING). The server writes the "
            "name you gave into its Received: header beside the address it sees you "
            "connect from; only the address is a fact.",
            f"{R5321} §4.1.1.1",
            "MAIL FROM:<your address>. Use EHLO instead if you need extensions.",
        )
    if c.code == 250:
        return _ehlo_accepted(c)
    if c.code in (501, 504, 550) and c.argument.strip():
        return _Note(
            f"{c.stage} name refused: {c.argument.strip()}",
            "RFC 5321 says a client MUST give its fully qualified domain name "
            "(client.example) or an address literal ([192.0.2.1]). A server MAY check the "
            "name, and real servers refuse malformed or non-FQDN names (Postfix: "
            "501 or 504 5.5.2); it MUST NOT refuse a message only because the name does "
            "not match the address. SPF checks the HELO name too (RFC 7208 §2.3).",
            f"{R5321} §4.1.1.1, §4.1.4",
            f"{c.stage} your.full.host.name",
        )
    if c.code == 501:
        return _Note(
            f"{c.stage} needs your host name",
            "Give your fully qualified domain name (client.example) or an address "
            "literal ([192.0.2.1]). The server may check it, but it cannot trust it.",
            f"{R5321} §4.1.1.1, §4.1.3",
        )
    if c.code in (500, 502) and c.stage == "EHLO":
        return _Note(
            "This server does not know EHLO: fall back to HELO",
            "Very old servers speak only the original SMTP. The server stays in the "
            "state it was in, so HELO can follow at once.",
            f"{R5321} §4.1.4, §3.2",
            "Send HELO your.host.name.",
        )
    return None


def _ehlo_accepted(c: _Context) -> _Note:
    extensions = [line.text.strip() for line in c.reply.lines[1:] if line.text.strip()]
    count = len(extensions)
    headline = (
        f"Greeting accepted (EHLO): the server offers {count} extension{'' if count == 1 else 's'}"
        if count
        else "Greeting accepted (EHLO): the server offers no extensions"
    )
    lead = "Each line after the first names an extension; you may use only those."
    if c.state.tls and c.state.greeting_forgotten:  # not after implicit TLS (port 465)
        lead = (
            "This is the greeting after STARTTLS: the server forgot the first one, and "
            "the list may differ (AUTH is often offered only now). " + lead
        )
    elif c.state.greeted:
        lead = "A second EHLO is allowed; it also ends any transaction, like RSET. " + lead
    lines = [lead] + [f"  {line} — {extension_meaning(line)}" for line in extensions]
    offered = {line.split(" ", 1)[0].upper() for line in extensions}
    advice = "MAIL FROM:<your address>."
    if "STARTTLS" in offered and not c.state.tls:
        advice = "To encrypt first: STARTTLS, then EHLO again. Otherwise: MAIL FROM:<address>."
    return _Note(headline, "\n".join(lines), f"{R5321} §4.1.1.1, §2.2", advice)


_EXTENSIONS: dict[str, str] = {
    "SIZE": "the largest message it takes, in octets; declare yours with SIZE= on "
    "MAIL FROM (RFC 1870)",
    "8BITMIME": "message text may use 8-bit bytes, declared with BODY=8BITMIME (RFC 6152)",
    "PIPELINING": "you may send several commands before reading their replies (RFC 2920)",
    "ENHANCEDSTATUSCODES": "replies carry an x.y.z status code after the reply code (RFC 2034)",
    "SMTPUTF8": "addresses and headers may use UTF-8, with SMTPUTF8 on MAIL FROM (RFC 6531)",
    "STARTTLS": "the connection can be encrypted: send STARTTLS (RFC 3207)",
    "AUTH": "you may log in, with one of the mechanisms listed (RFC 4954)",
    "HELP": "HELP gives text for people (RFC 5321 §4.1.1.8)",
    "DSN": "you may ask for delivery status notifications: NOTIFY=, RET= (RFC 3461)",
    "CHUNKING": "the message may be sent in chunks with BDAT instead of DATA (RFC 3030)",
    "BINARYMIME": "binary message content, sent with BDAT (RFC 3030)",
    "DELIVERBY": "you may set a delivery deadline with BY= (RFC 2852)",
    "ETRN": "you may ask it to run its queue for a domain (RFC 1985)",
    "VRFY": "it answers VRFY (RFC 5321 §3.5)",
    "EXPN": "it answers EXPN (RFC 5321 §3.5)",
    "REQUIRETLS": "a message may demand TLS on every hop (RFC 8689)",
    "MT-PRIORITY": "messages may carry a priority (RFC 6710)",
    "LIMITS": "it states its limits, such as recipients per message (RFC 9422)",
    "FUTURERELEASE": "delivery may be held until a given time (RFC 4865)",
}


def extension_meaning(line: str) -> str:
    """One EHLO line ("SIZE 10485760", "AUTH PLAIN LOGIN") in words."""
    keyword, _, params = line.strip().partition(" ")
    keyword = keyword.upper()
    if keyword == "SIZE" and params.strip().isdigit() and int(params) > 0:
        limit = int(params)
        mib, rest = divmod(limit, 1 << 20)
        size = f"{mib} MiB" if mib and not rest else f"about {limit / 1_000_000:.1f} MB"
        return f"messages up to {limit} octets ({size}) (RFC 1870)"
    if keyword == "AUTH" and params:
        mechanisms = params.upper().split()
        login = "; LOGIN is de facto, in no RFC" if "LOGIN" in mechanisms else ""
        return f"you may log in with {params.strip()} (RFC 4954{login})"
    if keyword.startswith("AUTH="):
        return "an old, non-standard spelling of AUTH that some clients need"
    if keyword in _EXTENSIONS:
        return _EXTENSIONS[keyword]
    if keyword.startswith("X"):
        return "a private extension of this server's software"
    return "not a standard extension smtp-tutor knows"


def _mail(c: _Context) -> _Note | None:
    if c.code == 250 and c.address == "":
        return _Note(
            "Null sender accepted: MAIL FROM:<> marks mail that must never be bounced",
            "Bounces themselves are sent with the empty reverse-path, so that a failure "
            "to deliver a bounce cannot cause another one, and a loop.",
            f"{R5321} §4.5.5, §4.1.1.2",
            "RCPT TO:<address>.",
        )
    if c.code == 250:
        return _Note(
            f"Sender accepted: <{c.address}> is the envelope sender; bounces go here, not to From:",
            "MAIL FROM opens a mail transaction. Failure reports go to this reverse-path; "
            "the From: header inside the message is separate text and may say anything. "
            "A 250 here usually checks only syntax and policy, not that the sender exists.",
            f"{R5321} §4.1.1.2, §3.3",
            "One RCPT TO:<address> per recipient.",
        )
    if c.code == 501:
        return _syntax_of_path(c, "MAIL FROM:<you@tutor.test>", "FROM:")
    if c.code == 552:
        limit = c.state.extensions.get("SIZE", "")
        where = f" (its EHLO reply says SIZE {limit})" if limit else ""
        return _Note(
            "Too big, refused before sending: the SIZE you declared is over the limit",
            "Because MAIL FROM announced the size with SIZE=, the server can say no now, "
            f"before any data is sent{where}.",
            "RFC 1870 §6",
            "Send a smaller message (or one without large attachments).",
        )
    if c.code == 550 and c.status == "X.7.1":
        return _Note(
            f"Sender refused by policy: {c.who()} may not send here",
            "The server will not take mail from this sender: it may be an address you "
            "are not allowed to use, or a blocked source.",
            "RFC 3463 §3.8",
        )
    return None


def _rcpt(c: _Context) -> _Note | None:
    if c.code in (250, 251) and "relay" in c.text:
        return _relay_accepted(c)
    if c.code == 250:
        count = len(c.state.accepted) + 1
        plural = "" if count == 1 else "s"
        return _Note(
            f"Recipient accepted: the envelope now has {count} recipient{plural}; "
            "each RCPT is judged on its own",
            f"<{c.address}> is on the envelope. A later RCPT may still be refused without "
            "undoing this one; DATA delivers to every accepted recipient and to no one "
            "else, whatever To: and Cc: will say.",
            f"{R5321} §4.1.1.3",
            "Add more RCPT TO lines, or send DATA.",
        )
    if c.code == 251:
        return _Note(
            f"Recipient accepted: <{c.address}> will be forwarded by the server",
            "The mailbox is not here, but the server knows where it went and takes the "
            "message on itself.",
            f"{R5321} §3.4",
        )
    if c.code == 501:
        return _syntax_of_path(c, "RCPT TO:<you@tutor.test>", "TO:")
    return None


def _relay_accepted(c: _Context) -> _Note:
    if c.state.authenticated:
        why = (
            "It relays because you are logged in: a submission server relays for its own "
            "users (RFC 6409)."
        )
    else:
        why = (
            "It relays for anyone who asks: an open relay, which on the Internet is "
            "quickly found and abused for spam."
        )
    if "captured" in c.text:
        why += " Here the message is only captured: nothing is ever sent on."
    return _Note(
        f"Recipient accepted for relay: <{c.address}> is on another domain",
        why,
        f"{R5321} §3.6, §7.9",
        "Add more RCPT TO lines, or send DATA.",
    )


def _syntax_of_path(c: _Context, example: str, keyword: str) -> _Note:
    argument = c.argument.upper()
    if not argument.startswith(keyword):
        return _Note(
            f"{c.stage} needs {keyword}<address>",
            f"The keyword {keyword} comes straight after {c.stage}, then the address "
            "in angle brackets.",
            f"{R5321} §4.1.1.2, §4.1.1.3",
            f"Send {example}",
        )
    if "<" not in c.argument:
        return _Note(
            "Angle brackets are required around the address",
            "RFC 5321 writes the address inside < >; old tutorials often lost them. "
            "Strict servers refuse the address without them (this one, and Postfix "
            "with strict_rfc821_envelopes); Postfix's default lets it pass.",
            f"{R5321} §4.1.2",
            f"Send {example}",
        )
    return _Note(
        f"Syntax error in the {c.stage} arguments",
        "The address is bracketed, but a parameter after it is malformed (SIZE= "
        "wants a plain number, for instance). A parameter the server does not "
        "support at all gets 555 instead.",
        f"{R5321} §4.1.2, §4.1.1.11",
        f"Send {example}",
    )


def _data(c: _Context) -> _Note | None:
    if c.code == 354:
        count = len(c.state.accepted)
        plural = "" if count == 1 else "s"
        reach = f" It will reach {count} accepted recipient{plural}." if count else ""
        return _Note(
            "Go ahead: send the message, then a line with only a dot",
            "From here every line is message text, not a command: headers, an empty "
            "line, the body, until CRLF.CRLF. A text line that starts with a dot is sent "
            "with one more dot (dot-stuffing), which the server removes, so it cannot end "
            f"the message early.{reach}",
            f"{R5321} §4.1.1.4, §4.5.2",
        )
    if c.code == 554 and not c.state.accepted:  # "no valid recipients" (RFC 5321 §3.3)
        note = _bad_sequence(c)
        return replace(note, headline=note.headline.replace("Bad sequence", "No valid recipients"))
    if c.code == 501 and c.argument:
        return _Note(
            "DATA takes no argument",
            "The message text comes after the 354 reply, never on the DATA line.",
            f"{R5321} §4.1.1.4",
            "Send DATA alone.",
        )
    return None


def _data_end(c: _Context) -> _Note | None:
    if c.code != 250:
        return None
    qid = queue_id(c.reply)
    sender = f"<{c.state.sender}>" if c.state.sender is not None else "the envelope sender"
    count = len(c.state.accepted)
    to_whom = f" for {count} recipient{'' if count == 1 else 's'}" if count else ""
    return _Note(
        "Message accepted and queued: the server now takes responsibility for it"
        + (f"; queue id {qid}" if qid else ""),
        f"From this 250 on, delivering the message{to_whom}, or bouncing it to {sender}, "
        "is the receiving server's job. Had the connection dropped before this reply, "
        "the message would not count as accepted and the client would send it again.",
        f"{R5321} §4.1.1.4, §6.1",
        "Send another message (MAIL FROM), or QUIT.",
    )


def _starttls(c: _Context) -> _Note | None:
    if c.code == 220:
        return _Note(
            "Start the TLS handshake now; after it, send EHLO again — the server "
            "forgot the greeting",
            "The next bytes must be the TLS handshake; a careful server throws away "
            "commands pipelined after STARTTLS. TLS protects this one hop only, and mail "
            "servers sending to each other accept any certificate unless MTA-STS or DANE "
            "is in use.",
            "RFC 3207 §4, §4.2",
            "By hand: openssl s_client -starttls smtp -crlf -connect HOST:PORT",
        )
    if c.code == 454 and c.state.greeting == "EHLO" and "STARTTLS" not in c.state.extensions:
        return _Note(
            "No TLS here: this server did not offer STARTTLS",
            "Its EHLO reply does not list STARTTLS, so it cannot encrypt this connection. "
            "A mail server sending here would carry on in plaintext (STARTTLS is "
            "opportunistic) unless MTA-STS or DANE demands TLS for this domain.",
            "RFC 3207 §4; RFC 8461; RFC 7672",
            "Send mail unencrypted only if that is acceptable; otherwise QUIT.",
        )
    if c.code == 454:
        return _Note(
            "TLS is not available right now",
            "A temporary problem on the server's side. If the mail must travel encrypted, "
            "do not carry on in plain text.",
            "RFC 3207 §4",
            "Try again later.",
        )
    if c.code == 501:
        return _Note(
            "STARTTLS takes no argument", "Send the word alone.", "RFC 3207 §4", "STARTTLS"
        )
    if c.code in (500, 502):
        return _Note(
            "This server does not offer STARTTLS",
            "Only a server that lists STARTTLS in its EHLO reply can encrypt the connection.",
            "RFC 3207 §4",
        )
    return None


def _auth(c: _Context) -> _Note | None:
    if c.code == 334:
        return _challenge(c)
    if 200 <= c.code < 300 and c.code != 235 and c.stage in ("AUTH", "auth"):
        return _Note(
            f"AUTH answered with {c.code}, not 235",
            "RFC 4954 defines 235 for a successful login; this reply is the server's own "
            "idea. Test servers (Postfix's smtp-sink, for one) say yes to anything without "
            "checking the credentials.",
            "RFC 4954 §6",
        )
    if c.code == 235:
        user = _user_after(c)
        who = f" as {user}" if user else ""
        return _Note(
            f"Logged in{who}: the server now knows who is sending",
            "A submission server now relays to other domains for you, and records the "
            "login in its Received: header (ESMTPA, or ESMTPSA with TLS).",
            "RFC 4954 §6; RFC 3848",
            "Go on with MAIL FROM:<your address>.",
        )
    if c.code == 535:
        return _Note(
            "Login failed: wrong user name or password",
            "The server checked the credentials and refused them. Servers slow down or "
            "lock out clients that keep guessing.",
            "RFC 4954 §6",
            "Check the credentials before trying again.",
        )
    if c.code == 538:
        sent = c.stage == "AUTH" and len(c.argument.split()) > 1  # an initial response
        return _Note(
            "Encrypt first (538, a historical code): refused, but the credentials on "
            "that line already crossed the network readable by anyone"
            if sent
            else "Encrypt first (538, a historical code): this login would cross the "
            "network readable by anyone",
            "AUTH PLAIN and LOGIN send the password in base64, an encoding anyone can "
            "undo, so the server allows them only under TLS. RFC 4954 §6 keeps 538 for "
            "historical purposes only: servers today answer 503 (AUTH not offered "
            "before TLS) or 504 (mechanism needs encryption).",
            "RFC 4954 §6, §4",
            "STARTTLS, then EHLO again, then AUTH.",
        )
    if c.code == 504 and not c.state.tls and ("encrypt" in c.text or "tls" in c.text):
        return _Note(
            "Encrypt first: this login mechanism needs an encrypted connection",
            "AUTH PLAIN and LOGIN send the password in base64, an encoding anyone can "
            "undo. A mechanism that needs encryption is refused with 504 (RFC 4954 §4); "
            "the old 538 code is kept for historical purposes only.",
            "RFC 4954 §4, §6",
            "STARTTLS, then EHLO again, then AUTH.",
        )
    if c.code == 504:
        offered = c.state.extensions.get("AUTH", "")
        return _Note(
            "Unknown login mechanism",
            "The server supports only the mechanisms on the AUTH line of its EHLO reply"
            + (f": {offered}." if offered else "."),
            "RFC 4954 §4",
            "AUTH PLAIN or AUTH LOGIN, if offered.",
        )
    if c.code == 501 and c.stage == "auth":
        if c.argument.strip() == "*" or "abort" in c.text:
            return _Note(
                "Login cancelled",
                "Answering a 334 with a single '*' abandons the AUTH exchange.",
                "RFC 4954 §4",
            )
        return _Note(
            "The answer was not valid base64",
            "Each answer to a 334 is one line of base64, such as the output of "
            "printf '\\0you\\0password' | base64.",
            "RFC 4954 §4",
        )
    if c.code in (500, 502) and not c.state.tls:
        return _Note(
            "AUTH is not offered here (yet)",
            "Many servers offer AUTH only after STARTTLS, so that no password crosses "
            "the network in clear.",
            "RFC 4954 §4",
            "STARTTLS, EHLO, then AUTH.",
        )
    return None


def _user_after(c: _Context) -> str | None:
    """The user an AUTH exchange logs in as, if the answers show it."""
    after = c.state.copy()
    command = c.argument if c.stage == "auth" else f"AUTH {c.argument}"
    after.feed(command, c.reply, kind="auth" if c.stage == "auth" else "command")
    return after.auth_user


def _challenge(c: _Context) -> _Note:
    raw = c.reply.lines[-1].text.strip()
    if not raw:
        return _Note(
            "AUTH continues: the server is ready for your credentials",
            "An empty challenge means 'go on'. For PLAIN, send base64 of "
            "NUL user NUL password on one line.",
            "RFC 4954 §4; RFC 4616 §2",
        )
    data = authcodec.decode(raw)
    try:
        decoded = data.decode("utf-8") if data is not None else ""
    except UnicodeDecodeError:
        decoded = ""
    if not decoded or not decoded.isprintable():
        return _Note(
            "AUTH continues: the server sent a challenge",
            f"The text after 334 is base64 ({raw}); the mechanism decides how to answer "
            "it. Answer with one base64 line, or '*' to cancel.",
            "RFC 4954 §4",
        )
    return _Note(
        f"AUTH continues: the server asks for {decoded!r}",
        f"The challenge {raw} is base64 for {decoded!r}. Answer with one base64 line; "
        "base64 is an encoding, not encryption, so without TLS anyone on the path can "
        "read it." + _login_note(decoded),
        "RFC 4954 §4",
        _challenge_advice(decoded),
    )


def _login_note(asked: str) -> str:
    """AUTH LOGIN's prompts come from no RFC: say so where a learner meets them."""
    if asked.strip().rstrip(":").lower() in ("username", "user name", "password"):
        return " (These prompts are AUTH LOGIN's, a de facto mechanism that no RFC defines.)"
    return ""


def _challenge_advice(asked: str) -> str:
    """What to type for this prompt of AUTH LOGIN (a de facto mechanism, in no RFC)."""
    what = asked.strip().rstrip(":").lower()
    if what in ("username", "user name", "user"):
        return (
            "Answer with the user name in base64: printf '%s' 'you' | base64 gives eW91 "
            "for the tutor's demo user; '*' cancels."
        )
    if what == "password":
        return (
            "Answer with the password in base64: printf '%s' 'tutor-password' | base64 "
            "gives dHV0b3ItcGFzc3dvcmQ= for the demo user you; '*' cancels."
        )
    return "Answer in base64, or '*' to cancel."


def _simple(headline: str, detail: str, rfc: str) -> Callable[[_Context], _Note | None]:
    """A stage whose 250 (or 214, 221, 252) needs one fixed explanation."""

    def rule(c: _Context) -> _Note | None:
        return _Note(headline, detail, rfc) if 200 <= c.code < 300 else None

    return rule


def _quit(c: _Context) -> _Note | None:
    if c.code == 221:
        return _Note(
            "Goodbye: the server closes the connection",
            "QUIT is the tidy end of a session. Messages already answered with 250 "
            "stay accepted; a transaction left open is simply dropped.",
            f"{R5321} §4.1.1.10",
        )
    return None


def _vrfy(c: _Context) -> _Note | None:
    if c.code == 252:
        return _Note(
            "252: the server would take mail for this address, without confirming it",
            "Confirming addresses helps spammers collect them, so a server that "
            "declines to disclose its users answers VRFY and EXPN with 252: 'I would "
            "take mail for it and try to deliver it'. Many, like Postfix with VRFY "
            "enabled (and this server), answer VRFY as they would RCPT TO: 252 2.0.0 for "
            "an address they accept, 550 5.1.1 for an unknown user, so there a 252 does "
            "give the address away.",
            f"{R5321} §3.5.3, §7.3",
        )
    if c.stage == "VRFY" and c.code == 550:
        return _Note(
            "VRFY: no such address here",
            "This server answers VRFY as it would RCPT TO, so an unknown user gets the "
            "same 550 a RCPT would get. That is exactly what address harvesters use VRFY "
            "for, and why many servers switch it off.",
            f"{R5321} §3.5.3, §7.3",
        )
    if c.code == 502:
        return _Note(
            f"{c.stage} is not implemented here",
            "502 means the server does not implement the command. A server that has it "
            "but declines to disclose its users answers 252 instead (RFC 5321 §7.3). "
            "Either way, RCPT TO is the only real test of an address.",
            f"{R5321} §4.2.4, §4.3.2, §7.3",
        )
    return None


_STAGES: dict[str, Callable[[_Context], _Note | None]] = {
    "greeting": _greeting,
    "HELO": _hello,
    "EHLO": _hello,
    "MAIL": _mail,
    "RCPT": _rcpt,
    "DATA": _data,
    "data-end": _data_end,
    "STARTTLS": _starttls,
    "AUTH": _auth,
    "auth": _auth,
    "QUIT": _quit,
    "VRFY": _vrfy,
    "EXPN": _vrfy,
    "RSET": _simple(
        "Transaction reset: sender and recipients forgotten; the greeting stays",
        "RSET abandons the mail transaction under way. The session itself, the "
        "greeting and any TLS or login, carries on.",
        f"{R5321} §4.1.1.5",
    ),
    "NOOP": _simple(
        "Nothing done, as asked: the connection is alive",
        "NOOP changes nothing; it is a harmless way to check that the server still answers.",
        f"{R5321} §4.1.1.9",
    ),
    "HELP": _simple(
        "Help text for people",
        "Every server words its help differently; nothing in it is meant for "
        "programs, and nothing changes.",
        f"{R5321} §4.1.1.8",
    ),
}


# --- bad sequence: which step is missing --------------------------------------------------


def _bad_sequence(c: _Context) -> _Note:
    s = c.state
    verb = c.verb or "that command"
    if c.alone:
        return _Note(
            f"Bad sequence: {verb} came out of order",
            "The command is fine in itself but arrived at the wrong point. The usual order "
            "is EHLO, (STARTTLS, EHLO, AUTH), MAIL FROM, RCPT TO, DATA.",
            f"{R5321} §4.1.4",
        )
    if s.banner is not None and s.banner.code == 554:
        return _Note(
            "Bad sequence: the server refused you when you connected",
            "After a 554 greeting the server answers every command with 503 until QUIT.",
            f"{R5321} §3.1",
            "QUIT.",
        )
    if verb in ("MAIL", "RCPT", "DATA") and not s.greeted and s.greeting_forgotten:
        return _Note(
            f"Bad sequence: send EHLO again before {verb}",
            "STARTTLS reset the session, so the server has forgotten your first EHLO "
            "and everything it told you. RFC 3207 §4.2 says the client SHOULD send EHLO "
            "again first; this server insists on it with 503.",
            "RFC 3207 §4.2; RFC 5321 §4.1.4",
            "EHLO your.host.name, then carry on.",
        )
    if verb in ("MAIL", "RCPT", "DATA") and not s.greeted:
        return _Note(
            f"Bad sequence: greet first; send EHLO (or HELO) before {verb}",
            "A session that carries mail must begin with EHLO or HELO.",
            f"{R5321} §4.1.4",
            "EHLO your.host.name",
        )
    if verb == "MAIL" and s.sender is not None:
        return _Note(
            f"Bad sequence: this transaction already has a sender, <{s.sender}>",
            "One transaction has one MAIL FROM. Finish it with DATA, or start over.",
            f"{R5321} §4.1.4",
            "RSET, then MAIL FROM again.",
        )
    if verb == "RCPT" and s.sender is None:
        return _Note(
            "Bad sequence: MAIL FROM first",
            "RCPT TO adds a recipient to a mail transaction, and only MAIL FROM opens one.",
            f"{R5321} §4.1.4, §3.3",
            "MAIL FROM:<your address>, then RCPT TO again.",
        )
    if verb == "DATA" and s.sender is None:
        return _Note(
            "Bad sequence: MAIL FROM first, then RCPT TO, then DATA",
            "There is no mail transaction yet, so there is nothing to send data for.",
            f"{R5321} §3.3",
            "MAIL FROM:<your address>",
        )
    if verb == "DATA" and not s.accepted:
        refused = ", ".join(f"<{r.address}> ({r.code})" for r in s.refused)
        why = f" The RCPT for {refused} was refused." if refused else ""
        return _Note(
            "Bad sequence: no recipient accepted yet",
            f"DATA needs at least one RCPT TO answered with 250.{why}",
            f"{R5321} §3.3",
            "RCPT TO:<a valid recipient>, then DATA.",
        )
    if verb == "STARTTLS" and s.tls:
        return _Note(
            "Bad sequence: TLS is already active",
            "STARTTLS works once per session.",
            "RFC 3207 §4.2",
        )
    if verb in ("STARTTLS", "AUTH") and s.greeting != "EHLO":
        after = " HELO offers no extensions." if s.greeting == "HELO" else ""
        return _Note(
            f"Bad sequence: {verb} is an ESMTP extension; send EHLO first",
            f"Extensions are offered in the EHLO reply, and only after EHLO may you use "
            f"them.{after}",
            "RFC 3207 §4" if verb == "STARTTLS" else "RFC 4954 §4",
            "EHLO your.host.name",
        )
    if verb == "AUTH" and not (s.tls or s.authenticated or "AUTH" in s.extensions):
        return _Note(
            "Bad sequence: AUTH is not offered before TLS",
            "This server's EHLO reply lists AUTH only after STARTTLS, so that no password "
            "crosses the network in clear; before that AUTH is out of sequence (Postfix: "
            "503 5.5.1 Error: authentication not enabled). Old servers answered 538, a "
            "code RFC 4954 now keeps for historical purposes only.",
            "RFC 4954 §4, §6; RFC 5321 §4.2.4",
            "STARTTLS, then EHLO again, then AUTH.",
        )
    if verb == "AUTH" and s.authenticated:
        return _Note(
            "Bad sequence: already logged in",
            "AUTH succeeds once per session.",
            "RFC 4954 §4",
        )
    if verb == "AUTH" and s.sender is not None:
        return _Note(
            "Bad sequence: AUTH is not allowed during a mail transaction",
            "Log in before MAIL FROM.",
            "RFC 4954 §4",
            "RSET, AUTH, then MAIL FROM again.",
        )
    return _Note(
        f"Bad sequence: {verb} is not allowed at this point",
        "The command is fine in itself but comes out of order. The usual order is "
        "EHLO, (STARTTLS, EHLO, AUTH), MAIL FROM, RCPT TO, DATA.",
        f"{R5321} §4.1.4",
    )


# --- code and enhanced status together (also without context) -----------------------------


def _by_status(c: _Context) -> _Note | None:
    if c.code == 421:
        return _closing(c)
    if c.code == 503:
        return _bad_sequence(c)
    if 400 <= c.code < 500 and ("greylist" in c.text or "graylist" in c.text):
        return _Note(
            "Greylisted: the server turns away a first attempt and waits for a retry",
            "A real mail server retries after a few minutes and gets through; much spam "
            "software never retries. Only a temporary (4xx) reply makes this work.",
            f"RFC 6647; {R5321} §4.5.4.1",
            "Retry in a few minutes (a mail server does this by itself).",
        )
    if c.code == 530:
        return _auth_required(c)
    rule = _STATUS.get(c.status or "")
    return rule(c) if rule else None


def _closing(c: _Context) -> _Note:
    text, status = c.text, c.status
    if status == "X.4.2" or "timeout" in text or "timed out" in text or "idle" in text:
        headline = "Idle timeout: the server stopped waiting for you and hung up"
        detail = (
            "A server waits only so long between commands (RFC 5321 suggests at least "
            "5 minutes). Nothing unfinished was kept."
        )
        rfc = f"{R5321} §4.5.3.2.7, §3.8"
    elif "connections" in text:
        headline = "Too many connections: the server is full and hangs up at once"
        detail = "It has reached its limit of simultaneous clients."
        rfc = f"{R5321} §3.8"
    elif "too many" in text:
        headline = "Too many errors: the server hangs up on a client that keeps failing"
        detail = "Servers do this to clients that send a stream of bad or unknown commands."
        rfc = f"{R5321} §3.8"
    elif status == "X.3.2" or "shutting down" in text or "shutdown" in text:
        headline = "The server is shutting down and closes the connection"
        detail = "An administrator stopped or restarted the service."
        rfc = f"{R5321} §3.8"
    else:
        headline = "Service not available: the server is closing the connection"
        detail = "A temporary condition (overload, maintenance, policy) ends the session."
        rfc = f"{R5321} §3.8, §4.2.3"
    detail += " Any message not yet answered with 250 was not accepted."
    return _Note(
        headline,
        detail,
        rfc,
        "Reconnect later; a mail client keeps the message queued and retries.",
    )


def _auth_required(c: _Context) -> _Note:
    if "tls" in c.text:
        return _Note(
            "Encryption required: STARTTLS first",
            "This server takes no mail (or no login) over an unencrypted connection.",
            "RFC 3207 §4",
            "STARTTLS, then EHLO again.",
        )
    return _Note(
        "Authentication required: log in first",
        "This server takes mail only from its own users, typically on the submission port 587.",
        "RFC 4954 §6; RFC 6409",
        "STARTTLS, EHLO, AUTH, then MAIL FROM again.",
    )


def _address_rule(
    headline: str, detail: str, rfc: str, advice: str | None = None
) -> Callable[[_Context], _Note | None]:
    """A rule keyed by enhanced code; "{who}" in the headline names the address."""

    def rule(c: _Context) -> _Note | None:
        return _Note(headline.format(who=c.who()), detail, rfc, advice)

    return rule


def _relay_or_policy(c: _Context) -> _Note | None:
    if c.code < 500 and "relay" not in c.text:
        return None  # 4.7.1 is also a greylisting and rate-limit code: see the text
    if "relay" in c.text:
        return _Note(
            f"Relay denied: this server does not take mail for {c.who()} from you",
            "A server accepts mail for its own domains, and relays elsewhere only for "
            "its logged-in users. Relaying for anyone (an open relay) is how spam spreads.",
            f"{R5321} §3.6, §7.9; RFC 3463 §3.8",
            "Send to a local address, or log in (STARTTLS, EHLO, AUTH) first.",
        )
    return _Note(
        "Refused by policy: delivery not authorized",
        "The server's rules refuse this sender, recipient or message; the text after "
        "the code usually says which rule.",
        "RFC 3463 §3.8",
        "Do not retry unchanged; if you think it is wrong, contact the postmaster.",
    )


def _authentication_failed(what: str, rfc: str) -> Callable[[_Context], _Note | None]:
    def rule(c: _Context) -> _Note | None:
        return _Note(
            f"Refused: {what}",
            "The receiver checks that mail really comes from the domain it claims. "
            "The fix is on the sending domain: its SPF record, DKIM signing, DMARC policy.",
            rfc,
            "The sender's administrator must fix the domain's authentication; resending "
            "will not help.",
        )

    return rule


def _temporary_or_permanent(c: _Context) -> str:
    return "Try again later." if c.code < 500 else "Do not retry unchanged."


def _mailbox_full(c: _Context) -> _Note | None:
    return _Note(
        f"Mailbox full: {c.who()} is over quota",
        "The mailbox exists but has no room; once its owner deletes mail, delivery works again.",
        "RFC 3463 §3.3",
        _temporary_or_permanent(c),
    )


def _too_big(c: _Context) -> _Note | None:
    limit = c.state.extensions.get("SIZE", "")
    known = f" The EHLO reply gave the limit: SIZE {limit}." if limit else ""
    return _Note(
        "Message too big for this server",
        f"It is over the size limit, so none of it is stored.{known}",
        f"RFC 3463 §3.4; {R5321} §4.5.3.1.9; RFC 1870 §6",
        "Send it smaller, for example with a link instead of an attachment.",
    )


def _too_many_recipients(c: _Context) -> _Note | None:
    return _Note(
        "Too many recipients for one message",
        "The recipients accepted so far stand; the server takes no more in this transaction.",
        f"{R5321} §4.5.3.1.10; RFC 3463 §3.6",
        "Send DATA for these, then a new transaction for the rest.",
    )


_STATUS: dict[str, Callable[[_Context], _Note | None]] = {
    "X.1.1": _address_rule(
        "No such user: {who} does not exist at this domain",
        "The server knows the domain but not the mailbox, the part before the @. "
        "Check the spelling: retrying will not help.",
        f"{R5321} §4.2.2; RFC 3463 §3.2",
        "Correct the address.",
    ),
    "X.1.2": _address_rule(
        "Bad domain: the part after the @ cannot receive mail",
        "The destination domain does not exist or has no mail server.",
        "RFC 3463 §3.2",
        "Check the domain name.",
    ),
    "X.1.3": _address_rule(
        "Malformed recipient address: {who}",
        "The server could not read it as an address: RFC 5321 wants local-part@domain, "
        "in angle brackets.",
        f"{R5321} §4.1.2; RFC 3463 §3.2",
        "Fix the address; the same one will be refused again.",
    ),
    "X.1.6": _address_rule(
        "Mailbox moved: {who} no longer takes mail, and no new address is known",
        "The address used to work.",
        "RFC 3463 §3.2",
    ),
    "X.1.7": _address_rule(
        "Malformed sender address: {who}",
        "The reverse-path of MAIL FROM is not a valid address: RFC 5321 wants "
        "local-part@domain in angle brackets, or <> for the null sender.",
        f"{R5321} §4.1.2; RFC 3463 §3.2",
        "Fix the sender address.",
    ),
    "X.1.8": _address_rule(
        "Bad sender domain: bounces to {who} could never arrive",
        "The sender's domain does not exist or cannot receive mail, so the server "
        "refuses mail that it could never report failures for.",
        "RFC 3463 §3.2",
    ),
    "X.1.10": _address_rule(
        "Null MX: the domain of {who} accepts no mail at all",
        "Its DNS publishes a null MX record, a deliberate statement that nothing can "
        "ever be delivered there.",
        "RFC 7505 §4.1; RFC 7504",
        "Do not retry: the address can never work.",
    ),
    "X.2.1": _address_rule(
        "Mailbox disabled: {who} is not taking mail",
        "The mailbox exists but has been switched off, for a while or for good.",
        "RFC 3463 §3.3",
    ),
    "X.2.2": _mailbox_full,
    "X.2.3": _address_rule(
        "Message too big for this mailbox",
        "The mailbox has its own size limit, lower than the system's.",
        "RFC 3463 §3.3",
        "Send it smaller.",
    ),
    "X.3.1": lambda c: _Note(
        "The server is out of storage",
        "The receiving system as a whole cannot store the message now; nothing was kept.",
        "RFC 3463 §3.4",
        _temporary_or_permanent(c),
    ),
    "X.3.4": _too_big,
    "X.5.3": _too_many_recipients,
    "X.6.7": _address_rule(
        "Non-ASCII address needs SMTPUTF8",
        "An address with characters outside ASCII may be used only when MAIL FROM "
        "carries the SMTPUTF8 parameter and the server offered it.",
        "RFC 6531 §3.5",
        "Add SMTPUTF8 to MAIL FROM, if the EHLO reply lists it.",
    ),
    "X.7.1": _relay_or_policy,
    "X.7.8": lambda c: _Note(
        "Login failed: wrong user name or password",
        "The server refused the credentials.",
        "RFC 4954 §6",
        "Check them before trying again.",
    ),
    "X.7.11": lambda c: _Note(
        "Encrypt first: this login mechanism needs TLS",
        "It would send the password readable by anyone on the path. (Its reply code "
        "538 is historical, RFC 4954 §6; servers today answer 503 or 504.)",
        "RFC 4954 §6",
        "STARTTLS, then EHLO again, then AUTH.",
    ),
    "X.7.13": _address_rule(
        "Account disabled",
        "The account exists but an administrator switched it off.",
        "RFC 5248",
    ),
    "X.7.20": _authentication_failed("no passing DKIM signature", "RFC 7372 §3.1"),
    "X.7.21": _authentication_failed("no acceptable DKIM signature", "RFC 7372 §3.1"),
    "X.7.22": _authentication_failed("no DKIM signature from the From: domain", "RFC 7372 §3.1"),
    "X.7.23": _authentication_failed(
        "SPF says this server may not send for the sender's domain", "RFC 7372 §3.2; RFC 7208"
    ),
    "X.7.24": lambda c: _Note(
        "SPF could not be checked",
        "Evaluating the sender domain's SPF record failed, often on DNS.",
        "RFC 7372 §3.2; RFC 7208",
        _temporary_or_permanent(c),
    ),
    "X.7.25": lambda c: _Note(
        "Refused: the sending server's address failed the reverse DNS check",
        "Its IP address has no PTR record, or one that does not lead back to it.",
        "RFC 7372 §3.3",
        "The sending server's operator must fix its reverse DNS.",
    ),
    "X.7.26": _authentication_failed(
        "the message failed sender authentication (SPF, DKIM, DMARC)", "RFC 7372 §3.4; RFC 9989"
    ),
    "X.7.27": _address_rule(
        "Sender domain has a null MX: bounces could never reach {who}",
        "The sender's domain says it accepts no mail, so the server refuses mail from "
        "it: failures could never be reported.",
        "RFC 7505 §4.1, §4.2",
        "Use a sender address on a domain that receives mail.",
    ),
}


# --- the code alone -----------------------------------------------------------------------


def _by_code(c: _Context) -> _Note | None:
    rule = _CODES.get(c.code)
    return rule(c) if rule else None


def _line_too_long(c: _Context) -> _Note:
    return _Note(
        "Line too long",
        "A command line may be at most 512 octets and a line of message text 1000, "
        "both counting the CRLF. Extensions lengthen MAIL and RCPT lines by what their "
        "parameters need: SIZE=, BODY=, SMTPUTF8, and AUTH= adds 500 octets (RFC 4954 §3).",
        f"{R5321} §4.5.3.1.4, §4.5.3.1.6; RFC 4954 §3",
        "Wrap long lines (or encode the content, e.g. quoted-printable).",
    )


def _unrecognised(c: _Context) -> _Note:
    if "too long" in c.text:
        return _line_too_long(c)
    if c.stage == "" and not c.alone:  # the line sent was empty (or only spaces)
        return _Note(
            "An empty line: no command at all",
            "Pressing Enter on its own sends just CRLF. Outside DATA an empty line is not a "
            "command, so the server says so and waits; nothing else changes. Inside DATA an "
            "empty line is message text: the first one separates the headers from the body.",
            f"{R5321} §4.1.1, §4.2.4",
            "Type a command, or QUIT to leave.",
        )
    if not c.verb:
        return _Note(
            "Command not recognised",
            "The server did not understand the line as a command.",
            f"{R5321} §4.2.4",
        )
    return _Note(
        f"Command not recognised: {c.stage}",
        "Check the spelling. The SMTP verbs are HELO, EHLO, MAIL, RCPT, DATA, RSET, "
        "NOOP, QUIT, VRFY, HELP, plus extensions such as STARTTLS and AUTH.",
        f"{R5321} §4.2.4",
    )


_CODES: dict[int, Callable[[_Context], _Note | None]] = {
    221: lambda c: _Note(
        "The server closes the connection",
        "221 is the normal end of a session.",
        f"{R5321} §4.1.1.10",
    ),
    450: lambda c: _Note(
        "Mailbox unavailable for now: try again later",
        "Temporary: keep the message and retry. Greylisting servers answer a first "
        "attempt this way and accept the retry minutes later.",
        f"{R5321} §4.2.1, §4.5.4.1; RFC 6647",
        "Retry later.",
    ),
    451: lambda c: _Note(
        "Error on the server's side, temporary: try again later",
        "Something failed inside the server (a lookup, a filter, storage) and it "
        "expects the problem to pass. Greylisting servers use 451 too.",
        f"{R5321} §4.2.1, §4.5.4.1",
        "Retry later.",
    ),
    452: lambda c: (
        _too_many_recipients(c)
        if c.stage == "RCPT"
        else _Note(
            "Not now: the server is short of storage",
            "It cannot take the message at the moment; nothing was kept.",
            f"{R5321} §4.2.1",
            "Retry later.",
        )
    ),
    454: lambda c: _Note(
        "TLS or login temporarily unavailable",
        "A passing problem on the server's side, not a wrong password.",
        "RFC 3207 §4; RFC 4954 §6",
        "Retry later; do not fall back to an unencrypted session for mail that must be protected.",
    ),
    500: _unrecognised,
    501: lambda c: _Note(
        "Syntax error in the arguments",
        "The command is known, but what follows it is malformed. The forms are "
        "MAIL FROM:<a@b>, RCPT TO:<a@b>, EHLO host.name.",
        f"{R5321} §4.1.1, §4.1.2",
    ),
    502: lambda c: _Note(
        "Command not implemented: the server knows it but does not offer it",
        "500 would mean 'unknown'; 502 means 'known, but not here'.",
        f"{R5321} §4.2.4",
    ),
    504: lambda c: _Note(
        "Parameter not implemented: the command is fine, this option is not",
        "Use only parameters the server lists in its EHLO reply.",
        f"{R5321} §4.2.3",
    ),
    534: lambda c: _Note(
        "Login mechanism too weak for this account",
        "Policy demands a stronger mechanism than the one chosen.",
        "RFC 4954 §6",
        "Pick a stronger mechanism from the AUTH line.",
    ),
    535: lambda c: _Note(
        "Login failed: wrong user name or password",
        "The server refused the credentials.",
        "RFC 4954 §6",
    ),
    538: lambda c: _Note(
        "Encrypt first (538, a historical code): this login mechanism needs TLS",
        "It would send the password readable by anyone on the path. RFC 4954 §6 keeps "
        "538 for historical purposes only; servers today answer 503 (AUTH not offered "
        "before TLS) or 504 5.5.4 (mechanism needs encryption, RFC 4954 §4).",
        "RFC 4954 §6",
        "STARTTLS, then EHLO again, then AUTH.",
    ),
    550: lambda c: _Note(
        "Refused: mailbox unavailable, or policy says no",
        "550 alone covers 'no such user', 'relay denied' and policy rejections alike; "
        "the enhanced code and the text say which. It is permanent.",
        f"{R5321} §4.2.2, §4.2.3",
        "Read the text; do not retry unchanged.",
    ),
    551: lambda c: _Note(
        f"User not local: the server will not forward to {c.who()}",
        "The mailbox is not here. The text may name a new address; the sender can resend there.",
        f"{R5321} §3.4, §7.4",
    ),
    552: lambda c: _Note(
        "Too big: over a size or quota limit",
        "The message, or the mailbox it is for, would exceed a storage limit.",
        f"{R5321} §4.2.2, §4.5.3.1.9; RFC 1870 §6",
        "Send it smaller, or wait until the mailbox has room.",
    ),
    553: lambda c: _Note(
        f"Address not allowed: {c.who()}",
        "The mailbox name is malformed or not acceptable to this server.",
        f"{R5321} §4.2.2",
        "Fix the address.",
    ),
    554: lambda c: _Note(
        "Transaction failed",
        "A permanent refusal with no more specific code, often a spam, virus or "
        "policy filter. The text and enhanced code say why.",
        f"{R5321} §4.2.3, §3.3",
        "Do not retry unchanged.",
    ),
    555: lambda c: _Note(
        f"{c.verb or 'MAIL/RCPT'} parameter not recognised",
        "The address is fine; a parameter after it belongs to no extension this server "
        "offers (not a syntax error, which would be 501). Only parameters of extensions "
        "the EHLO reply listed may follow the address"
        + ("; after HELO there are none." if c.state.greeting == "HELO" else "."),
        f"{R5321} §4.1.1.11",
        "Drop the parameter.",
    ),
    556: lambda c: _Note(
        f"The domain of {c.who()} accepts no mail",
        "It publishes a null MX record: nothing can ever be delivered there.",
        "RFC 7504; RFC 7505 §4.1",
        "Do not retry.",
    ),
}


# --- the catalogue, and the finishing touches ---------------------------------------------


def _from_catalogue(c: _Context) -> _Note:
    entry = reply_code(c.code)
    if entry is None:
        return _Note(
            short_meaning(c.code),
            f"{reply_class(c.code)}; {reply_category(c.code)}.",
            f"{R5321} §4.2.1",
        )
    return _Note(short_meaning(c.code), entry.meaning, entry.rfc, entry.action)


def enhanced_meaning(enhanced: str, code: int | None = None) -> str:
    """An enhanced code in words: its registry title, class and subject, and description."""
    klass, subject, detail = (int(part) for part in enhanced.split("."))
    subject_entry = enhanced_code(f"X.{subject}.YYY")
    class_entry = enhanced_code(f"{klass}.XXX.YYY")
    parts = [class_entry.title.lower() if class_entry else f"class {klass}"]
    if subject_entry:
        parts.append(subject_entry.title.lower())
    where = "; ".join(parts)
    entry = enhanced_code(enhanced)
    if entry is not None and detail == 0 and subject == 0:
        text = f"{entry.title} ({where}): only the class is known."
    elif entry is not None:
        text = f"{entry.title} ({where}). {entry.description}"
    elif subject_entry is not None:
        text = (
            f"Not in the IANA registry ({where}): probably this provider's own detail "
            "code; the words after it say more."
        )
    else:
        text = "Not an enhanced status code of the IANA registry."
    if code is not None and code // 100 != klass:
        text += f" Its class {klass} does not match reply {code}: trust the reply code."
    return text


def _finish(note: _Note, c: _Context) -> Annotation:
    advice = note.advice
    detail = note.detail
    if c.stage == "RCPT" and c.code >= 400 and c.code not in (421, 503):
        # Each RCPT is judged on its own: a refusal never undoes the others.
        accepted = len(c.state.accepted)
        rest = f"the {accepted} accepted so far still stand" if accepted else "none is accepted yet"
        if c.alone:
            rest = "the others are judged on their own"
        advice = f"Only this recipient is refused; {rest}. " + (advice or "")
    if c.stage == "data-end" and c.code >= 400 and c.code != 421:
        detail += " The whole message was refused: no recipient gets it. " + (
            "Send it again later." if c.code < 500 else "The sender must change something."
        )
    enhanced = c.reply.enhanced
    return Annotation(
        headline=note.headline,
        detail=detail,
        rfc=note.rfc,
        reply_class=reply_class(c.code),
        enhanced=enhanced,
        enhanced_meaning=enhanced_meaning(enhanced, c.code) if enhanced else None,
        advice=advice.strip() if advice else None,
    )
