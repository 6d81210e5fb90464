"""The lesson driver in the simulated internet: the learner plays the sending MTA.

Besides SMTP lines, the learner types `dig …` (a real query to the world's DNS server)
and `connect HOST` / `telnet HOST [PORT]` (a real connection to a host of the world,
which may be busy, down or fine). Queue and bounce steps let the learner's own MTA act
on what their sessions left undone: a DSN for a recipient refused with 5xx, retries on a
simulated clock for a host that never answers. Every event of that kind (DnsLookup,
HostReached, DsnDelivered) goes to the runner like an SMTP exchange.
"""

from __future__ import annotations

import re
import smtplib
import time
from pathlib import Path

import dns.exception

from tutor.engine.checks import mailbox_words
from tutor.engine.driver import EVENT_WAIT, LessonServer, Turn
from tutor.engine.driver import LessonDriver as _LessonDriver
from tutor.engine.model import Step
from tutor.engine.sending import (
    DELAY_WARNING,
    MAXIMAL_BACKOFF,
    QUEUE_LIFETIME,
    Failure,
    build_dsn,
    clock,
    command_address,
    refusals,
    retry_times,
    try_connect,
)
from tutor.engine.world_link import Target, WorldLessonServer, dig_question, host_name
from tutor.errors import UserError
from tutor.maildir import mailview
from tutor.maildir.store import new_queue_id
from tutor.server.dsn import LOCAL_DIAGNOSTIC
from tutor.smtp.dsnread import read_bounce
from tutor.smtp.events import (
    DnsLookup,
    DsnDelivered,
    Exchange,
    HostReached,
    MailboxRead,
    MessageStored,
)
from tutor.smtp.headers import squeezed
from tutor.world.dnsdata import WORLD_HOSTS
from tutor.world.routing import LookupFailed, RouteKind, reachable

# The world's own MTAs, which may relay to each other: their sessions are not the
# learner's. (127.0.0.1 is the learner's address too, and tutor.test's MX.)
MTA_ADDRESSES = frozenset(h.address for h in WORLD_HOSTS) - {"127.0.0.1"}
INBOX_WAIT = 10.0  # seconds a relayed message may take to reach the mailbox read
# One verdict of an Authentication-Results field (RFC 8601 §2.2): `dkim=pass`.
AUTH_VERDICT = re.compile(r"(?:^|[;\s])(dkim|spf|dmarc|arc)=([a-z]+)", re.IGNORECASE)
DEFAULT_SENDER = "you@tutor.test"  # whose message the queue holds, if no MAIL FROM was given
DEFAULT_MTA_NAME = "mta.tutor.test"  # the learner's MTA, if they never said HELO/EHLO


