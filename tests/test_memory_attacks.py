"""Memory floods against a real `serve` process, at full size (slow tier).

RSS is measured over serve's process tree (tests/memory.py). Two attacks that used to
keep hundreds of megabytes (docs/server.md, "Memory: the capture, the session store and
message data"):

- one session pipelining 1,000,000 NOOPs with the line log on: the capture kept every
  exchange (57 -> 394 MB, kept after the close); now within +50 MiB and back after it;
- 60 connections each sending 10 MB of DATA that never ends: every message was held in
  RAM (+590 MB, not returned); now under +100 MiB, spooled to unnamed files that are
  gone once the clients leave.

Bounded: about 40 s and 15 s of traffic on 2 cores, loopback only; each waits at most
FLOOD_TIME for the server.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.memory import MIB, PeakRss, settled_rss, tree_rss
from tests.serve_process import ServeProcess
from tests.support import count_reply_lines, send_noops

pytestmark = pytest.mark.slow

NOOPS = 1_000_000
CONNECTIONS = 60
DATA_BYTES = 10_000_000  # under the 10 MiB SIZE limit: the server must keep reading
FLOOD_TIME = 300.0  # seconds any one flood may take before the test fails


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[ServeProcess]:
    process = ServeProcess(tmp_path / "Maildir", "--log", "--plain")
    yield process
    process.interrupt()
    process.kill()


def test_a_million_pipelined_noops_keep_no_memory(serve: ServeProcess) -> None:
    idle = settled_rss(serve.proc.pid)
    peak = PeakRss(serve.proc.pid)
    started = time.monotonic()
    with socket.create_connection(serve.address, timeout=FLOOD_TIME) as sock:
        writer = threading.Thread(target=send_noops, args=(sock, NOOPS), daemon=True)
        writer.start()
        replies = count_reply_lines(sock, NOOPS + 1)  # the greeting, then one per NOOP
        during = tree_rss(serve.proc.pid)
        sock.sendall(b"QUIT\r\n")
        writer.join()
    flood = time.monotonic() - started
    serve.wait_for(rb"closed after QUIT", timeout=FLOOD_TIME)
    after = settled_rss(serve.proc.pid, seconds=5)
    highest = peak.stop()
    figures = (
        f"idle {idle / MIB:.1f} MiB, peak {highest / MIB:.1f}, at the end of the flood "
        f"{during / MIB:.1f}, after the close {after / MIB:.1f}; {flood:.0f} s"
    )
    print(figures)  # shown with -s: the figures docs/server.md quotes
    assert replies == NOOPS + 1
    assert highest - idle < 50 * MIB, figures
    assert after - idle < 10 * MIB, figures
    # The log showed the start, a count of the rest and the end; not a million lines.
    assert len(serve.output) < 10_000
    summary = [line for line in serve.output if b"more NOOP" in line]
    assert len(summary) == 1 and b"\xe2\x80\xa6 and " in summary[0], summary
    counted = int(summary[0].split(b" and ", 1)[1].split(b" ")[0].replace(b",", b""))
    assert NOOPS - 5_000 < counted < NOOPS


def test_sixty_unfinished_ten_megabyte_messages_stay_out_of_memory(
    serve: ServeProcess,
) -> None:
    pid = serve.proc.pid
    idle = settled_rss(pid)
    peak = PeakRss(pid)
    clients = [_in_data(serve.address) for _ in range(CONNECTIONS)]
    started = time.monotonic()
    senders = [threading.Thread(target=_send_text, args=(c,)) for c in clients]
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join(FLOOD_TIME)
    spool = serve.maildir / ".smtp-tutor" / "spool"
    assert _wait(lambda: _spool_bytes(pid, spool) >= CONNECTIONS * (DATA_BYTES - 2**20))
    held = tree_rss(pid)
    flood = time.monotonic() - started
    for client in clients:
        client.close()
    for session in range(1, CONNECTIONS + 1):
        serve.wait_for(rb"#%d +client closed the connection" % session, FLOOD_TIME)
    assert _wait(lambda: _spool_bytes(pid, spool) == 0)
    after = settled_rss(pid, seconds=5)
    highest = peak.stop()
    figures = (
        f"idle {idle / MIB:.1f} MiB, peak {highest / MIB:.1f}, with every message held "
        f"{held / MIB:.1f}, after the clients left {after / MIB:.1f}; {flood:.0f} s"
    )
    print(figures)
    assert highest - idle < 100 * MIB, figures
    assert after - idle < 50 * MIB, figures
    assert not any((serve.maildir / "you" / "new").iterdir())  # nothing was stored


def _in_data(address: tuple[str, int]) -> socket.socket:
    sock = socket.create_connection(address, timeout=FLOOD_TIME)
    replies = count_reply_lines(sock, 1)
    sock.sendall(b"HELO client.example\r\nMAIL FROM:<a@client.example>\r\n")
    sock.sendall(b"RCPT TO:<you@tutor.test>\r\nDATA\r\n")
    replies += count_reply_lines(sock, 4)
    assert replies == 5
    return sock


def _send_text(sock: socket.socket) -> None:
    block = (b"x" * 998 + b"\r\n") * 1000
    for _ in range(DATA_BYTES // len(block)):
        sock.sendall(block)


def _spool_bytes(pid: int, spool: Path) -> int:
    """Bytes in the spool files serve holds open (unnamed: found through /proc), in
    serve's process or below it (the server runs in a child process)."""
    if not Path(f"/proc/{pid}/fd").is_dir():
        pytest.skip("needs /proc to see unnamed files")
    tree = [pid, *(child.pid for child in psutil.Process(pid).children(recursive=True))]
    total = 0
    for process in tree:
        try:
            fds = list(Path(f"/proc/{process}/fd").iterdir())
        except OSError:  # a process that ended while we looked
            continue
        for fd in fds:
            try:
                if os.readlink(fd).startswith(str(spool) + os.sep):
                    total += fd.stat().st_size
            except OSError:  # closed while we looked
                continue
    return total


def _wait(condition: object) -> bool:
    """Poll another process's progress, for at most FLOOD_TIME."""
    assert callable(condition)
    deadline = time.monotonic() + FLOOD_TIME
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True
