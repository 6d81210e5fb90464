"""serve's dashboard for a class: the roster kept live, a student's whole history (from
memory and the session store, searchable), and every view at 80, 120 and 200 columns,
light theme included. Real server, real sockets, the dashboard's real render path."""

from __future__ import annotations

import base64
import io
import os
import re
import sys
import time
from pathlib import Path

import pytest
from rich.cells import cell_len
from rich.console import Console

from tests.support import RawClient
from tests.test_classroom import TEACHER_PERSONA, report, send_report
from tutor.classroom import periods
from tutor.classroom.on_disk import read_copy
from tutor.classroom.roster import Roster, SessionEvents, StudentRow, build
from tutor.maildir.session_store import SessionStore, sessions_directory
from tutor.sandbox.class_model import LiveClass
from tutor.sandbox.serve import ServeOptions
from tutor.server.runner import TeachingServer
from tutor.smtp.events import Event, Exchange, SessionClosed, SessionOpened, StudentNamed
from tutor.ui.common.theme import ThemedConsole
from tutor.ui.serve.class_views import HistoryPage, RosterPage
from tutor.ui.serve.dashboard import Dashboard
from tutor.ui.serve.dashboard_view import Header

SGR = re.compile(r"\x1b\[[0-9;]*m")
ONE_LETTER = re.compile(r"(?<!\w)\w…")  # a word cut to one letter
SIZES = ((80, 24), (120, 40), (200, 50))
LONG_NAME = "Maximiliana Wilhelmina von Hohenzollern"  # 39: NOOP takes up to 40


def drain(server: TeachingServer) -> list[Event]:
    events = []
    while not server.capture.events.empty():
        events.append(server.capture.events.get_nowait())
    return events


def wait_saved(server: TeachingServer, count: int) -> None:
    store = server.capture.store
    assert store is not None
    deadline = time.monotonic() + 10
    while len(store.numbers()) < count:
        assert time.monotonic() < deadline, "sessions were not saved as they closed"
        time.sleep(0.02)


def dashboard_for(server: TeachingServer, console: Console, **kwargs: object) -> Dashboard:
    options = ServeOptions(None, 0, server.maildir, False, 300.0, 1000, None)
    store = server.capture.store
    assert store is not None
    return Dashboard(
        console,
        server.capture.events,
        Header.for_server(server, options),
        run=store.run,
        **kwargs,  # type: ignore[arg-type]
    )


def screen(dashboard: Dashboard, width: int, height: int) -> tuple[str, str]:
    """One frame through the real render path: (its text, what reached the terminal)."""
    console = Console(
        record=True, width=width, height=height, file=io.StringIO(), force_terminal=True
    )
    console.print(dashboard.view.render(console, width, height, time.monotonic()))
    return console.export_text(), console.file.getvalue()  # type: ignore[attr-defined]


def typed(dashboard: Dashboard, *keys: str) -> None:
    for key in keys:
        dashboard.handle_key(key)


# --- the roster, one event at a time -------------------------------------------------------------


