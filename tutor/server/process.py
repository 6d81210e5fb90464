"""The teaching server in its own process: the UI keeps the parent's GIL.

The child runs a TeachingServer with its capture and session store, exactly as in
process; one thread of it takes events off the capture's queue and sends them up a pipe
in batches (up to BATCH_EVENTS, gathered for BATCH_WAIT after the first while busy).

Two ways to read them (docs/architecture.md, "The server in its own process"):

- `serve` reads batches only when its UI asks for events (`events`, a PipeEvents), so a
  slow UI fills the pipe, then the capture's queue, and from QUEUE_LIMIT on the capture
  counts a session's events instead of queuing them (capture.py): the server's loop never
  waits for the UI, and the line log loses no line the queue policy would have given it.
- A lesson (`mirror=True`) needs the server's record of its own session, as the lesson
  engine reads it from an in-process server: a thread of the parent takes every batch
  into a Capture of its own (`capture`), which the driver waits on. Persona changes (a
  lesson opens the relay) go down the control pipe and are applied before they are
  acknowledged, so the next connection sees them.

A lesson's server is started before the UI has imported what it needs (`prelaunch`), so
its process starts on the other core meanwhile.

The start method (START_METHOD) is a forkserver where the platform has one, else spawn;
never a plain fork of this threaded process. The child ignores SIGINT (Ctrl-C reaches
the whole process group: the parent decides), stops on SIGTERM, and stops when the
parent's end of the control pipe closes, so a killed parent leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import multiprocessing
import multiprocessing.spawn
import os
import queue
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from tutor.errors import UserError
from tutor.paths import tls_dir
from tutor.server.endpoints import BindError, Listener, MaildirError
from tutor.server.persona import Persona

if TYPE_CHECKING:
    from tutor.server.capture import Capture
    from tutor.smtp.events import Event

# What start() would import late, imported with this module (a CLI run whose user may no
# longer read the interpreter's folder by then still starts its server).
if sys.platform == "win32":
    import multiprocessing.popen_spawn_win32
else:
    import multiprocessing.forkserver
    import multiprocessing.popen_forkserver
    import multiprocessing.popen_spawn_posix
    import multiprocessing.resource_tracker

# Never fork this process: it has threads (forking one warns from Python 3.12, and can
# deadlock). Where the platform has it, a forkserver is the safe fork: a fresh,
# single-threaded interpreter that imports the server once (PRELOAD) and forks each
# server from itself, so a lesson's server listens in milliseconds rather than after a
# new interpreter's imports. Elsewhere (Windows) every server is spawned.
START_METHOD: Final = (
    "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
)
PRELOAD: Final = ["tutor.server.preload"]
BATCH_EVENTS = 500
# After an event comes, the sender waits this long for more before it sends: one wake-up
# and one pickle per batch instead of per event (a busy server produces thousands of
# events a second, and every wake-up takes the GIL from its loop).
BATCH_WAIT = 0.005
STARTUP_TIMEOUT = 60.0  # a new interpreter imports aiosmtpd; a busy machine is slow
STOP_TIMEOUT = 15.0
REQUEST_TIMEOUT = 15.0  # a persona change applied by the child and acknowledged


@dataclass(frozen=True)
class ServerSpec:
    """What the child needs to build its TeachingServer (picklable)."""

    maildir: Path
    persona: Persona
    hosts: tuple[str, ...]
    port: int
    tls_port: int | None
    # The asker's, as they are when it asks: a forkserver's child would otherwise have
    # the forkserver's, from whenever that started (the data home, a relative Maildir).
    environment: dict[str, str]
    directory: str
    save_every_session: bool = False  # a class's server: the roster is read from disk


class ServerProcess:
    """start() returns once the child listens (or raises its BindError / MaildirError);
    stop() stops the child and keeps its last events. `events` is serve's source; with
    `mirror`, `capture` holds every session as the child recorded it."""

    tls_context = None  # the child's own; a client trusts the data home's CA (tlsmaterial)

    def __init__(
        self,
        maildir: Path,
        persona: Persona | None = None,
        *,
        hosts: tuple[str, ...] = ("127.0.0.1",),
        port: int = 0,
        tls_port: int | None = None,
        mirror: bool = False,
        start_method: str = START_METHOD,
        save_every_session: bool = False,
    ) -> None:
        self.maildir = maildir
        self.save_every_session = save_every_session
        self.start_method = start_method
        self.persona = persona or Persona()
        self.hosts = hosts
        self.port = port
        self.tls_port = tls_port
        self.listeners: list[Listener] = []
        self.events = PipeEvents()
        self._capture: Capture | None = None
        if mirror:
            from tutor.server.capture import Capture

            self._capture = Capture()
        self._process: multiprocessing.process.BaseProcess | None = None
        self._control: Connection | None = None
        self._launched_persona = self.persona
        self._requests = itertools.count(1)
        self._acks = threading.Condition()
        self._acked = 0
        self._mirroring: threading.Thread | None = None
        self._launching: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        first = next(item for item in self.listeners if not item.implicit_tls)
        return first.host, first.port

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    @property
    def capture(self) -> Capture:
        """Every session as the child recorded it (mirror only)."""
        if self._capture is None:
            raise RuntimeError("this server process was started without mirror=True")
        return self._capture

    def launch(self) -> ServerProcess:
        """Start the child and return once it runs; start() waits for it to listen.

        The first child of a forkserver waits for the forkserver to start and import the
        server: launch_in_background() lets the caller go on meanwhile."""
        self._wait_for_launch()  # its error, if any, is raised again below, by this thread
        if self._process is not None:
            return self
        self._make_folders()
        persona = self.persona  # read once: a lesson may set its own meanwhile (start applies it)
        # Any: the stubs give a context chosen by a runtime string no Process attribute.
        context: Any = multiprocessing.get_context(self.start_method)
        if self.start_method == "forkserver":
            context.set_forkserver_preload(PRELOAD)  # used when the forkserver starts
        events_in, events_out = context.Pipe(duplex=False)
        control_in, control_out = context.Pipe(duplex=False)
        spec = ServerSpec(
            self.maildir,
            persona,
            self.hosts,
            self.port,
            self.tls_port,
            dict(os.environ),
            os.getcwd(),
            self.save_every_session,
        )
        process = context.Process(
            target=_child_main,
            args=(spec, events_out, control_in),
            name="smtp-tutor-server",
            daemon=True,
        )
        # inherited through exec: no Ctrl-C traceback at start-up
        with _sigint_ignored(), _own_code_only():
            process.start()
        events_out.close()  # our copies: the child's death must read as EOF here
        control_in.close()
        self._process, self._control = process, control_out
        self._launched_persona = persona
        self.events.connection = events_in
        self.events.exit_code = lambda: _reaped_status(process)
        return self

    def launch_in_background(self) -> ServerProcess:
        """launch() in a thread of its own; start() (or launch()) waits for it."""
        self._launching = threading.Thread(
            target=self._launch_quietly, name="smtp-tutor-launch", daemon=True
        )
        self._launching.start()
        return self

    def _wait_for_launch(self) -> None:
        """A background launch (launch_in_background) has ended, unless this is it."""
        launching = self._launching
        if launching is not None and launching is not threading.current_thread():
            launching.join()
            self._launching = None

    def _launch_quietly(self) -> None:
        with contextlib.suppress(OSError):  # start() tries again and raises it
            self.launch()

    def start(self) -> ServerProcess:
        self.launch()
        if self.listeners:
            return self
        try:
            self.listeners = self.events.wait_ready(STARTUP_TIMEOUT)
        except BaseException:
            self.stop()
            raise
        if self._capture is not None:
            self._mirroring = threading.Thread(
                target=self._mirror, name="smtp-tutor-mirror", daemon=True
            )
            self._mirroring.start()
            if self.persona != self._launched_persona:  # launched before its lesson was known
                self.reset(self.persona)
        return self

    def _make_folders(self) -> None:
        """The folders the child writes first, made here, in the order it would: a file
        problem (a read-only home) is the same error, naming its path, with no spawn."""
        if self.persona.tls:
            tls_dir().mkdir(parents=True, exist_ok=True)
        try:
            self.maildir.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise MaildirError(
                error.errno,
                f"cannot create the Maildir at {self.maildir}: {error.strerror or error}",
                error.filename,
            ) from error

    # --- a lesson's requests (mirror only) ---------------------------------------------------

    def update_persona(self, **changes: Any) -> None:
        """Change a setting; the child has applied it when this returns."""
        self.persona = self.persona.with_changes(**changes)
        self._request("update", changes)

    def reset(self, persona: Persona) -> None:
        """Back to a given persona with no greylisting memory."""
        self.persona = persona
        self._request("reset", persona)

    def _request(self, kind: str, argument: object) -> None:
        control = self._control
        if control is None or self._capture is None:
            raise RuntimeError("persona changes need a started server with mirror=True")
        number = next(self._requests)
        control.send((kind, argument, number))
        with self._acks:
            if not self._acks.wait_for(
                lambda: self._acked >= number or self.events.ended, REQUEST_TIMEOUT
            ):
                raise OSError(f"the server process did not answer within {REQUEST_TIMEOUT:.0f} s")
        if self._acked < number:
            raise ServerDied(self.events.death())

    def _mirror(self) -> None:
        """Every batch into `capture`, every acknowledgement to whoever waits for it."""
        capture, connection = self._capture, self.events.connection
        assert capture is not None and connection is not None
        try:
            while True:
                message = connection.recv()
                kind = message[0]
                if kind == "events":
                    for event in message[1]:
                        capture.publish(event)
                elif kind == "ack":
                    with self._acks:
                        self._acked = message[1]
                        self._acks.notify_all()
                elif kind == "stopped":
                    break
        except (EOFError, OSError):
            pass
        with self._acks:
            self.events.ended = True
            self._acks.notify_all()

    def stop(self) -> None:
        """Ask the child to stop (421 to every client), take its last events, reap it."""
        self._wait_for_launch()  # a launch under way ends first, or its child would be left
        process, control = self._process, self._control
        if process is None or control is None:
            return
        self.events.stopping = True
        with contextlib.suppress(OSError):
            control.send(("stop",))
        if self._mirroring is not None:
            self._mirroring.join(STOP_TIMEOUT)
        else:
            self.events.read_to_end(STOP_TIMEOUT)
        process.join(STOP_TIMEOUT)
        if process.is_alive():
            process.kill()
            process.join()
        control.close()
        self._process = self._control = None


# The lesson server started at the top of `learn`, before the UI's imports, for the
# lesson that follows to take (one per process: the first lesson of a run).
_prelaunched: ServerProcess | None = None


def prelaunch(maildir: Path) -> None:
    """Start a lesson server in the background with the default persona."""
    global _prelaunched
    if _prelaunched is None:
        _prelaunched = ServerProcess(maildir, mirror=True).launch_in_background()


def discard_prelaunched() -> None:
    """Stop a prelaunched server no lesson took (the command failed before its lesson)."""
    global _prelaunched
    server, _prelaunched = _prelaunched, None
    if server is not None:
        server.stop()


def lesson_server(maildir: Path, persona: Persona) -> ServerProcess:
    """A lesson's own server: the prelaunched one when it serves this Maildir, else a new
    one (not yet started: the driver starts it)."""
    global _prelaunched
    server, _prelaunched = _prelaunched, None
    # TLS is set up when the server binds: a lesson without it needs a server of its own.
    if server is not None and server.maildir == maildir and server.persona.tls == persona.tls:
        server.persona = persona  # applied by start(), once the child listens
        return server
    if server is not None:
        server.stop()
    return ServerProcess(maildir, persona, mirror=True)


class ServerDied(UserError):
    """The server process ended without being asked to: nothing more can be served."""

    exit_code = 70  # EX_SOFTWARE: the server failed, not the teacher


class PipeEvents:
    """The child's events as the UI reads them: get(timeout) and get_nowait(), raising
    queue.Empty like the capture's queue. `behind`: events sent or queued by the child
    that the UI has not taken yet (as of the last batch)."""

    def __init__(self) -> None:
        self.connection: Connection | None = None
        self._buffer: deque[Event] = deque()
        self._pending = 0  # in the child's queue when the last batch left
        self.ended = False
        self.stopping = False  # the parent asked the child to stop
        self.exit_code: Callable[[], int | None] = lambda: None  # the child's, once reaped
        self.run = ""  # the child's session store run (maildir/session_store.py), once ready

    @property
    def behind(self) -> int:
        return len(self._buffer) + self._pending

    def get(self, timeout: float | None = None) -> Event:
        if not self._buffer:
            self._receive(timeout)
        if not self._buffer:
            if self.ended and not self.stopping:
                raise ServerDied(self.death())
            raise queue.Empty
        return self._buffer.popleft()

    def death(self) -> str:
        code = self.exit_code()
        how = "" if code is None else f" (exit status {code})"
        if code is not None and code < 0:  # multiprocessing's way of saying "by a signal"
            how = f" (killed by signal {-code})"
        return f"the server process ended unexpectedly{how}: clients can no longer connect"

    def get_nowait(self) -> Event:
        return self.get(0)

    def _receive(self, timeout: float | None) -> None:
        connection = self.connection
        if connection is None or self.ended:
            return
        try:
            if not connection.poll(timeout):
                return
            message = connection.recv()
        except (EOFError, OSError):
            self.ended = True
            return
        self._take(message)

    def _take(self, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "events":
            self._buffer.extend(message[1])
            self._pending = message[2]
        elif kind == "stopped":
            self.ended = True

    def wait_ready(self, timeout: float) -> list[Listener]:
        connection = self.connection
        assert connection is not None
        if not connection.poll(timeout):
            raise OSError(f"the server process did not start within {timeout:.0f} s")
        try:
            message = connection.recv()
        except EOFError:
            raise OSError("the server process ended before it listened") from None
        if message[0] == "ready":
            self.run = message[2]
            return list(message[1])
        _, kind, number, text, filename = message
        error_type = {"bind": BindError, "maildir": MaildirError}.get(kind, OSError)
        raise error_type(number, text, filename)

    def read_to_end(self, timeout: float) -> None:
        """After a stop: every last batch, until the child says it stopped or is gone."""
        connection = self.connection
        while connection is not None and not self.ended:
            try:
                if not connection.poll(timeout):
                    return
                self._take(connection.recv())
            except (EOFError, OSError):
                self.ended = True


def _reaped_status(process: multiprocessing.process.BaseProcess) -> int | None:
    """The child's exit status once it has ended (waiting a moment for the system to reap it)."""
    process.join(1.0)
    return process.exitcode


