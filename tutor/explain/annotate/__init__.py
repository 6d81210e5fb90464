"""What a reply means here: the same code explained by the command it answers and the state.

A 250 after MAIL, after RCPT and after the final dot are three different lessons, and a
503 is only useful if it names the step that is missing. `annotate()` therefore looks
at the command verb, the reply code, the enhanced status code (RFC 3463: the text after
the code is not irrelevant) and what the server knew before, together, and falls back
to the catalogue in `codes.py` for anything it has no special words for.
`annotate_alone()` does the same for a reply seen without its conversation (a bounce).
Stdlib only: the UI decides how an Annotation looks.

One module per rule table, each readable alone, tried in this order: `stage` (the
command the reply answers), `status` (the enhanced status code, with the reply code),
`code` (the reply code alone), then `catalogue` (the catalogue's words, and the touches
every annotation gets). `sequence` says which step a 503 misses; `note` holds the types
they share. Code outside the package imports only what this module exports (`__all__`).
Each module spells its own `R5321`: tools/citations.py fills `{R5321}` in from the file's
own constants.
"""

from __future__ import annotations

from tutor.explain.annotate.catalogue import enhanced_meaning, finish, from_catalogue
from tutor.explain.annotate.code import by_code
from tutor.explain.annotate.note import Annotation, Context
from tutor.explain.annotate.stage import by_stage, extension_meaning, stage_from_words, stage_of
from tutor.explain.annotate.status import by_status
from tutor.smtp.session_state import SessionState
from tutor.smtp.wire import Reply

__all__ = ["Annotation", "annotate", "annotate_alone", "enhanced_meaning", "extension_meaning"]


def annotate(command: str | None, reply: Reply, state_before: SessionState) -> Annotation:
    """Explain `reply` as the answer to `command`, given what the server knew before it.

    `command` None is the greeting (or, once greeted, a reply nobody asked for). While
    `state_before.in_data`, the reply answers the message that ended with the lone dot.
    """
    context = Context(*stage_of(command, state_before), reply, state_before)
    note = by_stage(context) or by_status(context) or by_code(context)
    return finish(note or from_catalogue(context), context)


def annotate_alone(reply: Reply, hint: str = "") -> Annotation:
    """Explain a reply seen out of context (a bounce): code, enhanced code and text.

    Bounces often say which command the reply answered, as Postfix's "(in reply to RCPT
    TO command)" or Exim's "after RCPT TO:<…>"; `hint` is any text around the reply.
    """
    stage = stage_from_words(f"{hint} {reply.text}")
    context = Context(stage, "", reply, SessionState(), alone=True)
    note = by_status(context) or by_code(context)
    return finish(note or from_catalogue(context), context)
