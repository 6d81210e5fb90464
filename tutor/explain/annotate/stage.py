"""The conversation stage: a reply explained by the command it answers (or the greeting,
or the end of the message), and the EHLO reply's extensions in words."""

from __future__ import annotations

import re
from dataclasses import replace

from tutor.explain.annotate.note import Context, Note, Rule
from tutor.explain.annotate.sequence import bad_sequence
from tutor.smtp.session_state import SessionState, queue_id
from tutor.smtp.student import noop_student
from tutor.smtp.wire import split_command

R5321 = "RFC 5321"


def stage_of(command: str | None, state: SessionState) -> tuple[str, str]:
    """The stage a reply to `command` answers, and the command's argument."""
    if state.in_data:
        return "data-end", ""
    if command is None:
        return ("notice" if state.banner is not None else "greeting"), ""
    if state.auth_pending:
        return "auth", command
    return split_command(command)


def stage_from_words(text: str) -> str:
    """The stage a bounce's words name ("in reply to RCPT TO command"), else "?"."""
    words = " ".join(text.split())  # bounces wrap lines anywhere
    match = re.search(
        r"(?:in reply to|after) (end of data|data|rcpt to|mail from)\b", words, re.IGNORECASE
    )
    if match is None:
        return "?"  # unknown: no rule may assume anything about the state
    return {"end of data": "data-end", "data": "DATA", "rcpt to": "RCPT"}.get(
        match.group(1).lower(), "MAIL"
    )


def by_stage(c: Context) -> Note | None:
    handler = _STAGES.get(c.stage)
    return handler(c) if handler else None


def _greeting(c: Context) -> Note | None:
    if c.code == 220:
        name = c.reply.lines[0].text.split(" ", 1)[0]
        return Note(
            f"Greeting: {name} is ready for you",
            "The server speaks first; the name after 220 is its own domain, which RFC "
            "5321 §4.3.1 requires in the greeting. "
            "The word ESMTP in a banner is a custom, not a promise: a client should "
            "start with EHLO anyway.",
            f"{R5321} §4.3.1, §3.2",
            "Introduce yourself: EHLO your.host.name (HELO only for very old servers).",
        )
    if c.code == 554 and "class's network" in c.text:  # smtp-tutor serve --lan
        return Note(
            "The server refuses to serve you: your machine is not on the class's network",
            "This class's server serves only private, link-local and loopback addresses "
            "(the addresses of machines on the same local network), and yours is none of "
            "them. As RFC 5321 asks after a 554, it keeps the line open until QUIT and "
            "answers anything else with 503.",
            f"{R5321} §3.1",
            "Send QUIT, join the class's network (the teacher's Wi-Fi or LAN) and connect "
            "again, or ask the teacher to serve your network (serve --lan --allow CIDR).",
        )
    if c.code == 554:
        return Note(
            "The server refuses to serve you (554 instead of a greeting)",
            "It will take no mail from this client. RFC 5321 asks it to keep the line "
            "open until QUIT and to answer anything else with 503.",
            f"{R5321} §3.1",
            "Send QUIT. The text often says why (a blocklist, for instance).",
        )
    if c.code == 521:
        return Note(
            "This host accepts no mail at all",
            "521 at connect says the machine is not a mail server for anyone, so no "
            "command can help.",
            "RFC 7504 §3",
            "Do not retry here; try another MX of the domain, or give up.",
        )
    return None


