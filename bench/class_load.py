"""A class of simulated students against `smtp-tutor serve`'s dashboard, on loopback.

    python bench/class_load.py [--students 40] [--seconds 180] [--size 80x24] [--think 0.2]

`serve` runs on a pseudo-terminal of the given size (bench/pty_screen.py reads it through a
terminal emulator), as a teacher runs it. Each student is one raw client that names itself
(`NOOP student=Student NN`) and does SMTP sessions as a person at telnet would, with a
pause of about --think seconds before each command: EHLO, NOOP student=, MAIL, RCPT, DATA
and a message, then every other session a command out of order (a 503), then QUIT. Every
client counts what it did: sessions, messages stored, 4xx/5xx replies.

Bounded twice: by --seconds of load (then every session in progress finishes) and by a
deadline for the whole run. Loopback only. At the end it reports the peak and final RSS
of the dashboard's process and of serve with its server process, and whether the roster
is right: what the dashboard's roster view shows (scrolled through at a small size) and
what `smtp-tutor class --json` reads from disk, each against the clients' own counts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pty_screen
import servers
from loadgen import check_loopback

HOST = "127.0.0.1"
ROW = re.compile(r"^[▶ ] (Student \d+) .*?(\d+) +(\d+) +\d\d:\d\d:\d\d")


@dataclass
class Tally:
    sessions: int = 0
    messages: int = 0
    errors: int = 0


async def reply(reader: asyncio.StreamReader) -> str:
    """A whole reply; its last line."""
    while True:
        line = (await reader.readline()).decode("utf-8", "replace")
        if not line:
            raise ConnectionError("closed")
        if line[3:4] != "-":
            return line


async def student(number: int, port: int, until: float, think: float, tally: Tally) -> None:
    pace = random.Random(number)
    while time.monotonic() < until:
        await session(number, port, think, pace, tally)
        tally.sessions += 1


async def session(number: int, port: int, think: float, pace: random.Random, tally: Tally) -> None:
    """One session, typed at a person's pace."""
    name = f"Student {number:02d}"
    reader, writer = await asyncio.open_connection(HOST, port)
    await reply(reader)

    async def send(line: bytes) -> str:
        await asyncio.sleep(think * pace.uniform(0.5, 1.5))
        writer.write(line + b"\r\n")
        await writer.drain()
        answer = await reply(reader)
        if answer[:1] in ("4", "5"):
            tally.errors += 1
        return answer

    await send(f"EHLO pc{number}.example".encode())
    await send(f"NOOP student={name}".encode())
    await send(f"MAIL FROM:<s{number}@class.example>".encode())
    await send(b"RCPT TO:<you@tutor.test>")
    await send(b"DATA")
    text = f"From: {name} <s{number}@class.example>\r\nSubject: hi\r\n\r\nhello\r\n."
    if (await send(text.encode())).startswith("250 "):
        tally.messages += 1
    if tally.sessions % 2:
        await send(b"RCPT TO:<you@tutor.test>")  # out of order: 503
    await send(b"QUIT")
    writer.close()
    await writer.wait_closed()


async def load(students: int, port: int, seconds: float, think: float) -> list[Tally]:
    tallies = [Tally() for _ in range(students)]
    until = time.monotonic() + seconds
    work = [student(n + 1, port, until, think, tallies[n]) for n in range(students)]
    await asyncio.wait_for(asyncio.gather(*work), seconds + 120)
    return tallies