def test_the_live_roster_is_the_roster_read_from_disk(start_server: object) -> None:
    server: TeachingServer = start_server(TEACHER_PERSONA, save_every_session=True)  # type: ignore[operator]
    ada = RawClient(server.address)
    grace = RawClient(server.address)
    anonymous = RawClient(server.address)
    try:
        assert ada.code("EHLO laptop.example").startswith("250 ")
        assert grace.code("EHLO pc.example").startswith("250 ")
        assert grace.code("STARTTLS").startswith("220 ")
        grace.starttls()
        assert grace.code("EHLO pc.example").startswith("250 ")
        token = base64.b64encode(b"\0you\0tutor-password").decode()
        assert grace.code(f"AUTH PLAIN {token}").startswith("235 ")  # named "you" for now
        assert ada.code("RCPT TO:<you@tutor.test>").startswith("503 ")  # before naming
        assert ada.code("NOOP student=Ada").startswith("250 ")
        for line in ("MAIL FROM:<ada@x.example>", "RCPT TO:<you@tutor.test>", "DATA"):
            ada.cmd(line)
        assert ada.code(b"Subject: hi\r\n\r\nhi\r\n.").startswith("250 ")
        assert grace.code("NOOP student=Grace Hopper").startswith("250 ")
        assert grace.code("VRFY nobody").startswith("5")
        for client in (ada, grace, anonymous):
            assert client.code("QUIT").startswith("221 ")
    finally:
        for client in (ada, grace, anonymous):
            client.close()
    send_report(server, report(kind="lesson", status="done", step=None, messages=3))
    wait_saved(server, 4)

    live = LiveClass(server.maildir, server.capture.store.run)  # type: ignore[union-attr]
    names_seen = []
    for event in drain(server):
        live.feed(event)
        if isinstance(event, StudentNamed) and event.name == "Ada":
            names_seen.append({row.name for row in live.students()})
    # before NOOP student=Ada, Ada's session counted for its HELO name; then it moved
    assert names_seen and "Ada" in names_seen[0] and "laptop.example" not in names_seen[0]
    store = SessionStore(sessions_directory(server.maildir))
    stored = [SessionEvents(s.run, s.session, s.events) for s in store.all_sessions()]
    from_disk = build(stored, lambda copy: read_copy(server.maildir, copy))

    def table(rows: list[StudentRow]) -> list[tuple[object, ...]]:
        return [(row.as_json(), row.sessions) for row in rows]

    assert table(live.students()) == table(from_disk)
    by_name = {row.name: row for row in live.students()}
    assert set(by_name) == {"Ada", "Grace Hopper", "127.0.0.1"}
    assert by_name["Ada"].errors == 1 and by_name["Ada"].messages == 1
    assert by_name["Ada"].all_messages == 1 + 3 and by_name["Ada"].lessons == {"1": "done"}
    assert [number for _, number in by_name["Ada"].sessions] == [1, 4]  # in start order
    assert by_name["Grace Hopper"].errors == 1  # the VRFY's 5xx; the AUTH name is gone


def test_a_session_that_names_itself_twice_moves_with_what_it_counted() -> None:
    roster = Roster(lambda copy: None)
    events: list[Event] = [
        SessionOpened(1, "192.0.2.1", 40001, 25, at=10.0),
        SessionOpened(2, "192.0.2.1", 40002, 25, at=11.0),
        Exchange(2, "command", b"HELO b.example\r\n", ("250 ok",), at=12.0),
        Exchange(1, "command", b"HELO b.example\r\n", ("250 ok",), at=13.0),
        Exchange(1, "command", b"DATA\r\n", ("503 5.5.1 no",), at=14.0),
        StudentNamed(1, "Bo", at=15.0),
        SessionClosed(2, "quit", at=16.0),
        StudentNamed(1, "Cy", at=17.0),
        SessionClosed(1, "quit", at=18.0),
    ]
    for event in events:
        roster.feed("run", event)
    rows = {row.name: row for row in roster.rows()}
    assert set(rows) == {"b.example", "Cy"}  # "192.0.2.1" and "Bo" emptied and went
    assert rows["Cy"].errors == 1 and rows["Cy"].sessions == [("run", 1)]
    assert rows["b.example"].last_seen == 16.0 and rows["b.example"].errors == 0
    whole = [SessionEvents("run", n, tuple(e for e in events if e.session == n)) for n in (1, 2)]
    assert [r.as_json() for r in build(whole, lambda copy: None)] == [
        r.as_json() for r in roster.rows()
    ]


# --- every view, every width, hostile names ------------------------------------------------------


HOSTILE_GREETINGS = (
    b"EHLO \x1b]0;pwned\x07.example",
    "HELO \u202eevil.example".encode(),
    b"EHLO [bold red]x[/]",
    b"EHLO " + b"very-long-" * 30 + b"name.example",
)


