"""The one way untrusted text reaches the screen: as a rich Text, made visible.

Text objects are never parsed as markup, and `visible()` escapes control characters,
escape sequences and bidi overrides (DESIGN §2.4). Never put untrusted text in an
f-string passed to console.print.
"""

from __future__ import annotations

from rich.markdown import Markdown
from rich.text import Text

from tutor.textsafe import visible, visible_bytes, visible_line


def untrusted(text: str, style: str = "") -> Text:
    return Text(visible(text), style=style)


def untrusted_block(text: str, style: str = "") -> Text:
    """Multi-line untrusted text: each line made visible, the line breaks kept."""
    return Text("\n", style=style).join(untrusted(line, style) for line in text.split("\n"))


def lesson_markdown(text: str) -> Markdown:
    """Lesson text: Markdown is its format, but never rich markup or control characters."""
    return Markdown(visible(text, keep_newlines=True))


def untrusted_bytes(data: bytes, style: str = "") -> Text:
    return Text(visible_bytes(data), style=style)


def untrusted_line(raw: bytes, style: str = "") -> Text:
    """A raw line as sent, with its line ending shown (␍␊ or a bare ␊)."""
    return Text(visible_line(raw), style=style)


def join(*parts: Text | str) -> Text:
    """Concatenate trusted literals (plain str, never parsed) and Text pieces."""
    out = Text()
    for part in parts:  # append_text: the same result, half the cost (serve logs a lot)
        if isinstance(part, Text):
            out.append_text(part)
        else:
            out.append(part)
    return out
