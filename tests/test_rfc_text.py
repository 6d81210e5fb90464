"""What the learner reads agrees with the RFCs: one test per correction.

Each test reads the text as the learner meets it: a lesson or challenge rendered the way
the screen prints it (tutor/ui/common/safe.lesson_markdown, no colour), `smtp-tutor explain`,
or the annotation of a reply in its context. Each asserts the corrected fact and that the
wrong one is gone. The live replies themselves are tested with the server.
"""

from __future__ import annotations

import io
import re
from functools import cache
from pathlib import Path

import pytest

from tests.support import reply, run_cli
from tutor.engine.challenges import load_challenges
from tutor.engine.loader import load_all
from tutor.engine.model import Lesson
from tutor.explain.annotate import Annotation, annotate, extension_meaning
from tutor.smtp.codes import enhanced_code, reply_code
from tutor.smtp.session_state import SessionState
from tutor.ui.common.safe import lesson_markdown
from tutor.ui.common.terminal import build_console

EHLO_PLAIN = (
    "250-mx.tutor.test Hello client.example [127.0.0.1]",
    "250-SIZE 10485760",
    "250-8BITMIME",
    "250-PIPELINING",
    "250-ENHANCEDSTATUSCODES",
    "250-STARTTLS",
    "250 HELP",
)


# --- reading the text as it is shown ---------------------------------------------------


def shown(markdown: str) -> str:
    """Lesson Markdown as the screen prints it without colour, whitespace collapsed."""
    console = build_console(io.StringIO(), colour=False, force_terminal=False, record=True)
    console.width = 200
    console.print(lesson_markdown(markdown))
    return " ".join(console.export_text(styles=False).split())


def texts_of(lesson: Lesson) -> list[str]:
    texts = [lesson.title, lesson.summary, lesson.misconception, *lesson.objectives]
    texts += list(lesson.learned)
    for step in lesson.steps:
        texts += [step.explain, step.after, step.goal, *step.hints, *step.on_reply.values()]
    texts += [question.ask for question in lesson.questions]
    return [text for text in texts if text]


@cache
def lesson(number: int) -> str:
    """Every text of a lesson, rendered, in one string."""
    (found,) = [each for each in load_all() if each.number == number]
    return " ".join(shown(text) for text in texts_of(found))


@cache
def challenge(challenge_id: str) -> str:
    (found,) = [each for each in load_challenges() if each.id == challenge_id]
    return " ".join(shown(text) for text in texts_of(found))


@cache
def everything() -> str:
    lessons = " ".join(lesson(each.number) for each in load_all())
    return lessons + " " + " ".join(challenge(each.id) for each in load_challenges())


def explained(*args: str) -> str:
    result = run_cli("explain", *args, "--plain")
    assert result.returncode == 0, result.stderr
    return " ".join(result.stdout.split())


class Session:
    """Feed (command, reply) pairs; annotate each reply in its context."""

    def __init__(self) -> None:
        self.state = SessionState()
        self(None, "220 mx.tutor.test ESMTP smtp-tutor ready")

    def __call__(self, command: str | None, *lines: str) -> Annotation:
        answer = reply(*lines)
        note = annotate(command, answer, self.state.copy())
        self.state.feed(command, answer, kind="command")
        return note


def said(note: Annotation) -> str:
    return " ".join(f"{note.headline} {note.detail} {note.rfc} {note.advice or ''}".split())


def ehlo_session() -> Session:
    session = Session()
    session("EHLO client.example", *EHLO_PLAIN)
    return session


# --- 1. AUTH before STARTTLS: 503 (and 504), 538 only as history ------------------------


def test_explain_538_says_it_is_historical_and_names_503_and_504() -> None:
    text = explained("538")
    assert "historical purposes only" in text
    assert "503 5.5.1" in text and "504 5.5.4" in text


def test_the_503_to_auth_before_tls_names_the_missing_step() -> None:
    note = ehlo_session()("AUTH PLAIN AHlvdQB0dXRvci1wYXNzd29yZA==", "503 5.5.1 Error")
    assert "AUTH is not offered before TLS" in note.headline
    assert "historical" in note.detail
    assert note.advice == "STARTTLS, then EHLO again, then AUTH."


def test_a_504_for_a_mechanism_that_needs_encryption() -> None:
    note = ehlo_session()("AUTH PLAIN", "504 5.5.4 Encryption required for this mechanism")
    assert "needs an encrypted connection" in note.headline
    assert "RFC 4954 §4" in note.rfc


def test_a_538_from_an_old_server_is_read_as_historical() -> None:
    note = ehlo_session()("AUTH PLAIN AAAA", "538 5.7.11 Encryption required")
    assert "historical" in note.headline


def test_lesson_11_teaches_503_not_538() -> None:
    text = lesson(11)
    assert "503 5.5.1" in text
    assert "538 5.7.11" not in text and "(538)" not in text


# --- 2. unsupported MAIL/RCPT parameters: 555, not a syntax error -----------------------