def test_every_view_fits_80_120_and_200_columns_with_hostile_names(server: TeachingServer) -> None:
    clients = [RawClient(server.address) for _ in range(6)]
    try:
        for client, greeting in zip(clients, HOSTILE_GREETINGS, strict=False):
            assert client.code(greeting).startswith("250 ")
            assert client.code("RCPT TO:<you@tutor.test>").startswith("503 ")
        assert clients[4].code("EHLO pc4.example").startswith("250 ")
        assert clients[4].code(f"NOOP student={LONG_NAME}").startswith("250 ")
        clients[5].send_raw(b"helo lf.example\n")  # a warning under its row
        assert clients[5].reply()[0].startswith("250 ")
        assert clients[0].code("NOOP student=Ada").startswith("250 ")
        assert clients[0].code("MAIL FROM:<ada@x.example>").startswith("250 ")
        dashboard = dashboard_for(server, Console(file=io.StringIO()))
        dashboard.drain()
        pages = {  # the keys that open each view, and the student picked in the roster
            "connections": ((), None),
            "roster": (("r",), None),
            "history": (("r", "enter"), "Ada"),
            "search": (("r", "enter", "/", *"mail from", "enter"), "Ada"),
            "hostile history": (("r", "enter"), "\\u202eevil.example"),
            "long history": (("r", "enter"), LONG_NAME),
        }
        for name, (keys, student) in pages.items():
            for width, height in SIZES:
                dashboard.view.page = None
                dashboard.roster.picked = student
                typed(dashboard, *keys)
                text, written = screen(dashboard, width, height)
                where = f"{name} at {width}x{height}:\n{text}"
                assert len(text.splitlines()) <= height, where
                assert all(cell_len(line) <= width for line in text.splitlines()), where
                assert not ONE_LETTER.search(text), where
                acting = SGR.sub("", written)  # colours and bold: the only sequences sent
                for char in ("\x1b", "\x07", "\u202e"):
                    assert char not in acting, where
                if name == "connections":
                    header = next(line for line in text.splitlines() if "last reply" in line)
                    assert "student" in header and "state" in header, where
                    assert ("TLS/AUTH" in header) == (width >= 120), where
                    if height >= 40:  # every row on screen
                        assert "Ada" in text and LONG_NAME[:10] in text, where
                    assert "! LF only" in text, where
                if name == "roster":
                    lines = text.splitlines()
                    header = next(line for line in lines if line.lstrip().startswith("student"))
                    for column in ("now", "lessons", "errors", "msgs"):
                        assert column in header, where
                    assert ("first seen" in header) == (width > 80), where  # more at 120
                    assert "\\u202eevil.example" in text and "Ada" in text, where
                    assert "Enter their history" in text, where
                if name == "search":
                    assert "/mail from  match 1 of 2" in text, where  # the 503 says MAIL FROM too
                    assert "MAIL FROM:<ada@x.example>" in text, where
        # every name reached the screen visible, never obeyed
        dashboard.view.page = None
        typed(dashboard, "r")
        text, _ = screen(dashboard, 200, 50)
        assert "\\x1b]0;pwned\\x07.example" not in text  # Ada's HELO: she named herself
        assert "[bold red]x[/]" in text and "very-long-very-long" in text
    finally:
        for client in clients:
            client.close()


