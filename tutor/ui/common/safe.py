"""The one way untrusted text reaches the screen: as a rich Text, made visible.

Text objects are never parsed as markup, and `visible()` escapes control characters,
escape sequences and bidi overrides (docs/architecture.md, "Three promises"). Never put
untrusted text in an f-string passed to console.print.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable

from markdown_it import MarkdownIt
from markdown_it.token import Token
from rich.console import Console, ConsoleOptions, RenderResult
from rich.markdown import Markdown
from rich.text import Text

from tutor.engine.offers import EMPTY, find_offer
from tutor.smtp.textsafe import visible, visible_bytes, visible_line


def untrusted(text: str, style: str = "") -> Text:
    return Text(visible(text), style=style)


def untrusted_block(text: str, style: str = "") -> Text:
    """Multi-line untrusted text: each line made visible, the line breaks kept."""
    return Text("\n", style=style).join(untrusted(line, style) for line in text.split("\n"))


def lesson_markdown(text: str) -> Markdown:
    """Lesson text: Markdown is its format, but never rich markup or control characters.

    Every lesson text (explanations, hints, feedback, after-texts, lists, questions)
    reaches the screen through here, and `lessons validate` renders it through here too.
    """
    return LessonMarkdown(_offers_as_code(visible(text, keep_newlines=True)))


# Lesson Markdown is CommonMark without raw HTML and without autolinks: `<you@tutor.test>`
# and `<sender>` are text an SMTP lesson means literally, never a link or a tag to drop.
_LESSON_PARSER = (
    MarkdownIt("commonmark", {"html": False}).enable(["strikethrough", "table"]).disable("autolink")
)
# A line offered to type (engine/offers.py) becomes a code span with this long a fence, so
# the renderer can tell it from the author's own `code`: shown as is, never quoted.
_OFFER_FENCE = 7
_BACKTICKS = re.compile(r"`+")


class LessonMarkdown(Markdown):
    """rich's Markdown on the lesson parser. Without colour, code spans get quotation
    marks, so a command stays distinguishable from prose (`--plain`, NO_COLOR, TERM=dumb);
    offered lines stay bare, because the learner types them as shown."""

    def __init__(self, markup: str) -> None:
        super().__init__("")
        self.markup = markup
        self.parsed = _LESSON_PARSER.parse(markup)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        if console.color_system is not None and not console.no_color:
            yield from super().__rich_console__(console, options)
            return
        quoted = copy.copy(self)
        quoted.parsed = list(_quote_code_spans(self.parsed))
        yield from Markdown.__rich_console__(quoted, console, options)


def _offers_as_code(text: str) -> str:
    """Each offered line (`Type exactly: LINE`, …) as literal code spans, so that no
    Markdown rule can change what the learner is told to type."""
    out = []
    fence = ""
    for line in text.split("\n"):
        stripped = line.lstrip()
        if fence or stripped.startswith(("```", "~~~")):  # a fenced code block: as is
            if not fence:
                fence = stripped[:3]
            elif stripped.startswith(fence):
                fence = ""
            out.append(line)
            continue
        offer = None if line.startswith(("    ", "\t")) else find_offer(line)
        if offer is None:
            out.append(line)
            continue
        items = (item if item == EMPTY else _code_span(item) for item in offer.items)
        out.append(offer.lead + offer.marker + offer.separator.join(items))
    return "\n".join(out)


def _code_span(content: str) -> str:
    longest = max((len(run) for run in _BACKTICKS.findall(content)), default=0)
    fence = "`" * max(_OFFER_FENCE, longest + 1)
    padded = content.startswith("`") or content.endswith("`")
    padded |= content.startswith(" ") and content.endswith(" ") and bool(content.strip())
    pad = " " if padded else ""  # CommonMark strips one space from each side again
    return f"{fence}{pad}{content}{pad}{fence}"


def _quote_code_spans(tokens: Iterable[Token]) -> Iterable[Token]:
    for token in tokens:
        if token.children:
            token = token.copy(children=list(_quote_code_spans(token.children)))
        elif token.type == "code_inline" and len(token.markup) < _OFFER_FENCE:
            mark = "'" if '"' in token.content else '"'
            token = token.copy(content=f"{mark}{token.content}{mark}")
        yield token


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