def test_the_catalogue_and_lesson_8_agree_on_555() -> None:
    entry = reply_code(555)
    assert entry is not None and "not a syntax error" in entry.meaning
    assert "§4.1.1.11" in entry.rfc
    text = lesson(8)
    assert "555 5.5.4" in text and "not a syntax error" in text
    assert "a parameter on MAIL is a syntax error" not in text


def test_the_555_after_helo_is_explained_as_unsupported() -> None:
    session = Session()
    session("HELO client.example", "250 mx.tutor.test Hello client.example [127.0.0.1]")
    note = session("MAIL FROM:<you@tutor.test> SIZE=1000", "555 5.5.4 Unsupported option")
    assert "parameter not recognised" in note.headline
    assert "not a syntax error" in note.detail and "after HELO there are none" in note.detail


# --- 3. the HELO name: a claim a server MAY check -----------------------------------------


def test_lesson_1_asks_for_the_full_host_name_and_says_any_name_works_only_here() -> None:
    text = lesson(1)
    assert "fully qualified domain name or an address literal" in text
    assert "MAY check it" in text and "RFC 5321 §4.1.1.1" in text
    assert "Any name will do on this server" in text
    assert "cannot check it" not in text and "Any name will do here" not in text


def test_lesson_9_says_a_server_may_check_and_refuse_malformed_names() -> None:
    text = lesson(9)
    assert "MUST NOT refuse a message only because the check fails" in text
    assert "RFC 7208 §2.3" in text and "504 5.5.2" in text
    assert "none can refuse you a name" not in text
    assert "it records it without checking" not in challenge("not-my-name")


def test_a_refused_helo_name_is_explained_with_the_fqdn_rule() -> None:
    note = Session()("HELO localhost", "504 5.5.2 <localhost>: Helo command rejected")
    assert "name refused" in note.headline
    assert "fully qualified domain name" in note.detail and "MUST NOT refuse" in note.detail


# --- 4. Delivered-To is RFC 9228 ------------------------------------------------------------


def test_lesson_2_cites_rfc_9228_for_delivered_to() -> None:
    text = lesson(2)
    assert "Delivered-To (RFC 9228)" in text
    assert "Envelope-To: instead, a field no RFC defines" in text
    assert "neither is an RFC field" not in text


# --- 5. VRFY: 252 2.0.0 ---------------------------------------------------------------------


def test_vrfy_is_taught_as_252_2_0_0() -> None:
    assert "252 2.0.0" in lesson(6)
    assert "2.5.2" not in everything()
    note = ehlo_session()("VRFY bob", "252 2.0.0 Cannot VRFY user")
    assert "without confirming it" in note.headline and "252 2.0.0" in note.detail
    assert "550 5.1.1 for an unknown user" in note.detail  # as this server answers VRFY
    unknown = ehlo_session()("VRFY nobody", "550 5.1.1 <nobody@tutor.test>: no such user")
    assert unknown.headline == "VRFY: no such address here"


# --- 6. Authentication-Results as the learner reads it --------------------------------------


def test_no_lesson_quotes_policy_reject_as_an_authentication_results_property() -> None:
    assert "policy=reject" not in everything()


# --- 7. 552 5.3.4 cites RFC 5321 §4.5.3.1.9 and RFC 1870 §6 ---------------------------------


def test_552_cites_the_right_sections() -> None:
    entry = reply_code(552)
    assert entry is not None and "§4.5.3.1.9" in entry.rfc and "RFC 1870 §6" in entry.rfc
    session = ehlo_session()
    session("MAIL FROM:<you@tutor.test>", "250 2.1.0 ok")
    session("RCPT TO:<you@tutor.test>", "250 2.1.5 ok")
    session("DATA", "354 go ahead")
    note = session(None, "552 5.3.4 Message exceeds fixed maximum")
    assert "§4.5.3.1.9" in note.rfc and "RFC 1870 §6" in note.rfc
    assert "§4.5.3.1.10" not in note.rfc
    assert "RFC 5321 §4.5.3.1.9" in lesson(6)


# --- 8. ESMTP began with RFC 1425 (1993) ---------------------------------------------------


def test_lesson_8_dates_esmtp_to_1993() -> None:
    text = lesson(8)
    assert "Since 1993" in text and "RFC 1425" in text
    assert "Since 1995" not in text


# --- 9. the MUST NOT on LF . LF is RFC 5321 §4.1.1.4 (and RFC 2821) -------------------------


def test_lesson_7_dates_the_lf_dot_lf_rule() -> None:
    text = lesson(7)
    assert "RFC 5321 §4.1.1.4 (2008, and RFC 2821 before it)" in text
    assert "made servers enforce it" in text
    assert "refuse to guess since" not in text


# --- 10. EXPN: "not implemented", and 252 for declining -----------------------------------


