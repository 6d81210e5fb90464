"""The capture's memory budget, over real sockets (docs/server.md, "Memory: the capture,
the session store and message data").

A long session keeps its start and its end whole and counts what lay between; its
record still gives a follower every new event; closed sessions beyond the budget go to
the session store under the Maildir root and are read back; the UI's queue gets a
summary instead of every event. The full-size floods against a real `serve` process are
in tests/test_memory_attacks.py (slow tier).
"""

from __future__ import annotations

import json
import queue
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support import RawClient
from tutor.maildir.session_store import SessionStore, StoredSession, sessions_directory
from tutor.server.capture import (
    HEAD_BYTES,
    HEAD_EVENTS,
    SHOWN_TAIL,
    TAIL_BYTES,
    TAIL_EVENTS,
    Capture,
    EventsOmitted,
    SessionRecord,
)
from tutor.server.runner import TeachingServer
from tutor.smtp.events import Event, Exchange, MessageStored, SessionClosed, SessionOpened

WAIT = 10.0
NOOPS = HEAD_EVENTS + 600  # past the head and the tail window both
# The session's events: opened, the greeting, the NOOPs, QUIT, closed.
TOTAL = 1 + 1 + NOOPS + 1 + 1

Start = Callable[..., TeachingServer]


def pipelined_noops(server: TeachingServer, count: int, *, quit: bool = True) -> RawClient:
    """One session that sends `count` NOOPs in one write (and QUIT), replies all read."""
    client = RawClient(server.address)
    client.send_raw(b"NOOP\r\n" * count + (b"QUIT\r\n" if quit else b""))
    for _ in range(count + quit):
        client.reply()
    return client


def closed_record(server: TeachingServer, session: int) -> SessionRecord:
    capture = server.capture
    assert capture.wait_for(
        lambda: (r := capture.session(session)) is not None and r.closed is not None, WAIT
    )
    record = capture.session(session)
    assert record is not None
    return record


def drained(events: queue.SimpleQueue[Event]) -> list[Event]:
    found = []
    while True:
        try:
            found.append(events.get_nowait())
        except queue.Empty:
            return found


# --- one long session ---------------------------------------------------------------------


def test_a_long_session_keeps_its_start_and_end_and_counts_the_rest(server: TeachingServer) -> None:
    pipelined_noops(server, NOOPS).close()
    record = closed_record(server, 1)
    events = record.events
    assert len(events) == TOTAL  # positions count every event, kept or not
    assert events.head == HEAD_EVENTS
    kept = list(events)
    assert len(kept) == HEAD_EVENTS + TAIL_EVENTS
    assert isinstance(kept[0], SessionOpened)
    assert isinstance(kept[1], Exchange) and kept[1].kind == "greeting"
    # The end is whole: the last NOOPs, the QUIT and its 221, the close.
    assert [e.verb for e in kept[-TAIL_EVENTS:-1] if isinstance(e, Exchange)][-3:] == [
        "NOOP",
        "NOOP",
        "QUIT",
    ]
    assert record.closed is not None and record.closed.reason == "quit"
    between = TOTAL - HEAD_EVENTS - TAIL_EVENTS
    assert record.omitted == (("NOOP", between),)
    assert record.summary == [f"… and {between:,} more NOOP"]
    assert server.capture.in_memory <= HEAD_BYTES + TAIL_BYTES


def test_a_long_sessions_events_keep_their_positions(server: TeachingServer) -> None:
    """`events[n:]` is what a follower (the lesson driver, the sandbox) reads: past the
    head it still gives exactly the events after the ones seen."""
    client = pipelined_noops(server, HEAD_EVENTS + 300, quit=False)
    capture = server.capture
    record = capture.find_peer(*client.sock.getsockname()[:2])
    assert record is not None
    seen = len(record.events)
    assert seen == 1 + 1 + HEAD_EVENTS + 300
    assert client.code("RSET").startswith("250 2.0.0")
    assert capture.wait_for(lambda: len(record.events) > seen, WAIT)
    [new] = record.events[seen:]
    assert isinstance(new, Exchange) and new.verb == "RSET"
    assert record.events[-1] is new
    with pytest.raises(IndexError, match="counted, not kept"):
        record.events[HEAD_EVENTS + 1]
    client.close()


