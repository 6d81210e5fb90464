"""Messages stored in rounds that share each wait for the disk, off the server's loop
when the disk makes them wait (docs/server.md, "Durability: what a 250 guarantees").

A session hands its message over and waits. Each round (maildir.store.DeliveryRounds)
writes every message waiting, with its record in the delivery log, then waits for one
flush of the log that all of them share. Where a flush takes under 2 ms (tmpfs, the
test machine's disk), the round runs on the loop: a message is written as it arrives,
and the messages that arrived in the same pass of the loop are flushed together at its
end; handing them to a thread would cost more than the wait. Where a flush takes longer
(a slow or busy disk), a thread of our own runs the rounds, so the loop goes on reading
and answering the other sessions while the disk works; a message that arrives meanwhile
is written at once and joins the next round. The flush is measured where the loop would
wait for it, and the way follows the disk: from the thread, one message a second is
stored on the loop to measure it again (the thread's own rounds also wait for the hand-
overs between threads, which would keep the estimate high).

A message whose session is lost while it is being stored is stored all the same: no 250
reached the client, which may send it again (a duplicate, never a loss)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import queue
import threading
import time
from dataclasses import dataclass
from functools import partial

from tutor.maildir.store import Delivery, DeliveryRounds, MaildirStore, StorageError
from tutor.smtp.events import Copy

log = logging.getLogger("tutor.server")

Recipients = list[tuple[str, str]]  # (recipient, folder)

# A flush slower than this sends messages to the thread; faster than the second, back to
# the loop. Between the two the way stays as it is. tmpfs flushes in microseconds, the
# delivery log on the test machine's disk in 0.1-0.5 ms, a slow or busy disk in several
# milliseconds. Below 2 ms the loop stores more a second than the thread, whose rounds
# also wait for the hand-overs between threads (docs/performance.md, item 10).
SLOW_FLUSH = 0.002
FAST_FLUSH = 0.001
SMOOTHING = 0.2  # weight of the newest wait in the running estimate
PROBE_EVERY = 1.0  # seconds: from the thread, one message stored on the loop to measure


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
        self._flush = 0.0  # running estimate of one flush on the loop, in seconds
        self._on_loop = True  # store as messages arrive, without the thread
        self._probed = 0.0  # when a message from the thread's time was last stored on the loop
        self._pass: DeliveryRounds[int] | None = None  # written on the loop in this pass
        self._in_pass: dict[int, _Waiting] = {}

    def _measured(self, waited: float) -> None:
        self._flush += SMOOTHING * (waited - self._flush)
        if self._flush > SLOW_FLUSH:
            self._on_loop = False
            self._probed = time.monotonic()
        elif self._flush < FAST_FLUSH:
            self._on_loop = True

    def _probe_due(self) -> bool:
        """Time to store one message on the loop, to see whether the disk got faster."""
        now = time.monotonic()
        if now - self._probed < PROBE_EVERY:
            return False
        self._probed = now
        return True

    def submit(self, delivery: Delivery, recipients: Recipients) -> asyncio.Future[list[Copy]]:
        """The copies once the message is on disk for good (or StorageError: none was
        kept). Call on the server's loop; the future is settled there."""
        loop = asyncio.get_running_loop()
        waiting = _Waiting(delivery, recipients, loop.create_future(), loop)
        if self._on_loop or self._probe_due():
            self._store_on_loop(waiting)
            return waiting.stored
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._store_in_rounds, name="smtp-tutor-delivery", daemon=True
            )
            self._thread.start()
        self._arrivals.put(waiting)
        return waiting.stored

    def close(self) -> None:
        """Finish every message handed over, then stop (at stop, on the loop, before the
        store checkpoints its log)."""
        self._end_pass()
        if self._thread is not None:
            self._arrivals.put(_STOP)
            self._thread.join()
            self._thread = None

    def _store_on_loop(self, waiting: _Waiting) -> None:
        """Written at once; flushed with the others of this pass of the loop, at its end."""
        if self._pass is None:
            self._pass = DeliveryRounds(self._store)
            waiting.loop.call_soon(self._end_pass)
        self._in_pass[id(waiting)] = waiting
        self._pass.add(id(waiting), waiting.delivery, waiting.recipients, now=True)

    def _end_pass(self) -> None:
        """The round of the messages written on the loop: one flush, here."""
        rounds, self._pass = self._pass, None
        waiting, self._in_pass = self._in_pass, {}
        if rounds is None:
            return
        try:
            while rounds.busy:
                for tag, outcome in rounds.step().items():
                    _settle_here(waiting.pop(tag), outcome)
                self._measured(rounds.waited)
        except Exception as error:  # a fault: every message of the pass hears of it
            log.exception("storing messages failed")
            for left in waiting.values():
                _settle_here(left, error)

    def _store_in_rounds(self) -> None:
        """Rounds one after another; a message that arrives while the disk works on one is
        written at once and joins the next (its wait is then the next round's alone)."""
        rounds: DeliveryRounds[int] = DeliveryRounds(self._store)
        under_way: dict[int, _Waiting] = {}
        stopping = False
        current: int | None = None  # the number of the round whose flush is under way
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
    """Put on the queue when a round's flush is done."""

    round: int


def _settle(waiting: _Waiting, outcome: list[Copy] | Exception) -> None:
    """Hand the outcome to the session, on its loop (if the loop is still there)."""
    with contextlib.suppress(RuntimeError):  # the loop closed: nobody is waiting
        waiting.loop.call_soon_threadsafe(_settle_here, waiting, outcome)


def _settle_here(waiting: _Waiting, outcome: list[Copy] | Exception) -> None:
    """Hand the outcome to the session (on its loop)."""
    if waiting.stored.done():
        return
    if isinstance(outcome, Exception):
        waiting.stored.set_exception(outcome)
    else:
        waiting.stored.set_result(outcome)
