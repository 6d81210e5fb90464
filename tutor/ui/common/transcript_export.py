"""Transcripts to hand out: the recorded screen as Markdown, HTML, SVG or plain text.

The console records what it prints (rich's record=True); at the end the record is
written in the format the file name asks for. Everything in it already went through the
escaping helper, and rich's exporters escape HTML/SVG special characters themselves.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.terminal_theme import DEFAULT_TERMINAL_THEME

from tutor.errors import UsageError
from tutor.ui.common.theme import ThemedConsole

FORMATS = {
    ".md": "Markdown",
    ".markdown": "Markdown",
    ".html": "HTML",
    ".htm": "HTML",
    ".svg": "SVG",
    ".txt": "text",
}


def check_path(path: Path) -> Path:
    """Refuse an unknown extension or a missing folder before the session starts."""
    if path.suffix.lower() not in FORMATS:
        known = ", ".join(sorted({k for k in FORMATS if k not in (".htm", ".markdown")}))
        raise UsageError(f"--transcript {path}: use one of these extensions: {known}")
    if not path.parent.exists():
        raise UsageError(f"--transcript {path}: the folder {path.parent} does not exist")
    return path


def render(console: Console, path: Path, title: str) -> str:
    kind = FORMATS[path.suffix.lower()]
    if kind == "HTML":
        return console.export_html(inline_styles=True, clear=False)
    if kind == "SVG":  # drawn on white for the light theme, on rich's dark grey otherwise
        light = DEFAULT_TERMINAL_THEME if isinstance(console, ThemedConsole) else None
        return console.export_svg(title=title, clear=False, theme=light)
    text = console.export_text(clear=False)
    if kind == "Markdown":
        return f"# {title}\n\nRecorded by smtp-tutor.\n\n```text\n{text.rstrip()}\n```\n"
    return text


def write(console: Console, path: Path, title: str) -> None:
    try:
        path.write_text(render(console, path, title), encoding="utf-8")
    except OSError as error:
        raise UsageError(f"cannot write the transcript {path}: {error.strerror}") from error
