"""Make the README's screenshots with smtp-tutor's own SVG export, from a real session.

    python tools/screenshots.py      # writes docs/images/*.svg

The lesson screen pieces are rendered exactly as `smtp-tutor learn 1` shows them, from
a real run of the seed's session against the built-in server.
"""

from __future__ import annotations

import io
import os
import sys
import tempfile
from pathlib import Path

from rich.console import Console

ROOT = Path(__file__).resolve().parent.parent
SEED = [
    "helo a.b.c",
    "mail from:<bugs@looney.example>",
    "rcpt to:<you@tutor.test>",
    "data",
    "From: Bugs Bunny",
    "To: Daffy Duck",
    "Subject: Loony Toons!",
    "",
    "Hi there!",
    ".",
]


def main() -> int:
    os.environ.setdefault("SMTP_TUTOR_HOME", tempfile.mkdtemp(prefix="smtp-tutor-shots-"))
    sys.path.insert(0, str(ROOT))
    from tutor.engine.driver import LessonDriver
    from tutor.engine.loader import load_all
    from tutor.engine.runner import LessonRun
    from tutor.maildir.mailview import find
    from tutor.smtp.events import Exchange, MessageStored
    from tutor.smtp.session_state import SessionState
    from tutor.ui.common import lesson_view as view

    lesson = load_all(ROOT / "lessons")[0]
    maildir = Path(os.environ["SMTP_TUTOR_HOME"]) / "Maildir"
    driver = LessonDriver(lesson, LessonRun(lesson), maildir)
    exchanges, stored = [], None
    try:
        turns = [driver.start(lesson.steps[0])] + [driver.send(line) for line in SEED]
        for turn in turns:
            exchanges += [e for e in turn.events if isinstance(e, Exchange)]
            stored = next((e for e in turn.events if isinstance(e, MessageStored)), stored)
    finally:
        driver.close()
    assert stored is not None

    console = Console(record=True, width=100, file=io.StringIO(), color_system="truecolor")
    state = SessionState()
    for exchange in exchanges[:3]:  # the greeting, HELO, MAIL: each reply explained
        console.print(view.exchange_view(exchange, state.copy(), plain=False))
        state.feed_exchange(exchange)
    (ROOT / "docs" / "images" / "exchanges.svg").write_text(
        console.export_svg(title="smtp-tutor learn 1"), encoding="utf-8"
    )

    console = Console(record=True, width=100, file=io.StringIO(), color_system="truecolor")
    copies = [m for c in stored.copies for m in find(maildir, f"{c.folder}/{c.key}")]
    console.print(view.envelope_view(stored, copies, plain=False))
    (ROOT / "docs" / "images" / "envelope.svg").write_text(
        console.export_svg(title="smtp-tutor: the envelope against the headers"), encoding="utf-8"
    )
    print("wrote docs/images/exchanges.svg and docs/images/envelope.svg")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