@contextlib.contextmanager
def _own_code_only() -> Any:
    """The interpreter multiprocessing starts (the forkserver, or a spawned child) imports
    this program's code and the standard library, never the working directory's.

    It runs `python -c …`, which puts the working directory first on sys.path, and on
    Python 3.11 and 3.12 the forkserver does not apply the sys.path it is handed: a
    `tutor/` or `multiprocessing/` folder where a teacher starts `serve` would be run as
    the server. PYTHONSAFEPATH (Python 3.11+, as `-P`) leaves the working directory out;
    PYTHONPATH names the folder this program's own `tutor` package was imported from.
    Only the starting interpreter sees these: the server takes the asker's environment
    from its ServerSpec."""
    own = str(Path(__file__).resolve().parents[2])  # the folder that holds tutor/
    overrides = {
        "PYTHONSAFEPATH": "1",
        "PYTHONPATH": os.pathsep.join(filter(None, [own, os.environ.get("PYTHONPATH")])),
    }
    saved = {name: os.environ.get(name) for name in overrides}
    os.environ.update(overrides)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def _sigint_ignored() -> Any:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


# --- the child ------------------------------------------------------------------------------


def _child_main(spec: ServerSpec, events: Connection, control: Connection) -> None:
    # What a forkserver's child inherited (the preloaded modules) lives as long as it does:
    # out of the collector's sight, a full collection neither walks it nor copies its pages.
    gc.freeze()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ.clear()
    os.environ.update(spec.environment)
    os.chdir(spec.directory)
    stop = threading.Event()
    if hasattr(signal, "SIGTERM"):
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
    from tutor.server import preload  # already there in a forkserver's child

    try:
        server = preload.runner.TeachingServer(
            spec.maildir,
            spec.persona,
            hosts=spec.hosts,
            port=spec.port,
            tls_port=spec.tls_port,
            save_every_session=spec.save_every_session,
        )
        server.start()
    except OSError as error:  # the parent raises it again: the same one-line messages
        kind = {BindError: "bind", MaildirError: "maildir"}.get(type(error), "os")
        events.send(("error", kind, error.errno, error.strerror or str(error), error.filename))
        events.close()
        return
    store = server.capture.store
    events.send(("ready", server.listeners, store.run if store is not None else ""))
    pipe = _LockedPipe(events)
    requests = threading.Thread(
        target=_serve_requests, args=(control, stop, server, pipe), daemon=True
    )
    requests.start()
    sender = _Sender(server.capture.events, pipe)
    forwarding = threading.Thread(target=sender.run, name="smtp-tutor-events", daemon=True)
    forwarding.start()
    stop.wait()
    server.stop()
    sender.finish()
    forwarding.join()
    pipe.send(("stopped",))
    events.close()


