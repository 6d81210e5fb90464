"""`serve --transcripts` under a flood, at full size (slow tier).

One session pipelines 1,000,000 NOOPs into a real `serve --log --transcripts DIR` in
each format that needs an end (HTML, Markdown, SVG). This used to peak at 5.1 GB of RSS,
write a 424 MB HTML file and leave the log 12 minutes behind: every line of a session was
kept and rendered at once when it closed. Now the transcript is written as the session
goes and cut at its cap, so RSS stays within +50 MiB of idle, the file stays under its
cap and says where it was cut, and the log prints the session's close within a few
seconds of the client's QUIT. Bounded: about 40 s of traffic per format on 2 cores
(FLOOD_TIME at most), loopback only.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.memory import MIB, PeakRss, settled_rss
from tests.serve_process import ServeProcess
from tests.support import count_reply_lines, send_noops
from tests.test_transcript_exports import client_text_of
from tutor.ui.common.transcript_export import SESSION_CAPS, cap_for

pytestmark = pytest.mark.slow

NOOPS = 1_000_000
FLOOD_TIME = 300.0  # seconds the flood may take before the test fails
CLOSE_LAG = 5.0  # seconds from the client's 221 to the log's line for the close


@pytest.fixture(params=["html", "md", "svg"])
def serve(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ServeProcess]:
    process = ServeProcess(
        tmp_path / "Maildir",
        "--log",
        "--plain",
        *("--transcripts", str(tmp_path / "handouts"), "--transcript-format", request.param),
    )
    yield process
    process.interrupt()
    process.kill()


def test_a_million_noops_leave_a_capped_transcript_and_a_log_that_keeps_up(
    serve: ServeProcess,
) -> None:
    idle = settled_rss(serve.proc.pid)
    peak = PeakRss(serve.proc.pid)
    started = time.monotonic()
    with socket.create_connection(serve.address, timeout=FLOOD_TIME) as sock:
        writer = threading.Thread(target=send_noops, args=(sock, NOOPS), daemon=True)
        writer.start()
        replies = count_reply_lines(sock, NOOPS + 1)  # the greeting, then one per NOOP
        writer.join()
        sock.sendall(b"QUIT\r\n")
        assert count_reply_lines(sock, 1) == 1  # the 221
        quit_at = time.monotonic()
    serve.wait_for(rb"#1 +closed after QUIT", timeout=FLOOD_TIME)
    lag = time.monotonic() - quit_at
    flood = quit_at - started
    after = settled_rss(serve.proc.pid, seconds=5)
    highest = peak.stop()
    [path] = (serve.maildir.parent / "handouts").glob("*/*/session-*")  # DIR/RUN/STUDENT/
    size = path.stat().st_size
    figures = (
        f"{path.suffix}: idle {idle / MIB:.1f} MiB, peak {highest / MIB:.1f}, after "
        f"{after / MIB:.1f}; {flood:.0f} s of flood, the close logged {lag:.2f} s after "
        f"the 221; the transcript {size:,} bytes"
    )
    print(figures)  # shown with -s: the figures docs/server.md quotes
    assert replies == NOOPS + 1
    assert highest - idle < 50 * MIB, figures
    assert lag < CLOSE_LAG, figures
    cap = cap_for(path, SESSION_CAPS)
    assert size <= cap.size, figures
    text = client_text_of(path)  # well-formed, client text in its place
    assert re.search(r"… transcript cut here: [\d,]+ more lines, [\d,]+ bytes not written", text)
    assert re.search(r"… and [\d,]+ more NOOP", text), "the capture's own count is kept"
    assert text.rstrip().endswith("closed after QUIT")
