"""What the server now knows, followed from the client's side of an SMTP conversation.

Fed one exchange at a time (the line sent and the reply that answered it), a
SessionState keeps the facts a learner should see beside every reply: greeted or not,
the extensions on offer, the envelope so far, whether the message text is being sent,
TLS, AUTH, the messages accepted. It changes only on the replies that change the
server's state, exactly as RFC 5321 describes: a refused command changes nothing.
Stdlib only: no screen, no network.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass

from tutor.smtp.events import Exchange, ExchangeKind
from tutor.smtp.wire import Reply, split_command

# Typical queue-id spellings: ours and Exim's "OK id=...", Postfix's "queued as ...".
IDS_SHOWN = 3  # queue ids in the summary, the last ones
_QUEUE_ID = re.compile(r"\bid=([^\s,;>)]+)|\bqueued as ([^\s,;>)]+)", re.IGNORECASE)


@dataclass(frozen=True)
class AcceptedMessage:
    """A message the server took responsibility for (250 after the lone dot)."""

    queue_id: str | None
    sender: str
    recipients: tuple[str, ...]


@dataclass(frozen=True)
class RefusedRecipient:
    address: str
    code: int


def queue_id(reply: Reply) -> str | None:
    """The queue id in a reply to the final dot, if the server named one."""
    match = _QUEUE_ID.search(reply.text)
    if match is None:
        return None
    return match.group(1) or match.group(2)


def path_argument(argument: str) -> str:
    """The address of `FROM:<a@b> SIZE=1` or `TO:<a@b>`: "a@b" ("" for the null path <>)."""
    _keyword, colon, rest = argument.partition(":")
    rest = rest.strip() if colon else argument.strip()
    if rest.startswith("<"):
        end = rest.find(">")
        return rest[1:end] if end >= 0 else rest[1:]
    return rest.split(" ", 1)[0]


def auth_user(mechanism: str, answer: str) -> str | None:
    """The user name in an AUTH answer (never the password): PLAIN, LOGIN or CRAM-MD5."""
    from tutor.smtp import authcodec  # with the first AUTH, not with every session's state

    data = authcodec.decode(answer)
    if data is None:
        return None
    decoded = data.decode("utf-8", "replace")
    if mechanism == "PLAIN":  # authzid NUL user NUL password (RFC 4616 §2)
        parts = decoded.split("\0")
        return parts[1] if len(parts) == 3 else None
    if mechanism == "LOGIN":
        return decoded
    if mechanism == "CRAM-MD5":  # "user hexdigest" (RFC 2195)
        return decoded.split(" ", 1)[0]
    return None


class SessionState:
    """The server's knowledge, as the client can infer it from the replies so far."""

    def __init__(self) -> None:
        self.banner: Reply | None = None  # the greeting the server sent on connect
        self.greeting: str | None = None  # "HELO" or "EHLO" once accepted
        self.client_name = ""  # the name given with HELO/EHLO
        self.server_name = ""  # the name the server gave for itself in its greeting reply
        self.extensions: dict[str, str] = {}  # EHLO keyword -> its parameters
        self.greeting_forgotten = False  # STARTTLS wiped an earlier greeting (RFC 3207 §4.2)
        self.sender: str | None = None  # None: no MAIL yet; "": the null sender <>
        self.accepted: list[str] = []
        self.refused: list[RefusedRecipient] = []
        self.in_data = False
        self.tls = False
        self.authenticated = False
        self.auth_user: str | None = None
        self.auth_mechanism: str | None = None  # set while an AUTH exchange is under way
        self.auth_pending = False  # the server sent 334: the next line is an AUTH answer
        self._auth_candidate: str | None = None
        self.messages: list[AcceptedMessage] = []
        self.closed = False

    def copy(self) -> SessionState:
        return copy.deepcopy(self)

    def facts(self) -> tuple[object, ...]:
        """All it knows but the messages accepted (a list that grows with every message and
        that no explanation reads), hashable: a reply explained in states with equal facts
        is explained alike, so `serve`'s log explains a flood's replies once. A new
        attribute belongs here too (tests/test_serve_log_output.py checks)."""
        return (
            self.banner,
            self.greeting,
            self.client_name,
            self.server_name,
            tuple(self.extensions.items()),
            self.greeting_forgotten,
            self.sender,
            tuple(self.accepted),
            tuple(self.refused),
            self.in_data,
            self.tls,
            self.authenticated,
            self.auth_user,
            self.auth_mechanism,
            self.auth_pending,
            self._auth_candidate,
            self.closed,
        )

    # --- feeding ------------------------------------------------------------------------

    def feed_exchange(self, exchange: Exchange) -> None:
        command = None if exchange.kind in ("greeting", "notice") else exchange.command
        self.feed(command, exchange.reply, kind=exchange.kind)

    def feed(
        self, command: str | None, reply: Reply | None, *, kind: ExchangeKind = "command"
    ) -> None:
        """Take in one exchange. `command` None is the greeting; kind "data" is the message."""
        if kind == "notice":
            self._notice(reply)
        elif command is None or kind == "greeting":
            self._greeting(reply)
        elif kind == "data" or self.in_data:  # after 354 every line is message text
            self._end_of_data(reply)
        elif kind == "auth" or self.auth_pending:  # after 334 the next line answers it
            self._auth_answer(command, reply)
        else:
            self._command(command, reply)
        if reply is not None and reply.code == 421:
            self.closed = True  # 421 always comes with the server hanging up (RFC 5321 §3.8)

    def _greeting(self, reply: Reply | None) -> None:
        self.banner = reply
        if reply is not None and reply.code == 521:
            self.closed = True  # a host that never takes mail closes at once (RFC 7504)

    def _notice(self, reply: Reply | None) -> None:
        if reply is not None and reply.code == 221:
            self.closed = True

    def _command(self, command: str, reply: Reply | None) -> None:
        if reply is None:
            return  # unanswered: the server's state did not change as far as we know
        verb, argument = split_command(command)
        code = reply.code
        if verb in ("HELO", "EHLO") and code == 250:
            self._greeted(verb, argument, reply)
        elif verb == "MAIL" and code == 250:
            self._reset_transaction()
            self.sender = path_argument(argument)
        elif verb == "RCPT" and self.sender is not None:
            address = path_argument(argument)
            if code in (250, 251):
                self.accepted.append(address)
            elif code >= 400:
                self.refused.append(RefusedRecipient(address, code))
        elif verb == "DATA" and code == 354:
            self.in_data = True
        elif verb == "RSET" and code == 250:
            self._reset_transaction()
        elif verb == "STARTTLS" and code == 220:
            self._tls_started()
        elif verb == "AUTH":
            self._auth_started(argument, reply)
        elif verb == "QUIT" and code == 221:
            self.closed = True

    def _greeted(self, verb: str, argument: str, reply: Reply) -> None:
        # A new greeting also ends any transaction under way (RFC 5321 §4.1.4).
        self._reset_transaction()
        self.greeting = verb
        self.greeting_forgotten = False
        self.client_name = argument
        first = reply.lines[0].text.split()
        self.server_name = first[0] if first else ""
        self.extensions = {}
        if verb == "EHLO":
            for line in reply.lines[1:]:
                keyword, _, params = line.text.strip().partition(" ")
                if keyword:
                    self.extensions[keyword.upper()] = params.strip()

    def _tls_started(self) -> None:
        # RFC 3207 §4.2: the server forgets everything the client told it before TLS.
        self.tls = True
        self.greeting_forgotten = self.greeting is not None
        self.greeting = None
        self.client_name = ""
        self.extensions = {}
        self.authenticated = False
        self.auth_user = None
        self._reset_transaction()

    def _auth_started(self, argument: str, reply: Reply) -> None:
        mechanism, _, initial = argument.partition(" ")
        self.auth_mechanism = mechanism.upper()
        self._auth_candidate = auth_user(self.auth_mechanism, initial) if initial else None
        self._auth_reply(reply)

    def _auth_answer(self, answer: str, reply: Reply | None) -> None:
        mechanism = self.auth_mechanism or ""
        if self._auth_candidate is None and answer.strip() != "*":
            self._auth_candidate = auth_user(mechanism, answer)
        if reply is None:
            self.auth_pending = False
            return
        self._auth_reply(reply)

    def _auth_reply(self, reply: Reply) -> None:
        self.auth_pending = reply.code == 334
        if reply.code == 235:
            self.authenticated = True
            self.auth_user = self._auth_candidate
        if reply.code != 334:
            self.auth_mechanism = None
            self._auth_candidate = None

    def _end_of_data(self, reply: Reply | None) -> None:
        if reply is None:
            return  # the lone dot never came, or no answer: the message is still open
        self.in_data = False
        if reply.code == 250:
            self.messages.append(
                AcceptedMessage(queue_id(reply), self.sender or "", tuple(self.accepted))
            )
        # Accepted or refused, the transaction is over (RFC 5321 §4.1.1.4).
        self._reset_transaction()

    def _reset_transaction(self) -> None:
        self.sender = None
        self.accepted = []
        self.refused = []
        self.in_data = False

    # --- reading ------------------------------------------------------------------------

    @property
    def greeted(self) -> bool:
        return self.greeting is not None

    @property
    def can_use_extensions(self) -> bool:
        return self.greeting == "EHLO"

    def summary(self) -> list[str]:
        """Short labelled facts for display: "greeted: EHLO a.b.c", "sender: <x>", …"""
        facts: list[str] = []
        if self.greeting:
            facts.append(f"greeted: {self.greeting} {self.client_name}".rstrip())
        elif self.greeting_forgotten:
            facts.append("not greeted: TLS reset the greeting, send EHLO again")
        else:
            facts.append("not greeted")
        if self.tls:
            facts.append("TLS")
        if self.authenticated:
            facts.append(f"AUTH as {self.auth_user}" if self.auth_user else "AUTH")
        if self.sender is not None:
            facts.append(f"sender: <{self.sender}>")
        if self.accepted or self.refused:
            facts.append(f"recipients: {len(self.accepted)} accepted, {len(self.refused)} refused")
        if self.in_data:
            facts.append("in DATA")
        if self.messages:  # the last few ids: a summary costs the same after 10,000 messages
            ids = ", ".join(m.queue_id or "no id" for m in self.messages[-IDS_SHOWN:])
            more = "…, " if len(self.messages) > IDS_SHOWN else ""
            facts.append(f"messages accepted: {len(self.messages)} ({more}{ids})")
        if self.closed:
            facts.append("closed")
        return facts
