"""`explain`: each code found, in words: what it means, when it comes, what to do.

The catalogue's own words are ours; what was found in the user's text (a reply line, a
bounce) is untrusted and reaches the screen only through ui.safe. With `plain`, no
boxes: a heading line per code and one labelled line per fact.
"""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.text import Text

from tutor.explain.annotate import Annotation
from tutor.explain.explain import Explained
from tutor.smtp.textsafe import wire_lines
from tutor.ui.common.safe import join, untrusted

CLASS_STYLE = {"2": "green", "3": "cyan", "4": "yellow", "5": "red"}


def render_explained(items: list[Explained], *, plain: bool = False) -> RenderableType:
    return Group(*(_item(item, plain=plain) for item in items))


def _heading(item: Explained) -> Text:
    kind = "reply code" if item.kind == "reply" else "enhanced status code"
    return Text(f"{item.code} ({kind}): {item.title}")


def _item(item: Explained, *, plain: bool) -> RenderableType:
    rows: list[RenderableType] = []
    if item.found_in:  # a multi-line reply keeps its lines
        first, *more = wire_lines(item.found_in)
        rows.append(_fact("found in", untrusted(first, "bold")))
        rows += [join(Text("          "), untrusted(line, "bold")) for line in more]
    if item.in_context is not None:
        rows += _in_context(item.in_context)
    rows.append(_fact("meaning", Text(item.meaning)))
    if item.when:
        rows.append(_fact("when", Text(item.when)))
    if item.action:
        rows.append(_fact("what to do", Text(item.action)))
    first, second = (
        ("first digit", "second digit") if item.kind == "reply" else ("class", "subject")
    )
    rows.append(_fact(first, Text(item.first, style="dim")))
    rows.append(_fact(second, Text(item.second, style="dim")))
    rows.append(_fact("reference", Text(item.rfc, style="dim")))
    style = CLASS_STYLE.get(item.code[:1], "blue")
    if plain:
        heading = join(Text("== "), _heading(item), Text(" =="))
        heading.stylize("bold")
        return Group(heading, *rows, Text(""))
    return Panel(Group(*rows), title=_heading(item), title_align="left", border_style=style)


def _fact(label: str, value: Text) -> Text:
    return join(Text(f"{label}: ", style="bold"), value)


def _in_context(note: Annotation) -> list[RenderableType]:
    """The whole reply read as one: code, enhanced code and text together."""
    rows: list[RenderableType] = [_fact("this reply says", untrusted(note.headline, "bold"))]
    rows += [join(Text("  "), untrusted(line)) for line in wire_lines(note.detail)]
    if note.advice:
        rows.append(join(Text("  next: ", style="italic"), untrusted(note.advice, "italic")))
    rows.append(join(Text("  see: ", style="dim"), untrusted(note.rfc, "dim")))
    return rows