def rss_alone(pid: int) -> int:
    """Resident set size of one process, KiB (the dashboard's, without its server)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    match = re.search(r"^VmRSS:\s+(\d+) kB", text, re.M)
    return int(match.group(1)) if match else 0


def screen_rows(program: pty_screen.PtyProgram) -> dict[str, tuple[int, int]]:
    """(errors, msgs) per student row of one whole roster frame."""
    program.wait_for(r"(?m)^ SMTP-TUTOR SERVE[\s\S]*^ ROSTER[\s\S]*^ KEYS", 30)
    rows = {}
    for line in program.last_screen:
        match = ROW.match(line)
        if match:
            rows[match.group(1)] = (int(match.group(2)), int(match.group(3)))
    return rows


def roster_on_screen(program: pty_screen.PtyProgram, students: int) -> dict[str, tuple[int, int]]:
    """(errors, msgs) per student as the roster view shows them, page by page (a row
    counts when two frames in a row agree on it: a frame may be read mid-redraw)."""
    seen: dict[str, tuple[int, int]] = {}
    program.send(b"r")
    program.send(b"g")
    for _ in range(students):
        first, second = screen_rows(program), screen_rows(program)
        seen.update({name: row for name, row in second.items() if first.get(name) == row})
        if len(seen) >= students:
            break
        program.send(b"\x1b[6~")  # PgDn
    return seen


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--students", type=int, default=40)
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument("--size", default="80x24", help="the terminal, COLUMNSxLINES")
    parser.add_argument("--think", type=float, default=0.2, help="seconds before a command")
    parser.add_argument("--keep", action="store_true", help="keep the Maildir and sessions")
    parser.add_argument(
        "--no-screen", action="store_true", help="skip reading the roster view (an older serve)"
    )
    args = parser.parse_args()
    check_loopback(HOST)
    columns, lines = (int(part) for part in args.size.split("x"))
    work = Path(tempfile.mkdtemp(prefix="class-load-"))
    maildir = work / "Maildir"
    port = servers.free_port()
    env = dict(os.environ, TERM="xterm-256color", PROMPT_TOOLKIT_NO_CPR="1")
    env.pop("NO_COLOR", None)
    command = [*servers.tutor_command(), "serve", "--port", str(port), "--maildir", str(maildir)]
    program = pty_screen.PtyProgram(command, env, str(work), columns, lines)
    program.wait_for(r"on 127\.0\.0\.1:\d+", servers.STARTUP_TIMEOUT)
    pid = program.proc.pid
    peak = {"dashboard": 0, "serve": 0}
    sampling = threading.Event()

    def sample() -> None:
        while not sampling.wait(1.0):
            peak["dashboard"] = max(peak["dashboard"], rss_alone(pid))
            peak["serve"] = max(peak["serve"], servers.rss_kib(pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.monotonic()
    tallies = asyncio.run(load(args.students, port, args.seconds, args.think))
    elapsed = time.monotonic() - started
    expected = {f"Student {n + 1:02d}": (t.errors, t.messages) for n, t in enumerate(tallies)}
    time.sleep(2.0)  # the last sessions' events reach the screen
    shown = {} if args.no_screen else roster_on_screen(program, args.students)
    sampling.set()
    sampler.join()
    final = {"dashboard": rss_alone(pid), "serve": servers.rss_kib(pid)}
    program.send(b"q")
    program.proc.wait(timeout=60)
    program.close()
    listed = subprocess.run(
        [*servers.tutor_command(), "class", "--json", "--maildir", str(maildir)],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    rows = json.loads(listed.stdout)["students"]
    on_disk = {row["name"]: (row["errors"], row["messages"]) for row in rows}
    sessions = sum(t.sessions for t in tallies)
    messages = sum(t.messages for t in tallies)
    wrong_screen = {n: (shown.get(n), e) for n, e in expected.items() if shown.get(n) != e}
    if args.no_screen:
        wrong_screen = {}
    wrong_disk = {n: (on_disk.get(n), e) for n, e in expected.items() if on_disk.get(n) != e}
    print(
        f"{args.students} students, {elapsed:.0f} s at {columns}x{lines}: {sessions} sessions, "
        f"{messages} messages, {sum(t.errors for t in tallies)} errors (4xx/5xx)"
    )
    print(
        f"RSS, MiB: dashboard process peak {peak['dashboard'] / 1024:.1f}, at the end "
        f"{final['dashboard'] / 1024:.1f}; serve with its server process peak "
        f"{peak['serve'] / 1024:.1f}, at the end {final['serve'] / 1024:.1f}"
    )
    if not args.no_screen:
        print(
            f"roster on screen: {len(shown)} students read, "
            f"{'all right' if not wrong_screen else f'WRONG {wrong_screen}'}"
        )
    print(
        f"roster on disk (smtp-tutor class): {len(on_disk)} students, "
        f"{'all right' if not wrong_disk else f'WRONG {wrong_disk}'}"
    )
    print(f"exit status {program.proc.returncode}" + (f"; files under {work}" if args.keep else ""))
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if not wrong_screen and not wrong_disk and program.proc.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