class _LockedPipe:
    """The events pipe, written by the sender and by the request thread: one at a time."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self._lock = threading.Lock()

    def send(self, message: tuple[Any, ...]) -> bool:
        """False once the parent is gone."""
        with self._lock:
            try:
                self._connection.send(message)
            except OSError:
                return False
            return True


def _serve_requests(
    control: Connection, stop: threading.Event, server: Any, pipe: _LockedPipe
) -> None:
    """The parent's requests until "stop" or its end closing (the parent died): then stop.

    A persona change is applied before it is acknowledged: whoever waits for the
    acknowledgement may connect next and must find the new setting."""
    with contextlib.suppress(EOFError, OSError):
        while True:
            request = control.recv()
            if request[0] != "update" and request[0] != "reset":
                break
            kind, argument, number = request
            if kind == "update":
                server.update_persona(**argument)
            else:
                server.reset(argument)
            pipe.send(("ack", number))
    stop.set()


class _Sender:
    """Takes the capture's events off its queue and sends them up the pipe in batches.

    It alone may block (on a full pipe, while the UI is slow); the server's loop only
    puts on the queue, which never blocks. finish() puts a marker behind the last event,
    so the sender ends as soon as everything before it is sent."""

    _FINISHED: Final = object()

    def __init__(self, source: queue.SimpleQueue[Any], pipe: _LockedPipe) -> None:
        self._source = source
        self._pipe = pipe
        self._finished = False
        self._broken = False

    def run(self) -> None:
        sent = 0.0  # when the last batch went
        while not (self._broken or self._finished):
            first = self._source.get()
            if first is self._FINISHED:
                return
            # Busy (a batch went less than BATCH_WAIT ago): let more events gather. After
            # a quiet spell the first one goes at once: a lesson's greeting, or the reply
            # to a command typed by hand, is not held back for company that is not coming.
            if time.monotonic() - sent < BATCH_WAIT:
                time.sleep(BATCH_WAIT)
            self._send([first, *self._more()])
            sent = time.monotonic()

    def _more(self) -> list[Event]:
        batch: list[Event] = []
        while len(batch) < BATCH_EVENTS - 1:
            try:
                item = self._source.get_nowait()
            except queue.Empty:
                break
            if item is self._FINISHED:
                self._finished = True
                break
            batch.append(item)
        return batch

    def _send(self, batch: list[Event]) -> None:
        if not self._pipe.send(("events", batch, self._source.qsize())):
            self._broken = True  # the parent is gone: nobody to show them to

    def finish(self) -> None:
        """The server stopped (no event comes after this): send what is left, then end."""
        self._source.put(self._FINISHED)
