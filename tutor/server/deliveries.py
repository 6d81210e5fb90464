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
import itertools
import logging
import queue
import threading
from dataclasses import dataclass
from functools import partial

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
        self._arrivals: queue.SimpleQueue[_Waiting | _Synced | None] = queue.SimpleQueue()
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
        """Rounds one after another; a message that arrives while the disk works on one is
        written at once and joins the next (its wait is then the next round's alone)."""
        rounds: DeliveryRounds[int] = DeliveryRounds(self._store)
        under_way: dict[int, _Waiting] = {}
        stopping = False
        current: int | None = None  # the number of the round whose fsyncs are under way
        numbers = itertools.count(1)
        while True:
            if current is None:
                if not rounds.busy and stopping:
                    return
                if rounds.busy:
                    number = current = next(numbers)
                    try:
                        rounds.begin(on_synced=partial(self._arrivals.put, _Synced(number)))
                    except Exception as error:
                        rounds, current = self._fail(under_way, error), None
                    continue
            item = self._arrivals.get()  # a message, the round's end, or the stop
            if isinstance(item, _Synced):
                if item.round != current:
                    continue  # a round a fault abandoned
                current = None
                try:
                    ended: dict[int, list[Copy] | StorageError] = rounds.end()
                except Exception as error:
                    rounds = self._fail(under_way, error)
                    continue
                self._measured(rounds.waited)
                for tag, outcome in ended.items():
                    _settle(under_way.pop(tag), outcome)
            elif item is None:
                stopping = True
            else:
                under_way[id(item)] = item
                rounds.add(id(item), item.delivery, item.recipients, now=current is not None)

    def _fail(self, under_way: dict[int, _Waiting], error: Exception) -> DeliveryRounds[int]:
        """A fault: every message under way hears of it; the next rounds start afresh."""
        log.exception("storing messages failed")
        for waiting in under_way.values():
            _settle(waiting, error)
        under_way.clear()
        return DeliveryRounds(self._store)


@dataclass(frozen=True)
class _Synced:
    """Put on the queue when a round's fsyncs are done."""

    round: int


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