class WorldLessonDriver(_LessonDriver):
    """A LessonDriver whose server is the whole world (WorldLessonServer)."""

    world: WorldLessonServer

    def _own(self, maildir: Path) -> LessonServer:
        # The world's mail goes beside the lesson's Maildir: <data home>/world/<domain>/.
        return WorldLessonServer(maildir.parent / "world")

    def start(self, first: Step | None = None) -> Turn:
        if self._own_server:
            self.server.start()
        assert isinstance(self.server, WorldLessonServer)
        self.world = self.server
        self._dns_seen = self.world.dns_log.count
        # Sessions of the world's MTAs the tutor did not open (a telnet in another
        # terminal): how many of each one's events were judged; and the tutor's own
        # client addresses, whose sessions are not the learner's.
        self._outside: dict[tuple[int, int], int] = {}
        self._own_peers: set[tuple[str, int]] = set()
        for server in self.world.world.servers:  # sessions before this lesson: not its own
            for record in server.capture.sessions():
                opened = record.opened
                self._own_peers.add((opened.peer_host, opened.peer_port))
        self._read: set[Path] = set(self._mailbox_files())  # mail from before the lesson
        return Turn()  # no session yet: the learner chooses where to connect, and when

    @property
    def dns_port(self) -> int:
        return self.world.dns_port

    def send(self, line: str) -> Turn:
        """`dig …`, `connect HOST` and an empty line (what did DNS see?) are the tutor's;
        anything else is SMTP. A message line is always SMTP, whatever it says."""
        in_data = self.client is not None and not self.client.closed and self.client.in_data
        if in_data:
            return super().send(line)
        verb = line.split(maxsplit=1)[0].lower() if line.strip() else ""
        if verb == "dig":
            return self.lookup(line)
        if verb in ("connect", "telnet"):
            return self.connect_to(line)
        turn = Turn()
        self._feed_dns(turn)  # a dig in another terminal since the last line
        self._feed_outside(turn)  # and a telnet there
        if not verb:
            if not turn.events:
                turn.note = (
                    "nothing new: no question to the world's DNS server and no session with "
                    "its hosts since your last line"
                )
            return turn
        if self.client is None or self.client.closed:
            turn.error = "not connected to any host: open a session first with connect HOST"
            return turn
        sent = super().send(line)
        sent.events[:0] = turn.events
        sent.outcomes[:0] = turn.outcomes
        return sent

    # --- DNS ----------------------------------------------------------------------------

    def lookup(self, line: str) -> Turn:
        """Ask the world's DNS server, for real, and let the runner judge what it saw."""
        try:
            question = dig_question(line)
            mark = self.world.dns_log.count
            reply = self.world.resolver().query(question.name, question.rdtype)
        except (ValueError, LookupFailed, dns.exception.DNSException) as error:
            return Turn(error=f"dig: {error}")
        self.world.dns_log.wait_for(
            lambda asked: any(
                q.name == question.name and q.rdtype == question.rdtype for q in asked
            ),
            mark,
            EVENT_WAIT,
        )
        turn = Turn(dns_reply=reply)
        self._feed_dns(turn)
        return turn

    def _feed_dns(self, turn: Turn) -> None:
        """The questions the DNS server answered since the last look, as events."""
        asked = self.world.dns_log.since(self._dns_seen)
        if asked:
            self._dns_seen = asked[-1].number
        asked = [q for q in asked if q.client not in MTA_ADDRESSES]  # the MTAs' own
        self._observe(
            turn,
            [
                DnsLookup(self.sessions, q.name, q.rdtype, q.rcode, q.answers, client=q.client)
                for q in asked
            ],
        )

    def _feed_outside(self, turn: Turn) -> None:
        """What the world's MTAs saw from clients the tutor did not start (telnet, swaks
        in another terminal): each new session as a HostReached, then its events."""
        for server in self.world.world.servers:
            for record in server.capture.sessions():
                opened = record.opened
                if (opened.peer_host, opened.peer_port) in self._own_peers:
                    continue
                if opened.peer_host in MTA_ADDRESSES:  # one of the world's MTAs relaying
                    continue
                key = (id(server), opened.session)
                seen = self._outside.get(key)
                if seen is not None and seen == len(record.events):
                    continue  # nothing new in it
                events = record.events[seen or 0 :]
                if seen is None:
                    greeting = next((e for e in events if isinstance(e, Exchange)), None)
                    if greeting is None or greeting.code is None:
                        continue  # not greeted yet: next time
                    host = server.persona.hostname
                    where = (opened.local_host, opened.local_port)
                    reached = HostReached(opened.session, host, *where, greeting.code, outside=True)
                    self._observe(turn, [reached])
                self._outside[key] = (seen or 0) + len(events)
                self._observe(turn, events)

    def _skip_dns(self) -> None:
        """The tutor's own questions (its queue's) are not the learner's."""
        self._dns_seen = self.world.dns_log.count

    # --- connections --------------------------------------------------------------------

    def connect_to(self, line: str) -> Turn:
        """`connect HOST [PORT]`: a new session with a host of the world, or the reason
        there is none (nothing listens there; not a host of the world)."""
        turn = Turn()
        try:
            target = self.world.target(line)
        except (UserError, LookupFailed) as error:
            self._feed_dns(turn)
            turn.error = str(error)
            return turn
        self._feed_dns(turn)  # the A query that resolved a name counts as the learner's
        turn.note = target.note
        self.close_client()
        server = self.world.select(target)
        if server is None:
            why = try_connect(target.address, target.port) or "nothing of the world is there"
            reached = HostReached(
                self.sessions, target.host, target.address, target.port, 0, error=why
            )
            self._observe(turn, [reached])
            turn.closed = True
            return turn
        return self._open(turn, target)

    def _open(self, turn: Turn, target: Target) -> Turn:
        from tutor.client.client import SmtpClient, SmtpClientError

        try:
            self.client = SmtpClient.connect(target.address, target.port)
        except SmtpClientError as error:
            reached = HostReached(
                self.sessions, target.host, target.address, target.port, 0, error=str(error)
            )
            self._observe(turn, [reached])
            turn.closed = True
            return turn
        self.sessions += 1
        local = self.client.local_address
        self._own_peers.add((local[0], local[1]))
        capture = self.server.capture
        capture.wait_for(lambda: capture.find_peer(local[0], local[1]) is not None, EVENT_WAIT)
        self.record = capture.find_peer(local[0], local[1])
        self._seen = 0
        code = self.client.banner.code
        self._observe(
            turn, [HostReached(self.sessions, target.host, target.address, target.port, code)]
        )
        self._collect(turn, lambda events: any(isinstance(e, Exchange) for e in events))
        if code != 220:  # 421 (busy): the server hangs up after it
            turn.closed = True
            self.close_client()
        return turn

    def connect(self, source: str = "") -> Turn:
        """No automatic reconnection in the world: the learner says where."""
        return Turn(error="not connected to any host: open a session with connect HOST")

    # --- the learner's own MTA: bounces and the queue ------------------------------------

    def run_queue(self, step: Step) -> Turn:
        """A bounce step: the DSN owed for each 5xx refusal. A queue step: retries of
        step.recipient on the simulated clock until the delay warning."""
        turn = Turn()
        self._feed_dns(turn)
        if step.kind == "bounce":
            self._bounce(turn)
        elif step.kind == "inbox":
            self._read_inbox(turn, step.mailbox)
        else:
            self._queue(turn, step.recipient)
        self._skip_dns()
        return turn

    # --- a mailbox of the world, as its server stored it -----------------------------------

    def _mailbox_files(self, address: str = "") -> list[Path]:
        """Message files in one mailbox of the world (every mailbox without `address`)."""
        local, _, domain = address.lower().rpartition("@")
        pattern = f"{domain or '*'}/{local or '*'}/[nc][eu][wr]/*"
        return [path for path in self.world.root.glob(pattern) if path.is_file()]

    def _read_inbox(self, turn: Turn, address: str) -> None:
        """The newest message that arrived in `address`'s mailbox since the last read (the
        world's MTAs relay after their 250, so it may still be on its way: up to
        INBOX_WAIT seconds)."""
        deadline = time.monotonic() + INBOX_WAIT
        fresh: list[Path] = []
        while not fresh:
            fresh = [p for p in self._mailbox_files(address) if p not in self._read]
            if fresh or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        if not fresh:
            turn.error = (
                f"nothing new in {address}'s mailbox: has your message been sent? "
                "(a relayed message arrives a moment after the 250)"
            )
            return
        self._read.update(fresh)
        newest = max(fresh, key=lambda p: p.stat().st_mtime_ns)
        local, _, domain = address.lower().rpartition("@")
        root = self.world.root / domain
        stored = next((m for m in mailview.read_folder(root, local) if m.path == newest), None)
        if stored is None:
            turn.error = f"the new message in {address}'s mailbox could not be read"
            return
        # The top field only: the receiving server's own; those below it were written by
        # servers the message passed before (a forwarder's, which saw the signature intact).
        top = next((f for f in stored.fields if f.name.lower() == "authentication-results"), None)
        results = tuple(
            f"{method.lower()}={verdict.lower()}"
            for method, verdict in AUTH_VERDICT.findall(squeezed(top.value) if top else "")
        )
        turn.inbox = (root, stored.ref)
        read = MailboxRead(
            self.sessions, address, stored.ref, results, stored.shown_header("Subject")
        )
        self._observe(turn, [read])

    def _mta_name(self) -> str:
        names = [
            e.command.split()[1]
            for e in self.history
            if isinstance(e, Exchange)
            and e.verb in ("HELO", "EHLO")
            and e.code == 250
            and len(e.command.split()) > 1
        ]
        return names[-1] if names else DEFAULT_MTA_NAME

    def _bounce(self, turn: Turn) -> None:
        refused = refusals(self.history)
        if not refused:
            turn.error = "nothing to bounce: no recipient was refused with 5xx in your sessions yet"
            return
        for sender in dict.fromkeys(r.sender for r in refused):
            mine = [r for r in refused if r.sender == sender]
            if not sender:  # MAIL FROM:<> : a bounce is never bounced (RFC 5321 §4.5.5)
                turn.timeline.append(
                    "the refused message had the null sender <>: no bounce is sent for it"
                )
                continue
            failures = [
                Failure(r.recipient, "failed", r.status, f"smtp; {r.reply}", r.host) for r in mine
            ]
            listed = ", ".join(f"<{r.recipient}> ({r.status} from {r.host})" for r in mine)
            turn.timeline.append(f"{listed}: a permanent failure; no retry")
            self._deliver_dsn(turn, sender, failures, will_retry_until=None)

    def _queue(self, turn: Turn, recipient: str) -> None:
        domain = recipient.rpartition("@")[2]
        arrival = time.time()
        last_try = ""
        for at in [0, *retry_times(DELAY_WARNING + MAXIMAL_BACKOFF)]:
            last_try = self._attempt(domain)
            verdict = "deferred" if at < DELAY_WARNING else "deferred; past 4h: warn the sender"
            turn.timeline.append(f"{clock(at):>9}  {last_try}: {verdict}")
            if at >= DELAY_WARNING:
                break
        turn.timeline.append(
            f"{'':>9}  from now on every {clock(MAXIMAL_BACKOFF)[1:]}, "
            f"until {clock(QUEUE_LIFETIME)}: then the message is returned (Action: failed)"
        )
        failure = Failure(recipient, "delayed", "4.4.1", f"{LOCAL_DIAGNOSTIC}; {last_try}")
        self._deliver_dsn(
            turn,
            self._queued_sender(),
            [failure],
            will_retry_until=arrival + QUEUE_LIFETIME,
        )

    def _queued_sender(self) -> str:
        senders = [
            command_address(e.command)
            for e in self.history
            if isinstance(e, Exchange) and e.verb == "MAIL" and e.code == 250
        ]
        return next((s for s in reversed(senders) if s), DEFAULT_SENDER)

    def _attempt(self, domain: str) -> str:
        """One real try: ask DNS, connect to each host in turn. How it failed."""
        try:
            route = self.world.resolver().route(domain)
        except LookupFailed as error:
            return str(error)
        if route.kind is not RouteKind.MX and route.kind is not RouteKind.A_FALLBACK:
            return route.why
        reasons = []
        for hop in route.hops:
            for address in hop.addresses:
                if not reachable(address):
                    reasons.append(f"{hop.host}[{address}]: not a host of the world")
                    continue
                listening, port = self.world.where(address)
                why = try_connect(listening, port, self._own_peers)
                if not why:
                    return f"{hop.host}[{listening}]:{port} answered"
                reasons.append(f"connect to {hop.host}[{listening}]:{port}: {why}")
        return "; ".join(reasons)

    def _deliver_dsn(
        self, turn: Turn, sender: str, failures: list[Failure], will_retry_until: float | None
    ) -> None:
        """Send the DSN to the sender's domain's MX in the world, with MAIL FROM:<>, and
        read back what that server stored."""
        queue_id = new_queue_id()
        dsn = build_dsn(
            reporting_mta=self._mta_name(),
            sender=sender,
            queue_id=queue_id,
            arrival=time.time(),
            failures=failures,
            will_retry_until=will_retry_until,
        )
        domain = sender.rpartition("@")[2].lower()
        try:
            route = self.world.resolver().route(domain)
        except LookupFailed as error:
            turn.error = f"the DSN for <{sender}> could not be routed: {error}"
            return
        for hop in route.hops:
            for address in hop.addresses:
                if reachable(address) and self._send_dsn(turn, hop.host, address, sender, dsn):
                    return
        turn.error = (
            f"the DSN for <{sender}> could not be delivered: {route.why} "
            "(in this world, mail to you@tutor.test can always be delivered)"
        )

    def _send_dsn(self, turn: Turn, host: str, address: str, sender: str, dsn: bytes) -> bool:
        address, port = self.world.where(address)
        server = self.world.world.server_at(address, port)
        if server is None:
            return False
        try:
            with smtplib.SMTP(address, port, local_hostname=self._mta_name(), timeout=10) as smtp:
                local = smtp.sock.getsockname() if smtp.sock else ("", 0)
                self._own_peers.add((local[0], local[1]))
                smtp.sendmail("", [sender], dsn)
        except (smtplib.SMTPException, OSError):
            return False
        capture = server.capture
        capture.wait_for(
            lambda: (
                (record := capture.find_peer(local[0], local[1])) is not None
                and any(isinstance(e, MessageStored) for e in record.events)
            ),
            EVENT_WAIT,
        )
        record = capture.find_peer(local[0], local[1])
        stored = [e for e in (record.events if record else []) if isinstance(e, MessageStored)]
        if not stored or not stored[0].copies:
            return False
        copy = stored[0].copies[0]
        root = self.world.root_of(host_name(address) or host)
        where = f"{copy.folder}/{copy.key}"
        found = mailview.find(root, where)
        if not found:
            return False
        summary = read_bounce(found[0].raw)
        for failed in summary.recipients:
            delivered = DsnDelivered(
                self.sessions,
                failed.action,
                failed.status,
                failed.recipient,
                failed.diagnostic,
                sender,
                copy.folder,
                stored[0].queue_id,
            )
            self._observe(turn, [delivered])
        turn.dsn_where = (root, where)
        turn.timeline.append(
            f"DSN delivered to <{sender}> at {host}[{address}]: stored in "
            f"{mailbox_words(copy.folder, address=False)}, queue id {stored[0].queue_id}"
        )
        return True
