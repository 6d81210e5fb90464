"""The catalogue's words for a code no rule explained, the enhanced code in words, and the
finishing touches every annotation gets."""

from __future__ import annotations

from functools import lru_cache

from tutor.explain.annotate.note import Annotation, Context, Note
from tutor.smtp.codes import enhanced_code, reply_category, reply_class, reply_code, short_meaning

R5321 = "RFC 5321"


def from_catalogue(c: Context) -> Note:
    entry = reply_code(c.code)
    if entry is None:
        return Note(
            short_meaning(c.code),
            f"{reply_class(c.code)}; {reply_category(c.code)}.",
            f"{R5321} §4.2.1",
        )
    return Note(short_meaning(c.code), entry.meaning, entry.rfc, entry.action)


@lru_cache(maxsize=256)  # a few codes recur in every session: `serve` explains a flood
def enhanced_meaning(enhanced: str, code: int | None = None) -> str:
    """An enhanced code in words: its registry title, class and subject, and description."""
    klass, subject, detail = (int(part) for part in enhanced.split("."))
    subject_entry = enhanced_code(f"X.{subject}.YYY")
    class_entry = enhanced_code(f"{klass}.XXX.YYY")
    parts = [class_entry.title.lower() if class_entry else f"class {klass}"]
    if subject_entry:
        parts.append(subject_entry.title.lower())
    where = "; ".join(parts)
    entry = enhanced_code(enhanced)
    if entry is not None and detail == 0 and subject == 0:
        text = f"{entry.title} ({where}): only the class is known."
    elif entry is not None:
        text = f"{entry.title} ({where}). {entry.description}"
    elif subject_entry is not None:
        text = (
            f"Not in the IANA registry ({where}): probably this provider's own detail "
            "code; the words after it say more."
        )
    else:
        text = "Not an enhanced status code of the IANA registry."
    if code is not None and code // 100 != klass:
        text += f" Its class {klass} does not match reply {code}: trust the reply code."
    return text


def finish(note: Note, c: Context) -> Annotation:
    advice = note.advice
    detail = note.detail
    if c.stage == "RCPT" and c.code >= 400 and c.code not in (421, 503):
        # Each RCPT is judged on its own: a refusal never undoes the others.
        accepted = len(c.state.accepted)
        rest = f"the {accepted} accepted so far still stand" if accepted else "none is accepted yet"
        if c.alone:
            rest = "the others are judged on their own"
        advice = f"Only this recipient is refused; {rest}. " + (advice or "")
    if c.stage == "data-end" and c.code >= 400 and c.code != 421:
        detail += " The whole message was refused: no recipient gets it. " + (
            "Send it again later." if c.code < 500 else "The sender must change something."
        )
    enhanced = c.reply.enhanced
    return Annotation(
        headline=note.headline,
        detail=detail,
        rfc=note.rfc,
        reply_class=reply_class(c.code),
        enhanced=enhanced,
        enhanced_meaning=enhanced_meaning(enhanced, c.code) if enhanced else None,
        advice=advice.strip() if advice else None,
    )
