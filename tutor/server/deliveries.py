"""Messages stored in rounds that share the waits for the disk, off the server's loop
when the disk makes them wait (docs/server.md, "Durability: what a 250 guarantees").

A session hands its message over and waits. Where a flush takes milliseconds (a disk),
a thread of our own takes every message waiting into the next round
(maildir.store.DeliveryRounds): each round moves every message one step on and ends with
one wait for the disk that all of them share, so a message that arrives while others are
being written joins them instead of queueing behind them, and the loop goes on reading
and answering the other sessions meanwhile. Where a flush costs microseconds (tmpfs), the
hand-over to a thread would cost more than the wait: the message is stored on the loop,
as it arrives. Each round's wait is measured, and the way follows the disk.

A message whose session is lost while it is being stored is stored all the same: no 250
reached the client, which may send it again (a duplicate, never a loss)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from dataclasses import dataclass

from tutor.maildir.store import Delivery, DeliveryRounds, MaildirStore, StorageError
from tutor.smtp.events import Copy

log = logging.getLogger("tutor.server")

Recipients = list[tuple[str, str]]  # (recipient, folder)

# A flush slower than this sends messages to the thread; faster than the second, back to
# the loop. Between the two the way stays as it is. tmpfs flushes in microseconds, a disk
# in one to several milliseconds (docs/performance.md).
SLOW_FLUSH = 0.0005
FAST_FLUSH = 0.0002
SMOOTHING = 0.2  # weight of the newest wait in the running estimate


@dataclass
class _Waiting:
    delivery: Delivery
    recipients: Recipients
    stored: asyncio.Future[list[Copy]]
    loop: asyncio.AbstractEventLoop


_STOP = None  # put on the queue by close()


class DeliveryQueue:
    """Messages waiting to be stored, and the thread that stores them."""

    def __init__(self, store: MaildirStore) -> None:
        self._store = store
        self._arrivals: queue.SimpleQueue[_Waiting | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._flush = 0.0  # running estimate of one wait for the disk, in seconds
        self._on_loop = True  # store as messages arrive, without the thread

    def _measured(self, waited: float) -> None:
        self._flush += SMOOTHING * (waited - self._flush)
        if self._flush > SLOW_FLUSH:
            self._on_loop = False
        elif self._flush < FAST_FLUSH:
            self._on_loop = True

    def submit(self, delivery: Delivery, recipients: Recipients) -> asyncio.Future[list[Copy]]:
        """The copies once the message is on disk for good (or StorageError: none was
        kept). Call on the server's loop; the future is settled there."""
        loop = asyncio.get_running_loop()
        waiting = _Waiting(delivery, recipients, loop.create_future(), loop)
        if self._on_loop:
            self._store_now(waiting)
            return waiting.stored
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._store_in_rounds, name="smtp-tutor-delivery", daemon=True
            )
            self._thread.start()
        self._arrivals.put(waiting)
        return waiting.stored

    def close(self) -> None:
        """Finish every message handed over, then stop (at stop, before the store lets its
        journals go)."""
        if self._thread is not None:
            self._arrivals.put(_STOP)
            self._thread.join()
            self._thread = None

    def _store_now(self, waiting: _Waiting) -> None:
        rounds: DeliveryRounds[int] = DeliveryRounds(self._store)
        rounds.add(0, waiting.delivery, waiting.recipients)
        while rounds.busy:
            for outcome in rounds.step().values():
                if isinstance(outcome, Exception):
                    waiting.stored.set_exception(outcome)
                else:
                    waiting.stored.set_result(outcome)
            self._measured(rounds.waited)

    def _store_in_rounds(self) -> None:
        rounds: DeliveryRounds[int] = DeliveryRounds(self._store)
        under_way: dict[int, _Waiting] = {}
        stopping = False
        while not (stopping and not rounds.busy):
            # Idle, wait for a message; busy, take whatever arrived during the last round.
            for waiting in self._arrivals_since(block=not rounds.busy and not stopping):
                if waiting is None:
                    stopping = True
                    continue
                under_way[id(waiting)] = waiting
                rounds.add(id(waiting), waiting.delivery, waiting.recipients)
            if not rounds.busy:
                continue
            ended: dict[int, list[Copy] | StorageError | Exception]
            try:
                ended = dict(rounds.step())
                self._measured(rounds.waited)
            except Exception as error:  # a fault: every message under way hears of it
                log.exception("storing messages failed")
                ended = dict.fromkeys(under_way, error)
                rounds = DeliveryRounds(self._store)
            for tag, outcome in ended.items():
                _settle(under_way.pop(tag), outcome)

    def _arrivals_since(self, *, block: bool) -> list[_Waiting | None]:
        arrived: list[_Waiting | None] = []
        if block:
            arrived.append(self._arrivals.get())
        while True:
            try:
                arrived.append(self._arrivals.get_nowait())
            except queue.Empty:
                return arrived


def _settle(waiting: _Waiting, outcome: list[Copy] | Exception) -> None:
    """Hand the outcome to the session, on its loop (if the loop is still there)."""

    def settle() -> None:
        if waiting.stored.done():
            return
        if isinstance(outcome, Exception):
            waiting.stored.set_exception(outcome)
        else:
            waiting.stored.set_result(outcome)

    with contextlib.suppress(RuntimeError):  # the loop closed: nobody is waiting
        waiting.loop.call_soon_threadsafe(settle)