def test_the_light_theme_draws_the_class_views_without_pale_text(
    server: TeachingServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.test_present import YELLOW_CYAN, _text_attributes

    monkeypatch.delenv("NO_COLOR", raising=False)
    with RawClient(server.address) as client:
        client.cmd("EHLO pc.example")
        client.cmd("NOOP student=Ada")
        client.cmd("RCPT TO:<you@tutor.test>")  # a 503, in red
        dashboard = dashboard_for(server, Console(file=io.StringIO()))
        dashboard.drain()
        used: set[str] = set()
        for keys in ((), ("r",), ("enter", "/", *"rcpt", "enter")):
            typed(dashboard, *keys)
            console = ThemedConsole(
                file=io.StringIO(), width=120, height=40, force_terminal=True, color_system="256"
            )
            console.print(dashboard.view.render(console, 120, 40, time.monotonic()))
            used |= _text_attributes(console.file.getvalue())  # type: ignore[attr-defined]
    pale = {"2", "37", "90", "97", "38;5;7", "38;5;8", "38;5;15", "38;5;3", "38;5;6"}
    assert not used & (YELLOW_CYAN | pale), used
    assert "7" in used  # reverse video: the picked row, the search's match


# --- a student's history: every session, wherever it is -----------------------------------------


def test_history_reads_closed_sessions_back_from_the_store_and_searches(
    start_server: object,
) -> None:
    server: TeachingServer = start_server(save_every_session=True)  # type: ignore[operator]
    for number in (1, 2):
        with RawClient(server.address) as client:
            client.cmd("HELO pc.example")
            client.cmd("NOOP student=Ada")
            client.cmd(f"MAIL FROM:<ada-{number}@x.example>")
            client.cmd("QUIT")
    going = RawClient(server.address)
    try:
        going.cmd("HELO pc.example")
        going.cmd("NOOP student=Ada")
        going.cmd("RCPT TO:<ghost@tutor.test>")
        wait_saved(server, 2)
        # nothing of a closed session kept in memory: both are read back from the store
        dashboard = dashboard_for(server, Console(file=io.StringIO()), keep_events=0)
        dashboard.drain()
        typed(dashboard, "r", "enter")
        page = dashboard.view.page
        assert isinstance(page, HistoryPage) and page.name == "Ada"
        text, _ = screen(dashboard, 120, 200)
        assert text.count("(read back from the session store)") == 2
        assert "── session #3" in text and "● going on" in text
        assert text.index("MAIL FROM:<ada-1@") < text.index("MAIL FROM:<ada-2@")
        assert "HISTORY Ada  3 sessions, 1 going on" in text

        typed(dashboard, "/", *"MAIL FROM:<ADA-", "enter")  # the case does not matter
        text, written = screen(dashboard, 120, 30)
        assert "match 1 of 2" in text
        # the match highlighted in reverse video (the one gone to, underlined too)
        assert re.search(r"\x1b\[[0-9;]*7mMAIL FROM:<ada-\x1b\[0m1@", written)
        typed(dashboard, "n")
        assert "match 2 of 2" in screen(dashboard, 120, 30)[0]
        typed(dashboard, "n")  # round the end
        assert "match 1 of 2" in screen(dashboard, 120, 30)[0]
        typed(dashboard, "N")
        assert "match 2 of 2" in screen(dashboard, 120, 30)[0]
        typed(dashboard, "/", *"quit", "backspace", "t", "escape")  # given up: unchanged
        assert "match 2 of 2" in screen(dashboard, 120, 30)[0]
        typed(dashboard, "/", *"nowhere", "enter")
        assert "! no match for 'nowhere'" in screen(dashboard, 120, 30)[0]

        # scrolling: the start, the end (which follows what the live session sends)
        typed(dashboard, "g")
        assert screen(dashboard, 80, 24)[0].splitlines()[3].startswith("── session #1")
        typed(dashboard, "G")
        going.cmd("RCPT TO:<latest@tutor.test>")
        dashboard.drain()
        assert "RCPT TO:<latest@tutor.test>" in screen(dashboard, 80, 24)[0]
        typed(dashboard, "pageup", "pageup")
        assert "RCPT TO:<latest@tutor.test>" not in screen(dashboard, 80, 24)[0]
        typed(dashboard, "escape")
        assert isinstance(dashboard.view.page, RosterPage)
        typed(dashboard, "c")
        assert dashboard.view.page is None
    finally:
        going.close()


def test_a_picked_session_stays_and_a_lost_one_says_so(server: TeachingServer) -> None:
    """The in-process server saves no session: once the dashboard forgets one, nothing
    can read it back, and its history says so instead of leaving it out."""
    clients = [RawClient(server.address) for _ in range(12)]
    dashboard = dashboard_for(server, Console(file=io.StringIO()), keep_events=0)
    for number, client in enumerate(clients):
        client.cmd(f"HELO pc{number}.example")
        client.cmd("NOOP student=Bo" if number == 0 else f"NOOP student=S{number}")
    dashboard.drain()
    typed(dashboard, "pageup", "pageup")  # the first session picked
    assert dashboard.model.selected == 1
    for client in clients:
        client.cmd("QUIT")
        client.close()
    assert server.capture.wait_for(
        lambda: all(r.closed is not None for r in server.capture.sessions()), timeout=10
    )
    dashboard.drain()
    rows = dashboard.model.rows()
    assert len(rows) == dashboard.model.keep_closed + 1 and rows[-1].session == 1
    text, _ = screen(dashboard, 120, 40)
    assert re.search(r"▶ +1 Bo ", text)
    typed(dashboard, "h")  # the picked session's student, at that session
    page = dashboard.view.page
    assert isinstance(page, HistoryPage) and page.name == "Bo"
    text, _ = screen(dashboard, 120, 40)
    assert "── session #1" in text and "is no longer in memory" in text


def test_a_restarted_serve_lists_the_periods_earlier_sessions(tmp_path: Path) -> None:
    root = tmp_path / "Maildir"
    periods.begin(root)
    first = TeachingServer(root, save_every_session=True).start()
    try:
        with RawClient(first.address) as client:
            client.cmd("HELO pc.example")
            client.cmd("NOOP student=Ada")
            assert client.code("VRFY ghost").startswith("550 ")
            client.cmd("QUIT")
        wait_saved(first, 1)
    finally:
        first.stop()
    second = TeachingServer(root, save_every_session=True).start()
    try:
        with RawClient(second.address) as client:
            client.cmd("HELO pc.example")
            dashboard = dashboard_for(second, Console(file=io.StringIO()))
            dashboard.read_earlier_sessions().join(timeout=10)
            dashboard.drain()
            typed(dashboard, "h")  # the newest session: named by its HELO for now
            page = dashboard.view.page
            assert isinstance(page, HistoryPage) and page.name == "pc.example"
            assert client.code("NOOP student=Ada").startswith("250 ")
            assert client.code("RCPT TO:<you@tutor.test>").startswith("503 ")
            dashboard.drain()
            text, _ = screen(dashboard, 120, 80)
            assert page.name == "Ada"  # the history follows the session it was opened at
            assert "HISTORY Ada  2 sessions, 1 going on" in text
            assert "(an earlier serve, started " in text and "C: VRFY ghost" in text
            ada = dashboard.live.student("Ada")
            assert ada is not None and ada.errors == 2 and len(ada.sessions) == 2
    finally:
        second.stop()


# --- the real dashboard, in a terminal of 80 x 24 ------------------------------------------------


@pytest.mark.posix
@pytest.mark.slow
def test_a_teacher_finds_a_students_command_in_the_real_dashboard(tmp_path: Path) -> None:
    pytest.importorskip("pexpect") if sys.platform != "win32" else None
    from tests.pty_session import PtySession

    env = dict(os.environ, TERM="xterm-256color", COLUMNS="80", LINES="24")
    serve = PtySession(
        "serve",
        "--port",
        "0",
        "--maildir",
        str(tmp_path / "Maildir"),
        rows=24,
        columns=80,
        environment=env,
    )
    port = int(serve.expect(r"on 127\.0\.0\.1:(\d+)").group(1))
    serve.expect(r"KEYS")
    students = []
    for name in ("Ada Lovelace", "Grace Hopper", "Linus"):
        client = RawClient(("127.0.0.1", port))
        client.cmd("EHLO pc.example")
        assert client.code(f"NOOP student={name}").startswith("250 ")
        students.append(client)
    assert students[1].code("RCPT TO:<ghost@tutor.test>").startswith("503 ")
    try:
        serve.expect(r"Linus")  # the connections table names the students
        serve.press("r")
        serve.expect(r"ROSTER +3 students, 3 connected now")
        serve.expect(r"Grace Hopper +● #2 greeted")
        serve.press("j")  # Ada is first (by name); Grace below
        serve.press("\r")
        serve.expect(r"HISTORY Grace Hopper +1 session, 1 going on")
        serve.press("/")
        serve.child.send("rcpt to:<ghost")
        serve.press("\r")
        serve.expect(r"/rcpt to:<ghost +match 1 of 1")
        serve.press("\x1b")
        serve.expect(r"ROSTER")
        serve.press("c")
        serve.expect(r"CONNECTIONS")
        serve.press("q")
        assert serve.finish() == 0
    finally:
        for client in students:
            client.close()
    assert "Traceback" not in serve.screen()
    assert "stopped: 3 sessions" in serve.screen()
