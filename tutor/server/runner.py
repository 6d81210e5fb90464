"""Run the teaching server: its own asyncio loop in a background thread.

The UI keeps the main thread (prompt_toolkit's loop); the two meet only through the
capture's thread-safe queue (docs/architecture.md, "Two loops, one queue"). We bind with
loop.create_server ourselves: it accepts port 0, and it never calls getfqdn().
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import threading
from pathlib import Path
from typing import Any

from tutor.maildir.durable import Recovery
from tutor.maildir.session_store import SessionStore, sessions_directory
from tutor.maildir.store import MaildirStore
from tutor.server.capture import Capture
from tutor.server.context import ServerContext
from tutor.server.endpoints import BindError, Listener, MaildirError
from tutor.server.persona import Persona
from tutor.smtp.textsafe import visible

logging.getLogger("mail.log").setLevel(logging.CRITICAL)  # aiosmtpd's chatter; we capture
log = logging.getLogger("tutor.server")
REPORTED = 10  # deliveries a start names one by one after a crash; the rest are counted


class TeachingServer:
    """Start with `start()` (or `with`), stop with `stop()`; both from any thread."""

    def __init__(
        self,
        maildir: Path,
        persona: Persona | None = None,
        *,
        hosts: tuple[str, ...] = ("127.0.0.1",),
        port: int = 0,
        tls_port: int | None = None,
        tls_context: ssl.SSLContext | None = None,
        capture: Capture | None = None,
        save_every_session: bool = False,
    ) -> None:
        self.persona = persona or Persona()
        self.maildir = maildir
        self.hosts = hosts
        self.port = port
        self.tls_port = tls_port
        self.tls_context = tls_context
        self.capture = capture or Capture(
            SessionStore(sessions_directory(maildir)), save_every_session=save_every_session
        )
        self.listeners: list[Listener] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._servers: list[asyncio.base_events.Server] = []
        self._context: ServerContext | None = None
        self.recovery = Recovery()  # what a killed server left mid-delivery, settled at start

    # --- lifecycle ----------------------------------------------------------------------

    def start(self) -> TeachingServer:
        ready = threading.Event()
        failure: list[BaseException] = []
        loop = asyncio.new_event_loop()
        self._loop = loop

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._bind())
            except BaseException as error:  # reported to the caller of start()
                failure.append(error)
                if self._context is not None:
                    self._context.deliveries.close()
                    self._context.store.close()
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(self._shutdown())
                loop.close()

        self._thread = threading.Thread(target=run, name="smtp-tutor-server", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            self._thread.join()
            raise failure[0]
        return self

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if loop.is_running():
            loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        self._loop = self._thread = None

    def __enter__(self) -> TeachingServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset(self, persona: Persona) -> None:
        """Back to a given persona with no greylisting memory (validate's fresh start)."""
        self.persona = persona
        if self._context is not None:
            self._context.persona = persona
            self._context.greylist_seen.clear()

    def update_persona(self, **changes: Any) -> None:
        """Change a setting while running; connections read it at each command."""
        self.persona = self.persona.with_changes(**changes)
        if self._context is not None:
            self._context.persona = self.persona

    # --- facts ------------------------------------------------------------------------

    @property
    def address(self) -> tuple[str, int]:
        """The first plain (STARTTLS) listener: where lessons connect."""
        first = next(item for item in self.listeners if not item.implicit_tls)
        return first.host, first.port

    @property
    def context(self) -> ServerContext:
        assert self._context is not None, "server not started"
        return self._context

    # --- inside the loop ------------------------------------------------------------------

    async def _bind(self) -> None:
        from tutor.server.protocol import TeachingSMTP  # aiosmtpd only once a server starts

        loop = asyncio.get_running_loop()
        tls = self.tls_context
        if tls is None and self.persona.tls:
            from tutor.server.tlsmaterial import server_context

            tls = server_context(self.persona.hostname)
        context = ServerContext(
            self.persona, MaildirStore(self.maildir, self.persona.hostname), self.capture, loop, tls
        )
        self._context = context
        try:
            self.maildir.mkdir(parents=True, exist_ok=True)
            for name in self.persona.mailboxes:
                context.store.folder(name)  # create every mailbox up front, so MUAs see them
            # Before the first connection: what a killed server logged is replayed, a torn
            # record dropped (docs/server.md, "Durability: what a 250 guarantees").
            self.recovery = context.store.recover()
        except OSError as error:
            raise MaildirError(
                error.errno,
                f"cannot create the Maildir at {self.maildir}: {error.strerror or error}",
                error.filename,  # so that any command can name the path (cli's file problems)
            ) from error
        self._report_recovery()

        port = self.port
        for index, host in enumerate(self.hosts):
            try:
                server = await loop.create_server(lambda: TeachingSMTP(context), host, port)
            except OSError as error:
                if index == 0:
                    raise BindError(error.errno, error.strerror or str(error)) from error
                continue  # a second address family (::1) is a bonus, not a need
            self._servers.append(server)
            port = server.sockets[0].getsockname()[1]
            self.listeners.append(Listener(host, port))
        if self.tls_port is not None and tls is not None:
            host = self.hosts[0]
            try:
                server = await loop.create_server(
                    lambda: TeachingSMTP(context), host, self.tls_port, ssl=tls
                )
            except OSError as error:
                raise BindError(error.errno, error.strerror or str(error)) from error
            self._servers.append(server)
            self.listeners.append(Listener(host, server.sockets[0].getsockname()[1], True))

    def _report_recovery(self) -> None:
        for undone in self.recovery.rolled_back:
            log.warning(
                "rolled back the unfinished delivery %s: its record never reached the disk",
                undone.queue_id or "(queue id unreadable)",
            )
        finished = self.recovery.finished
        for done in finished[:REPORTED]:
            if done.restored:
                log.warning(
                    "finished the delivery %s: restored %d of its %d copies",
                    done.queue_id or "(queue id unreadable)",
                    len(done.restored),
                    done.copies,
                )
            else:
                log.warning(
                    "finished the delivery %s: all %d copies were there",
                    done.queue_id or "(queue id unreadable)",
                    done.copies,
                )
        if len(finished) > REPORTED:
            rest = finished[REPORTED:]
            log.warning(
                "finished %d more deliveries: restored %d of their %d copies",
                len(rest),
                sum(len(done.restored) for done in rest),
                sum(done.copies for done in rest),
            )
        for path in self.recovery.set_aside:
            log.warning("an unreadable delivery log was moved to %s", visible(str(path)))

    async def _shutdown(self) -> None:
        for server in self._servers:
            server.close()
        context = self._context
        if context is not None:
            for protocol in list(context.connections):
                protocol.shut_down()
        for server in self._servers:
            await server.wait_closed()
        await asyncio.sleep(0)  # let connection_lost callbacks run
        if context is not None:
            context.deliveries.close()  # a commit under way ends first
            context.store.close()  # no delivery is in progress now: its log checkpointed