def test_the_queue_gets_the_head_a_summary_and_the_end(server: TeachingServer) -> None:
    """The UI drains the queue: a flood costs it a few thousand events, not every one."""
    pipelined_noops(server, NOOPS).close()
    closed_record(server, 1)
    events = [e for e in drained(server.capture.events) if e.session == 1]
    notices = [e for e in events if isinstance(e, EventsOmitted)]
    assert [n.ended for n in notices] == [False, True]
    first, last = notices
    # The head event by event, then the first notice, …
    assert events.index(first) == HEAD_EVENTS
    # … then the count of what was left out, the session's last events and its close.
    shown_after = events[events.index(last) + 1 :]
    assert len(shown_after) == SHOWN_TAIL + 1
    assert isinstance(shown_after[-1], SessionClosed)
    assert isinstance(shown_after[-2], Exchange) and shown_after[-2].verb == "QUIT"
    unqueued = TOTAL - HEAD_EVENTS - SHOWN_TAIL - 1
    assert last.counts == (("NOOP", unqueued),)
    assert len(events) == HEAD_EVENTS + 2 + SHOWN_TAIL + 1


def test_a_slow_ui_gets_summaries_instead_of_a_growing_queue(start_server: Start) -> None:
    """While the queue holds queue_limit events, a session's events are counted instead."""
    server = start_server(capture=Capture(queue_limit=50))
    for _ in range(3):
        pipelined_noops(server, 40).close()
    for session in (1, 2, 3):
        closed_record(server, session)
    events = drained(server.capture.events)
    assert len(events) < 50 + 3 * (SHOWN_TAIL + 4)
    ends = [e for e in events if isinstance(e, EventsOmitted) and e.ended]
    assert ends, "a session past the limit says what was not shown"
    assert sum(isinstance(e, SessionClosed) for e in events) == 3  # every close is shown


def test_a_stored_message_is_shown_even_past_the_head(server: TeachingServer) -> None:
    """Each stored message is a delivery to disk, never a flood: the log shows every one."""
    client = pipelined_noops(server, HEAD_EVENTS + 100, quit=False)
    client.code("EHLO client.example")
    client.code("MAIL FROM:<a@client.example>")
    client.code("RCPT TO:<you@tutor.test>")
    client.code("DATA")
    assert client.code(b"Subject: late\r\n\r\nhi\r\n.").startswith("250 2.0.0")
    client.code("QUIT")
    client.close()
    closed_record(server, 1)
    events = drained(server.capture.events)
    assert [e.subject for e in events if isinstance(e, MessageStored)] == ["late"]
    assert any(isinstance(e, EventsOmitted) and e.ended for e in events)


def test_a_load_test_session_is_never_summarized(server: TeachingServer) -> None:
    """200 messages on one connection (the benchmark's load, docs/performance.md) fit the
    head: the log shows every line of it."""
    body = b"Subject: load\r\n\r\n" + b"x" * 70 + b"\r\n"
    transaction = (
        b"MAIL FROM:<a@client.example>\r\nRCPT TO:<you@tutor.test>\r\nDATA\r\n"
        + body * 14
        + b".\r\n"
    )
    with RawClient(server.address) as client:
        client.code("EHLO client.example")
        for _ in range(200):
            client.send_raw(transaction)
            for _ in range(4):
                client.reply()
        client.code("QUIT")
    record = closed_record(server, 1)
    assert record.omitted == ()
    assert len(record.messages) == 200
    events = drained(server.capture.events)
    assert not any(isinstance(e, EventsOmitted) for e in events)


def test_a_lesson_sized_session_is_never_summarized(server: TeachingServer) -> None:
    """The longest lesson is about 25 steps: far under the head, kept and queued whole."""
    with RawClient(server.address) as client:
        client.code("EHLO client.example")
        for _ in range(60):
            client.code("MAIL FROM:<a@client.example>")
            client.code("RCPT TO:<you@tutor.test>")
            client.code("RSET")
        client.code("QUIT")
    record = closed_record(server, 1)
    assert record.omitted == ()
    assert len(list(record.events)) == len(record.events)
    assert not any(isinstance(e, EventsOmitted) for e in drained(server.capture.events))


# --- the session store --------------------------------------------------------------------


def exchanges(record: SessionRecord) -> list[tuple[bytes, tuple[str, ...]]]:
    return [(e.sent, e.replies) for e in record.exchanges]


