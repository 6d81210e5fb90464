"""End-of-lesson questions: each answer is a fact of the learner's own session.

The facts come from what the server recorded (the capture), so they differ from one run
to the next and cannot be learned by heart: the learner reads them off their transcript.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from tutor.smtp.events import (
    BounceSent,
    DsnDelivered,
    Event,
    Exchange,
    HostReached,
    MailboxRead,
    MessageStored,
)


def _messages(events: Sequence[Event]) -> list[MessageStored]:
    return [e for e in events if isinstance(e, MessageStored)]


def _last_message(events: Sequence[Event]) -> MessageStored | None:
    messages = _messages(events)
    return messages[-1] if messages else None


def _of_message(fact: Callable[[MessageStored], object]) -> Callable[[Sequence[Event]], str]:
    """A fact of the last message stored in the session ("" before there is one)."""

    def read(events: Sequence[Event]) -> str:
        message = _last_message(events)
        return str(fact(message)) if message else ""

    return read


def _commands(events: Sequence[Event]) -> list[Exchange]:
    return [e for e in events if isinstance(e, Exchange) and e.kind == "command" and e.replies]


def _helo_name(events: Sequence[Event]) -> str:
    for exchange in reversed(_commands(events)):
        if exchange.verb in ("HELO", "EHLO") and (exchange.code or 0) == 250:
            return exchange.command.split(" ", 1)[1].strip() if " " in exchange.command else ""
    return ""


def _refused_code(events: Sequence[Event]) -> str:
    for exchange in _commands(events):
        reply = exchange.reply
        if reply is not None and reply.code >= 400 and reply.enhanced:
            return reply.enhanced
    return ""


def _last_code(events: Sequence[Event]) -> str:
    commands = [e for e in _commands(events) if e.verb != "QUIT"]
    return str(commands[-1].code) if commands else ""


def _bounce_to(events: Sequence[Event]) -> str:
    bounces = [e for e in events if isinstance(e, BounceSent) and e.copy is not None]
    return bounces[-1].to if bounces else ""


def _last_dsn(field: str) -> Callable[[Sequence[Event]], str]:
    def read(events: Sequence[Event]) -> str:
        dsns = [e for e in events if isinstance(e, DsnDelivered)]
        return str(getattr(dsns[-1], field)) if dsns else ""

    return read


def _accepting_host(events: Sequence[Event]) -> str:
    """The world host whose session stored the last message (the tutor's DSNs aside)."""
    host, accepted = "", ""
    for event in events:
        if isinstance(event, HostReached):
            host = event.host if event.code else ""
        elif isinstance(event, MessageStored) and host:
            accepted = host
    return accepted


def _verdict_of(method: str) -> Callable[[Sequence[Event]], str]:
    """The last mailbox read's verdict for one method: `pass` for dkim=pass."""

    def read(events: Sequence[Event]) -> str:
        reads = [e for e in events if isinstance(e, MailboxRead)]
        found = [r for r in (reads[-1].results if reads else ()) if r.startswith(method + "=")]
        return found[0].partition("=")[2] if found else ""

    return read


FACTS: dict[str, Callable[[Sequence[Event]], str]] = {
    "queue_id": _of_message(lambda m: m.queue_id),
    "client_address": _of_message(lambda m: m.client_address),
    "helo_name": _helo_name,
    "envelope_sender": _of_message(lambda m: m.sender),
    "recipients_accepted": _of_message(lambda m: len(m.recipients)),
    "copies": _of_message(lambda m: len(m.copies)),
    "refused_code": _refused_code,
    "last_code": _last_code,
    "bounce_to": _bounce_to,
    "spf": _of_message(lambda m: m.spf),
    "dmarc": _of_message(lambda m: m.dmarc),
    "accepting_host": _accepting_host,
    "dsn_action": _last_dsn("action"),
    "dsn_status": _last_dsn("status"),
    "dsn_recipient": _last_dsn("recipient"),
    "dkim_result": _verdict_of("dkim"),
    "spf_result": _verdict_of("spf"),
    "dmarc_result": _verdict_of("dmarc"),
}

WHERE = {
    "queue_id": "the 250 after your lone dot says `OK id=…`",
    "client_address": "the server's HELO/EHLO reply shows it in [brackets], and so does Received:",
    "helo_name": "the name you typed after HELO or EHLO",
    "envelope_sender": "the address you gave with MAIL FROM (and Return-Path: in the stored copy)",
    "recipients_accepted": "count the 250 replies to your RCPT TO commands",
    "copies": "one copy per accepted mailbox: see 'Delivered to'",
    "refused_code": "the x.y.z code in the first refusal you provoked",
    "last_code": "the code of the last reply before these questions",
    "bounce_to": "a bounce goes to the envelope sender (MAIL FROM)",
    "spf": "the spf= part of the Authentication-Results: header",
    "dmarc": "the dmarc= part of the Authentication-Results: header",
    "accepting_host": "the host whose 250 came after your lone dot",
    "dsn_action": "the Action: field of the delivery-status part",
    "dsn_status": "the Status: field of the delivery-status part",
    "dsn_recipient": "the Final-Recipient: field, after rfc822;",
    "dkim_result": "dkim= in the Authentication-Results: field of the copy you read",
    "spf_result": "spf= in the Authentication-Results: field of the copy you read",
    "dmarc_result": "dmarc= in the Authentication-Results: field of the copy you read",
}


def fact(name: str, events: Sequence[Event]) -> str:
    return FACTS[name](events)


def normalise(answer: str) -> str:
    """Compare as the learner may copy it from the screen: spaces, quotes, backticks and
    angle brackets do not count, and `id=X` (as the 250 shows a queue id) is X."""
    text = "".join(answer.split()).strip("`'\"<>").lower()
    return text.removeprefix("id=")


def is_right(answer: str, expected: str) -> bool:
    return bool(expected) and normalise(answer) == normalise(expected)