def test_expn_is_not_implemented_and_declining_is_252() -> None:
    text = lesson(6)
    assert "does not implement" in text and "252" in text and "§7.3" in text
    assert "switch it off" not in text and "will not do" not in text
    note = ehlo_session()("EXPN staff", "502 5.5.2 Error: command not recognized")
    assert note.headline == "EXPN is not implemented here"
    assert "252" in note.detail
    entry = reply_code(502)
    assert entry is not None and "switched off" not in entry.when and "252" in entry.when


# --- 11. the MAIL line allowance ------------------------------------------------------------


def test_a_too_long_line_names_the_extension_allowances() -> None:
    note = ehlo_session()("MAIL FROM:<you@tutor.test>", "500 5.5.2 Line too long")
    assert "AUTH= adds 500 octets (RFC 4954 §3)" in note.detail
    assert "BODY=" in note.detail and "SMTPUTF8" in note.detail


# --- 12. GTUBE is SpamAssassin's ------------------------------------------------------------


def test_gtube_belongs_to_spamassassin() -> None:
    text = lesson(6)
    assert "SpamAssassin's test string" in text
    assert "every spam filter" not in text


# --- 13. DMARC: RFC 9989, alignment, _dmarc, 550 5.7.26 --------------------------------------


@pytest.mark.parametrize("where", ["lesson 2", "lesson 9", "dmarc-fail"])
def test_dmarc_is_rfc_9989_with_alignment(where: str) -> None:
    text = {"lesson 2": lesson(2), "lesson 9": lesson(9), "dmarc-fail": challenge("dmarc-fail")}[
        where
    ]
    assert "RFC 9989" in text and "aligned" in text and "_dmarc." in text
    assert "same organizational domain" in text
    assert not re.search(r"\(RFC 7489\)", text)


def test_dmarc_rejections_and_the_annotation() -> None:
    assert "550 5.7.26" in lesson(9) and "550 5.7.26" in lesson(2)
    assert "often 550 5.7.1" not in lesson(9)
    note = ehlo_session()(None, "550 5.7.26 Unauthenticated email is not accepted")
    assert "RFC 9989" in note.rfc and "RFC 7489" not in note.rfc
    entry = enhanced_code("X.7.26")
    assert entry is not None and "DMARC" in entry.description
    assert "matches the From: domain" not in challenge("someone-else-passes")


# --- the misleading simplifications ---------------------------------------------------------


def test_headers_are_unchecked_by_smtp_but_checked_by_receivers() -> None:
    text = lesson(1)
    assert "receivers today do" in text and "DMARC judges the From: domain" in text
    assert "does not check the headers: they can say anything" not in text
    recipients = lesson(3)
    assert "delivered it to everyone unchanged" not in recipients
    assert "RFC 6409 §8" in recipients and "strips Bcc:" in recipients


def test_lesson_5_says_what_this_server_does_with_a_domain_that_does_not_exist() -> None:
    text = lesson(5)
    assert "does not refuse a domain that does not exist" in text
    assert "like many, does not look it up" not in text


def test_ehlo_after_starttls_is_a_should_this_server_enforces() -> None:
    assert "SHOULD send EHLO again" in lesson(10) and "insists on it with 503" in lesson(10)
    session = ehlo_session()
    session("STARTTLS", "220 2.0.0 Ready to start TLS")
    note = session("MAIL FROM:<you@tutor.test>", "503 5.5.1 Send EHLO first")
    assert "SHOULD send EHLO" in note.detail


def test_angle_brackets_are_required_by_strict_servers() -> None:
    assert "strict_rfc821_envelopes" in lesson(1) and "strict_rfc821_envelopes" in lesson(6)
    note = ehlo_session()("MAIL FROM:you@tutor.test", "501 5.5.4 Syntax: MAIL FROM:<address>")
    assert "strict_rfc821_envelopes" in note.detail


def test_auth_login_is_de_facto() -> None:
    assert "de facto" in extension_meaning("AUTH PLAIN LOGIN")
    assert "de facto mechanism that no RFC defines" in lesson(11)


def test_return_path_is_added_at_final_delivery_only() -> None:
    assert "added at final delivery only" in lesson(2)
    assert "added at final delivery only" in lesson(5)
    assert "so its Return-Path is" not in lesson(5)


def test_no_sentence_calls_plain_safe_inside_tls() -> None:
    assert not re.search(r"safe (only )?inside TLS", everything())


# --- the seed's errors ----------------------------------------------------------------------


def test_the_seed_errors_are_corrected_where_the_learner_meets_them() -> None:
    first = lesson(1)
    assert "RFC 5321 §4.3.1 requires the domain in the greeting" in first
    assert "telnet HOST 25" in first and "lost the host" in first
    assert "From: or Reply-To:" in lesson(5)


def test_the_corrections_reach_the_screen_of_a_real_run(tmp_path: Path) -> None:
    result = run_cli("demo", "1", "--delay", "0", "--plain", "--maildir", str(tmp_path))
    screen = " ".join(result.stdout.split())
    assert "telnet HOST 25" in screen
    assert "a client MUST send its fully qualified domain name" in screen
    assert "RFC 5321 §4.3.1 requires the domain in the greeting" in screen