def _hello(c: Context) -> Note | None:
    if c.code == 250 and c.stage == "HELO":
        return Note(
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
        return Note(
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
        return Note(
            f"{c.stage} needs your host name",
            "Give your fully qualified domain name (client.example) or an address "
            "literal ([192.0.2.1]). The server may check it, but it cannot trust it.",
            f"{R5321} §4.1.1.1, §4.1.3",
        )
    if c.code in (500, 502) and c.stage == "EHLO":
        return Note(
            "This server does not know EHLO: fall back to HELO",
            "Very old servers speak only the original SMTP. The server stays in the "
            "state it was in, so HELO can follow at once.",
            f"{R5321} §4.1.4, §3.2",
            "Send HELO your.host.name.",
        )
    return None


def _ehlo_accepted(c: Context) -> Note:
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
    return Note(headline, "\n".join(lines), f"{R5321} §4.1.1.1, §2.2", advice)


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


def _mail(c: Context) -> Note | None:
    if c.code == 250 and c.address == "":
        return Note(
            "Null sender accepted: MAIL FROM:<> marks mail that must never be bounced",
            "Bounces themselves are sent with the empty reverse-path, so that a failure "
            "to deliver a bounce cannot cause another one, and a loop.",
            f"{R5321} §4.5.5, §4.1.1.2",
            "RCPT TO:<address>.",
        )
    if c.code == 250:
        return Note(
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
        return Note(
            "Too big, refused before sending: the SIZE you declared is over the limit",
            "Because MAIL FROM announced the size with SIZE=, the server can say no now, "
            f"before any data is sent{where}.",
            "RFC 1870 §6",
            "Send a smaller message (or one without large attachments).",
        )
    if c.code == 550 and c.status == "X.7.1":
        return Note(
            f"Sender refused by policy: {c.who()} may not send here",
            "The server will not take mail from this sender: it may be an address you "
            "are not allowed to use, or a blocked source.",
            "RFC 3463 §3.8",
        )
    return None


def _rcpt(c: Context) -> Note | None:
    if c.code in (250, 251) and "relay" in c.text:
        return _relay_accepted(c)
    if c.code == 250:
        count = len(c.state.accepted) + 1
        plural = "" if count == 1 else "s"
        return Note(
            f"Recipient accepted: the envelope now has {count} recipient{plural}; "
            "each RCPT is judged on its own",
            f"<{c.address}> is on the envelope. A later RCPT may still be refused without "
            "undoing this one; DATA delivers to every accepted recipient and to no one "
            "else, whatever To: and Cc: will say.",
            f"{R5321} §4.1.1.3",
            "Add more RCPT TO lines, or send DATA.",
        )
    if c.code == 251:
        return Note(
            f"Recipient accepted: <{c.address}> will be forwarded by the server",
            "The mailbox is not here, but the server knows where it went and takes the "
            "message on itself.",
            f"{R5321} §3.4",
        )
    if c.code == 501:
        return _syntax_of_path(c, "RCPT TO:<you@tutor.test>", "TO:")
    return None


def _relay_accepted(c: Context) -> Note:
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
    return Note(
        f"Recipient accepted for relay: <{c.address}> is on another domain",
        why,
        f"{R5321} §3.6, §7.9",
        "Add more RCPT TO lines, or send DATA.",
    )


def _syntax_of_path(c: Context, example: str, keyword: str) -> Note:
    argument = c.argument.upper()
    if not argument.startswith(keyword):
        return Note(
            f"{c.stage} needs {keyword}<address>",
            f"The keyword {keyword} comes straight after {c.stage}, then the address "
            "in angle brackets.",
            f"{R5321} §4.1.1.2, §4.1.1.3",
            f"Send {example}",
        )
    if "<" not in c.argument:
        return Note(
            "Angle brackets are required around the address",
            "RFC 5321 writes the address inside < >; old tutorials often lost them. "
            "Strict servers refuse the address without them (this one, and Postfix "
            "with strict_rfc821_envelopes); Postfix's default lets it pass.",
            f"{R5321} §4.1.2",
            f"Send {example}",
        )
    return Note(
        f"Syntax error in the {c.stage} arguments",
        "The address is bracketed, but a parameter after it is malformed (SIZE= "
        "wants a plain number, for instance). A parameter the server does not "
        "support at all gets 555 instead.",
        f"{R5321} §4.1.2, §4.1.1.11",
        f"Send {example}",
    )


def _data(c: Context) -> Note | None:
    if c.code == 354:
        count = len(c.state.accepted)
        plural = "" if count == 1 else "s"
        reach = f" It will reach {count} accepted recipient{plural}." if count else ""
        return Note(
            "Go ahead: send the message, then a line with only a dot",
            "From here every line is message text, not a command: headers, an empty "
            "line, the body, until CRLF.CRLF. A text line that starts with a dot is sent "
            "with one more dot (dot-stuffing), which the server removes, so it cannot end "
            f"the message early.{reach}",
            f"{R5321} §4.1.1.4, §4.5.2",
        )
    if c.code == 554 and not c.state.accepted:  # "no valid recipients" (RFC 5321 §3.3)
        note = bad_sequence(c)
        return replace(note, headline=note.headline.replace("Bad sequence", "No valid recipients"))
    if c.code == 501 and c.argument:
        return Note(
            "DATA takes no argument",
            "The message text comes after the 354 reply, never on the DATA line.",
            f"{R5321} §4.1.1.4",
            "Send DATA alone.",
        )
    return None


def _data_end(c: Context) -> Note | None:
    if c.code != 250:
        return None
    qid = queue_id(c.reply)
    sender = f"<{c.state.sender}>" if c.state.sender is not None else "the envelope sender"
    count = len(c.state.accepted)
    to_whom = f" for {count} recipient{'' if count == 1 else 's'}" if count else ""
    return Note(
        "Message accepted and queued: the server now takes responsibility for it"
        + (f"; queue id {qid}" if qid else ""),
        f"From this 250 on, delivering the message{to_whom}, or bouncing it to {sender}, "
        "is the receiving server's job. Had the connection dropped before this reply, "
        "the message would not count as accepted and the client would send it again.",
        f"{R5321} §4.1.1.4, §6.1",
        "Send another message (MAIL FROM), or QUIT.",
    )


def _starttls(c: Context) -> Note | None:
    if c.code == 220:
        return Note(
            "Start the TLS handshake now; after it, send EHLO again — the server "
            "forgot the greeting",
            "The next bytes must be the TLS handshake; a careful server throws away "
            "commands pipelined after STARTTLS. TLS protects this one hop only, and mail "
            "servers sending to each other accept any certificate unless MTA-STS or DANE "
            "is in use.",
            "RFC 3207 §4, §4.2",
            "By hand: openssl s_client -starttls smtp -crlf -quiet -connect HOST:PORT",
        )
    if c.code == 454 and c.state.greeting == "EHLO" and "STARTTLS" not in c.state.extensions:
        return Note(
            "No TLS here: this server did not offer STARTTLS",
            "Its EHLO reply does not list STARTTLS, so it cannot encrypt this connection. "
            "A mail server sending here would carry on in plaintext (STARTTLS is "
            "opportunistic) unless MTA-STS or DANE demands TLS for this domain.",
            "RFC 3207 §4; RFC 8461; RFC 7672",
            "Send mail unencrypted only if that is acceptable; otherwise QUIT.",
        )
    if c.code == 454:
        return Note(
            "TLS is not available right now",
            "A temporary problem on the server's side. If the mail must travel encrypted, "
            "do not carry on in plain text.",
            "RFC 3207 §4",
            "Try again later.",
        )
    if c.code == 501:
        return Note("STARTTLS takes no argument", "Send the word alone.", "RFC 3207 §4", "STARTTLS")
    if c.code in (500, 502):
        return Note(
            "This server does not offer STARTTLS",
            "Only a server that lists STARTTLS in its EHLO reply can encrypt the connection.",
            "RFC 3207 §4",
        )
    return None


def _auth(c: Context) -> Note | None:
    if c.code == 334:
        return _challenge(c)
    if 200 <= c.code < 300 and c.code != 235 and c.stage in ("AUTH", "auth"):
        return Note(
            f"AUTH answered with {c.code}, not 235",
            "RFC 4954 defines 235 for a successful login; this reply is the server's own "
            "idea. Test servers (Postfix's smtp-sink, for one) say yes to anything without "
            "checking the credentials.",
            "RFC 4954 §6",
        )
    if c.code == 235:
        user = _user_after(c)
        who = f" as {user}" if user else ""
        return Note(
            f"Logged in{who}: the server now knows who is sending",
            "A submission server now relays to other domains for you, and records the "
            "login in its Received: header (ESMTPA, or ESMTPSA with TLS).",
            "RFC 4954 §6; RFC 3848",
            "Go on with MAIL FROM:<your address>.",
        )
    if c.code == 535:
        return Note(
            "Login failed: wrong user name or password",
            "The server checked the credentials and refused them. Servers slow down or "
            "lock out clients that keep guessing.",
            "RFC 4954 §6",
            "Check the credentials before trying again.",
        )
    if c.code == 538:
        sent = c.stage == "AUTH" and len(c.argument.split()) > 1  # an initial response
        return Note(
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
        return Note(
            "Encrypt first: this login mechanism needs an encrypted connection",
            "AUTH PLAIN and LOGIN send the password in base64, an encoding anyone can "
            "undo. A mechanism that needs encryption is refused with 504 (RFC 4954 §4); "
            "the old 538 code is kept for historical purposes only.",
            "RFC 4954 §4, §6",
            "STARTTLS, then EHLO again, then AUTH.",
        )
    if c.code == 504:
        offered = c.state.extensions.get("AUTH", "")
        return Note(
            "Unknown login mechanism",
            "The server supports only the mechanisms on the AUTH line of its EHLO reply"
            + (f": {offered}." if offered else "."),
            "RFC 4954 §4",
            "AUTH PLAIN or AUTH LOGIN, if offered.",
        )
    if c.code == 501 and c.stage == "auth":
        if c.argument.strip() == "*" or "abort" in c.text:
            return Note(
                "Login cancelled",
                "Answering a 334 with a single '*' abandons the AUTH exchange.",
                "RFC 4954 §4",
            )
        return Note(
            "The answer was not valid base64",
            "Each answer to a 334 is one line of base64, such as the output of "
            "printf '\\0you\\0password' | base64.",
            "RFC 4954 §4",
        )
    if c.code in (500, 502) and not c.state.tls:
        return Note(
            "AUTH is not offered here (yet)",
            "Many servers offer AUTH only after STARTTLS, so that no password crosses "
            "the network in clear.",
            "RFC 4954 §4",
            "STARTTLS, EHLO, then AUTH.",
        )
    return None


def _user_after(c: Context) -> str | None:
    """The user an AUTH exchange logs in as, if the answers show it."""
    after = c.state.copy()
    command = c.argument if c.stage == "auth" else f"AUTH {c.argument}"
    after.feed(command, c.reply, kind="auth" if c.stage == "auth" else "command")
    return after.auth_user


def _challenge(c: Context) -> Note:
    raw = c.reply.lines[-1].text.strip()
    if not raw:
        return Note(
            "AUTH continues: the server is ready for your credentials",
            "An empty challenge means 'go on'. For PLAIN, send base64 of "
            "NUL user NUL password on one line.",
            "RFC 4954 §4; RFC 4616 §2",
        )
    from tutor.smtp import authcodec  # with the first AUTH challenge explained

    data = authcodec.decode(raw)
    try:
        decoded = data.decode("utf-8") if data is not None else ""
    except UnicodeDecodeError:
        decoded = ""
    if not decoded or not decoded.isprintable():
        return Note(
            "AUTH continues: the server sent a challenge",
            f"The text after 334 is base64 ({raw}); the mechanism decides how to answer "
            "it. Answer with one base64 line, or '*' to cancel.",
            "RFC 4954 §4",
        )
    return Note(
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


def _simple(headline: str, detail: str, rfc: str) -> Rule:
    """A stage whose 250 (or 214, 221, 252) needs one fixed explanation."""

    def rule(c: Context) -> Note | None:
        return Note(headline, detail, rfc) if 200 <= c.code < 300 else None

    return rule


def _quit(c: Context) -> Note | None:
    if c.code == 221:
        return Note(
            "Goodbye: the server closes the connection",
            "QUIT is the tidy end of a session. Messages already answered with 250 "
            "stay accepted; a transaction left open is simply dropped.",
            f"{R5321} §4.1.1.10",
        )
    return None


def _noop(c: Context) -> Note | None:
    if not 200 <= c.code < 300:
        return None
    student = noop_student(c.argument)
    if student is None:
        return Note(
            "Nothing done, as asked: the connection is alive",
            "NOOP changes nothing; it is a harmless way to check that the server still "
            "answers. Servers ignore any argument after it.",
            f"{R5321} §4.1.1.9",
        )
    if student.name is None:
        return Note(
            "Still nothing done, and no name taken",
            f"This teaching server reads NOOP student=NAME to put you on the class "
            f"roster, but not this name ({student.problem}). Try again, e.g. NOOP "
            f"student=Ada.",
            f"{R5321} §4.1.1.9",
        )
    return Note(
        f"Named: this server now knows the session as {student.name}",
        "RFC 5321 lets NOOP carry an argument and asks servers to ignore it; this "
        "teaching server reads one form of its own, student=NAME, so that a teacher's "
        "roster (smtp-tutor serve, smtp-tutor class) can tell a class at telnet apart. "
        "Anywhere else this is an ordinary NOOP: nothing changes.",
        f"{R5321} §4.1.1.9",
    )


def _vrfy(c: Context) -> Note | None:
    if c.code == 252:
        return Note(
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
        return Note(
            "VRFY: no such address here",
            "This server answers VRFY as it would RCPT TO, so an unknown user gets the "
            "same 550 a RCPT would get. That is exactly what address harvesters use VRFY "
            "for, and why many servers switch it off.",
            f"{R5321} §3.5.3, §7.3",
        )
    if c.code == 502:
        return Note(
            f"{c.stage} is not implemented here",
            "502 means the server does not implement the command. A server that has it "
            "but declines to disclose its users answers 252 instead (RFC 5321 §7.3). "
            "Either way, RCPT TO is the only real test of an address.",
            f"{R5321} §4.2.4, §4.3.2, §7.3",
        )
    return None


_STAGES: dict[str, Rule] = {
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
    "NOOP": _noop,
    "HELP": _simple(
        "Help text for people",
        "Every server words its help differently; nothing in it is meant for "
        "programs, and nothing changes.",
        f"{R5321} §4.1.1.8",
    ),
}
