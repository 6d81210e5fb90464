"""Bad sequence (503): which step is missing, from what the server knew before."""

from __future__ import annotations

from tutor.explain.annotate.note import Context, Note

R5321 = "RFC 5321"


def bad_sequence(c: Context) -> Note:
    s = c.state
    verb = c.verb or "that command"
    if c.alone:
        return Note(
            f"Bad sequence: {verb} came out of order",
            "The command is fine in itself but arrived at the wrong point. The usual order "
            "is EHLO, (STARTTLS, EHLO, AUTH), MAIL FROM, RCPT TO, DATA.",
            f"{R5321} §4.1.4",
        )
    if s.banner is not None and s.banner.code == 554:
        return Note(
            "Bad sequence: the server refused you when you connected",
            "After a 554 greeting the server answers every command with 503 until QUIT.",
            f"{R5321} §3.1",
            "QUIT.",
        )
    if verb in ("MAIL", "RCPT", "DATA") and not s.greeted and s.greeting_forgotten:
        return Note(
            f"Bad sequence: send EHLO again before {verb}",
            "STARTTLS reset the session, so the server has forgotten your first EHLO "
            "and everything it told you. RFC 3207 §4.2 says the client SHOULD send EHLO "
            "again first; this server insists on it with 503.",
            "RFC 3207 §4.2; RFC 5321 §4.1.4",
            "EHLO your.host.name, then carry on.",
        )
    if verb in ("MAIL", "RCPT", "DATA") and not s.greeted:
        return Note(
            f"Bad sequence: greet first; send EHLO (or HELO) before {verb}",
            "A session that carries mail must begin with EHLO or HELO.",
            f"{R5321} §4.1.4",
            "EHLO your.host.name",
        )
    if verb == "MAIL" and s.sender is not None:
        return Note(
            f"Bad sequence: this transaction already has a sender, <{s.sender}>",
            "One transaction has one MAIL FROM. Finish it with DATA, or start over.",
            f"{R5321} §4.1.4",
            "RSET, then MAIL FROM again.",
        )
    if verb == "RCPT" and s.sender is None:
        return Note(
            "Bad sequence: MAIL FROM first",
            "RCPT TO adds a recipient to a mail transaction, and only MAIL FROM opens one.",
            f"{R5321} §4.1.4, §3.3",
            "MAIL FROM:<your address>, then RCPT TO again.",
        )
    if verb == "DATA" and s.sender is None:
        return Note(
            "Bad sequence: MAIL FROM first, then RCPT TO, then DATA",
            "There is no mail transaction yet, so there is nothing to send data for.",
            f"{R5321} §3.3",
            "MAIL FROM:<your address>",
        )
    if verb == "DATA" and not s.accepted:
        refused = ", ".join(f"<{r.address}> ({r.code})" for r in s.refused)
        why = f" The RCPT for {refused} was refused." if refused else ""
        return Note(
            "Bad sequence: no recipient accepted yet",
            f"DATA needs at least one RCPT TO answered with 250.{why}",
            f"{R5321} §3.3",
            "RCPT TO:<a valid recipient>, then DATA.",
        )
    if verb == "STARTTLS" and s.tls:
        return Note(
            "Bad sequence: TLS is already active",
            "STARTTLS works once per session.",
            "RFC 3207 §4.2",
        )
    if verb in ("STARTTLS", "AUTH") and s.greeting != "EHLO":
        after = " HELO offers no extensions." if s.greeting == "HELO" else ""
        return Note(
            f"Bad sequence: {verb} is an ESMTP extension; send EHLO first",
            f"Extensions are offered in the EHLO reply, and only after EHLO may you use "
            f"them.{after}",
            "RFC 3207 §4" if verb == "STARTTLS" else "RFC 4954 §4",
            "EHLO your.host.name",
        )
    if verb == "AUTH" and not (s.tls or s.authenticated or "AUTH" in s.extensions):
        return Note(
            "Bad sequence: AUTH is not offered before TLS",
            "This server's EHLO reply lists AUTH only after STARTTLS, so that no password "
            "crosses the network in clear; before that AUTH is out of sequence (Postfix: "
            "503 5.5.1 Error: authentication not enabled). Old servers answered 538, a "
            "code RFC 4954 now keeps for historical purposes only.",
            "RFC 4954 §4, §6; RFC 5321 §4.2.4",
            "STARTTLS, then EHLO again, then AUTH.",
        )
    if verb == "AUTH" and s.authenticated:
        return Note(
            "Bad sequence: already logged in",
            "AUTH succeeds once per session.",
            "RFC 4954 §4",
        )
    if verb == "AUTH" and s.sender is not None:
        return Note(
            "Bad sequence: AUTH is not allowed during a mail transaction",
            "Log in before MAIL FROM.",
            "RFC 4954 §4",
            "RSET, AUTH, then MAIL FROM again.",
        )
    return Note(
        f"Bad sequence: {verb} is not allowed at this point",
        "The command is fine in itself but comes out of order. The usual order is "
        "EHLO, (STARTTLS, EHLO, AUTH), MAIL FROM, RCPT TO, DATA.",
        f"{R5321} §4.1.4",
    )
