"""`codes [FILTER]`: the reply-code and enhanced-status-code catalogue as tables.

Filters: `5xx` (a class), `55x` (class and category), `550` (one code) for reply codes;
`5.x.x` (every enhanced code, shown with class 5), `5.7` or `5.7.x` (one subject),
`5.7.26` (one code) for enhanced codes; `x` stands for "any" and the class may be X.
The registry lists detail codes without a class; they are shown with the class asked
for. With `plain`, no table: one line per code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from rich.box import SIMPLE_HEAD
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from tutor.errors import UserError
from tutor.smtp.codes import (
    ENHANCED_CODES,
    REPLY_CODES,
    EnhancedCode,
    ReplyCode,
    enhanced_subject,
    reply_category,
    reply_class,
    short_meaning,
)

FILTER_HELP = "try 5xx, 55x, 550, 5.x.x, 5.7, 5.7.x or 5.7.26"

_REPLY_FILTER = re.compile(r"(?P<c>[2-5])(?:(?P<k>[0-5x])(?P<d>[0-9x])?)?", re.IGNORECASE)
_ENHANCED_FILTER = re.compile(
    r"(?P<c>[245x])\.(?P<s>\d{1,3}|x{1,3})(?:\.(?P<d>\d{1,3}|[xy]{1,3}))?", re.IGNORECASE
)


@dataclass
class Selection:
    headings: list[str] = field(default_factory=list)
    replies: list[ReplyCode] = field(default_factory=list)
    enhanced: list[tuple[str, EnhancedCode]] = field(default_factory=list)  # (shown as, entry)


def select_codes(spec: str | None) -> Selection:
    """The catalogue entries a filter asks for; UserError if it is malformed or matches none."""
    text = (spec or "").strip()
    if not text:
        return Selection(
            ["Every reply code (RFC 5321 §4.2 and extensions), then the IANA enhanced codes"],
            list(REPLY_CODES.values()),
            _enhanced_rows("X", None, None),
        )
    if match := _REPLY_FILTER.fullmatch(text):
        selection = _reply_selection(match)
    elif match := _ENHANCED_FILTER.fullmatch(text):
        selection = _enhanced_selection(match)
    else:
        raise UserError(f"unknown filter {text!r}: {FILTER_HELP}")
    if not selection.replies and not selection.enhanced:
        raise UserError(f"no codes match {text!r}: {FILTER_HELP}")
    return selection


def _reply_selection(match: re.Match[str]) -> Selection:
    klass = int(match["c"])
    category = match["k"] if match["k"] and match["k"].isdigit() else None
    detail = match["d"] if match["d"] and match["d"].isdigit() else None
    if detail is not None and category is None:
        raise UserError(f"unknown filter {match.group(0)!r}: {FILTER_HELP}")
    headings = [reply_class(klass * 100)]
    if category is not None:
        headings.append(reply_category(klass * 100 + int(category) * 10))
    rows = [
        entry
        for code, entry in REPLY_CODES.items()
        if code // 100 == klass
        and (category is None or code // 10 % 10 == int(category))
        and (detail is None or code % 10 == int(detail))
    ]
    return Selection(headings, rows)


def _enhanced_selection(match: re.Match[str]) -> Selection:
    klass = match["c"].upper()
    subject = str(int(match["s"])) if match["s"].isdigit() else None
    detail = str(int(match["d"])) if match["d"] and match["d"].isdigit() else None
    if detail is not None and subject is None:
        raise UserError(f"unknown filter {match.group(0)!r}: {FILTER_HELP}")
    headings = []
    if klass != "X":
        class_entry = ENHANCED_CODES[f"{klass}.XXX.YYY"]
        headings.append(f"{klass}.x.x {class_entry.title}: {class_entry.description}")
    if subject is not None and f"X.{subject}.YYY" in ENHANCED_CODES:
        headings.append(enhanced_subject(f"X.{subject}.0"))
    return Selection(headings, [], _enhanced_rows(klass, subject, detail))


def _enhanced_rows(
    klass: str, subject: str | None, detail: str | None
) -> list[tuple[str, EnhancedCode]]:
    rows = []
    for key, entry in ENHANCED_CODES.items():
        _, entry_subject, entry_detail = key.split(".")
        if not entry_detail.isdigit():
            continue  # classes and subjects head the table instead
        if subject is not None and entry_subject != subject:
            continue
        if detail is not None and entry_detail != detail:
            continue
        rows.append((f"{klass}.{entry_subject}.{entry_detail}", entry))
    return rows


def codes_table(filter: str | None = None, *, plain: bool = False) -> RenderableType:
    selection = select_codes(filter)
    parts: list[RenderableType] = [Text(line, style="bold") for line in selection.headings]
    if selection.replies:
        parts.append(_reply_table(selection.replies, plain=plain))
    if selection.enhanced:
        parts.append(_enhanced_table(selection.enhanced, plain=plain))
    return Group(*parts)


def _reply_table(rows: list[ReplyCode], *, plain: bool) -> RenderableType:
    if plain:
        return Group(
            Text("Reply codes:", style="bold"),
            *(Text(f"  {r.code}  {short_meaning(r.code)}  ({r.rfc})") for r in rows),
        )
    table = Table(title="Reply codes", title_justify="left", box=SIMPLE_HEAD, pad_edge=False)
    table.add_column("code", style="bold", no_wrap=True)
    table.add_column("in short", overflow="fold")
    table.add_column("customary text", overflow="fold", style="dim")
    table.add_column("reference", overflow="fold")
    for r in rows:
        table.add_row(Text(str(r.code)), Text(short_meaning(r.code)), Text(r.title), Text(r.rfc))
    return table


def _enhanced_table(rows: list[tuple[str, EnhancedCode]], *, plain: bool) -> RenderableType:
    def used(entry: EnhancedCode) -> str:
        return ", ".join(str(code) for code in entry.used_with) or "—"

    if plain:
        return Group(
            Text("Enhanced status codes (IANA registry, RFC 3463):", style="bold"),
            *(Text(f"  {shown}  {e.title}  ({_with(e)}{e.rfc})") for shown, e in rows),
        )
    table = Table(
        title="Enhanced status codes (IANA registry, RFC 3463)",
        title_justify="left",
        box=SIMPLE_HEAD,
        pad_edge=False,
    )
    table.add_column("code", style="bold", no_wrap=True)
    table.add_column("title", overflow="fold")
    table.add_column("with reply", overflow="fold")
    table.add_column("reference", overflow="fold")
    for shown, entry in rows:
        table.add_row(Text(shown), Text(entry.title), Text(used(entry)), Text(entry.rfc))
    return table


def _with(entry: EnhancedCode) -> str:
    """ "with 550; " for the reply codes the registry pairs it with (it names none for some)."""
    return f"with {', '.join(str(c) for c in entry.used_with)}; " if entry.used_with else ""