def test_closed_sessions_beyond_the_budget_go_to_the_store_and_come_back(
    start_server: Start, tmp_path: Path
) -> None:
    directory = tmp_path / "sessions"
    capture = Capture(SessionStore(directory, run="run-a"), keep_closed=1)
    server = start_server(capture=capture)
    pipelined_noops(server, NOOPS).close()  # 1: long, summarized
    with RawClient(server.address) as client:  # 2: short
        client.code("EHLO client.example")
        client.code("VRFY alice")
        client.code("QUIT")
    first = closed_record(server, 1)
    second = closed_record(server, 2)
    before = (exchanges(first), first.omitted, len(first.events), first.events.head)
    with RawClient(server.address) as client:  # 3: its close moves 1 and 2 to the store
        client.code("QUIT")
    closed_record(server, 3)
    assert sorted(p.name for p in (directory / "run-a").iterdir()) == ["1.jsonl", "2.jsonl"]

    again = capture.session(1)
    assert again is not None and again is not first  # read back from the file
    assert (exchanges(again), again.omitted, len(again.events), again.events.head) == before
    assert again.summary == first.summary
    assert again.closed is not None and again.closed.reason == "quit"
    assert again.opened == first.opened
    back = capture.session(2)
    assert back is not None and exchanges(back) == exchanges(second)
    assert [r.opened.session for r in capture.sessions()] == [1, 2, 3]
    assert capture.in_memory < HEAD_BYTES  # the long session's memory went with it


def test_the_server_keeps_its_session_store_under_the_maildir_root(start_server: Start) -> None:
    server = start_server()
    store = server.capture.store
    assert store is not None
    assert store.directory == sessions_directory(server.maildir)
    assert store.directory == server.maildir / ".smtp-tutor" / "sessions"


def stored_session(session: int, at: float, run: str = "r") -> StoredSession:
    events: tuple[Event, ...] = (
        SessionOpened(session, "127.0.0.1", 40000 + session, 25, at=at),
        Exchange(session, "command", b"NOOP\xff\r\n", ("250 2.0.0 OK",), at=at),
        SessionClosed(session, "quit", at=at),
    )
    return StoredSession(session, run, events, head=2, total=5, omitted=(("NOOP", 2),))


def test_a_session_file_is_json_lines_and_reads_back_exactly(tmp_path: Path) -> None:
    store = SessionStore(tmp_path, run="20260101-120000-1-abcd")
    written = stored_session(4, 1000.0, store.run)
    path = store.save(written)
    assert path == tmp_path / store.run / "4.jsonl"
    header, *lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert header["format"] == "smtp-tutor-session" and header["omitted"] == [["NOOP", 2]]
    assert [line["$type"] for line in lines] == ["SessionOpened", "Exchange", "SessionClosed"]
    assert store.load(4) == written  # bytes (even undecodable ones) and tuples come back
    assert path.stat().st_mode & 0o077 == 0  # sessions hold AUTH answers: owner only


def test_a_damaged_or_newer_session_file_still_reads(tmp_path: Path) -> None:
    store = SessionStore(tmp_path, run="r")
    path = store.save(stored_session(1, 1000.0))
    with path.open("a", encoding="utf-8") as file:
        file.write("{not json\n")
        file.write('{"$type": "SomethingNewer", "session": 1, "at": 1.0}\n')
        file.write("[" * 100_000 + "\n")
    back = store.load(1)
    assert back is not None and len(back.events) == 3
    (tmp_path / "r" / "2.jsonl").write_text("not a session\n")
    assert store.load(2) is None
    assert store.load(99) is None
    assert [s.session for s in store.sessions()] == [1]


def test_a_teaching_period_reads_every_run(tmp_path: Path) -> None:
    """The class roster reads every session opened in a period, whichever run held it."""
    runs = ["20260105-090000-11-aaaa", "20260106-090000-12-bbbb"]
    for number, run in enumerate(runs):
        store = SessionStore(tmp_path, run=run)
        store.save(stored_session(1, 1000.0 + 100 * number, run))
        store.save(stored_session(2, 1050.0 + 100 * number, run))
    (tmp_path / "not-a-run").mkdir()
    reader = SessionStore(tmp_path)
    assert reader.runs() == runs
    period = [(s.run, s.session) for s in reader.all_sessions(since=1040.0, until=1110.0)]
    assert period == [(runs[0], 2), (runs[1], 1)]
