"""`explain` and `codes`: codes found in any text, explained; the catalogue as tables."""

from __future__ import annotations

import io

import pytest
from rich.console import Console, RenderableType

from tutor.errors import UserError
from tutor.explain.explain import explain, explain_args
from tutor.ui.reference.codes_view import codes_table, select_codes
from tutor.ui.reference.explain_view import render_explained

GMAIL_BOUNCE = """\
This is the mail system at host mx.tutor.test.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients.

<bob@example.test>: host mx.example.test[192.0.2.25] said:
    550-5.7.26 This mail has been blocked because the sender is unauthenticated.
    550-5.7.26 Gmail requires all senders to authenticate with either SPF or DKIM.
    550-5.7.26
    550-5.7.26  Authentication results:
    550-5.7.26  DKIM = did not pass
    550-5.7.26  SPF [example.test] with ip: [192.0.2.1] = did not pass
    550 5.7.26 For instructions, see RFC 7208 section 2.1.1 - gsmtp (in reply to end of
    DATA command)
"""

DSN_FRAGMENT = """\
Reporting-MTA: dns; mx.tutor.test
X-Postfix-Queue-ID: 4XyZ12
Arrival-Date: Sat, 28 Nov 2026 09:44:18 +0000

Final-Recipient: rfc822; carol@example.test
Original-Recipient: rfc822;carol@example.test
Action: failed
Status: 5.1.1
Remote-MTA: dns; mx.example.test
Diagnostic-Code: smtp; 550 5.1.1 <carol@example.test>: Recipient address rejected:
    User unknown in local recipient table (in reply to RCPT TO command)
"""


def render(renderable: RenderableType) -> str:
    console = Console(record=True, width=100, file=io.StringIO())
    console.print(renderable)
    return console.export_text()


def codes(text: str) -> list[str]:
    return [item.code for item in explain(text)]


# --- finding codes ------------------------------------------------------------------------


def test_a_bare_reply_code() -> None:
    (item,) = explain("354")
    assert item.kind == "reply" and item.code == "354"
    assert "message itself" in item.meaning
    assert item.first.startswith("3xx positive intermediate")
    assert item.found_in is None and item.in_context is None


def test_a_bare_enhanced_code() -> None:
    (item,) = explain(" 5.7.1 ")
    assert item.kind == "enhanced" and item.code == "5.7.1"
    assert item.title == "Delivery not authorized, message refused"
    assert item.first.startswith("5.XXX.YYY Permanent Failure")
    assert item.second.startswith("X.7.YYY Security or Policy Status")
    assert item.rfc == "RFC 3463 §3.8"
    assert item.action.startswith("Permanent")


def test_registry_spellings_and_wildcards() -> None:
    assert explain("X.1.1")[0].title == "Bad destination mailbox address"
    assert explain("5.x.x")[0].title == "Permanent Failure"
    assert explain("x.7.x")[0].title == "Security or Policy Status"


def test_several_bare_codes_in_order_each_once() -> None:
    assert codes("354 221 354 5.1.1") == ["354", "221", "5.1.1"]


def test_a_whole_reply_line() -> None:
    items = explain("550 5.1.1 <bob@example.test>: Recipient address rejected")
    assert [i.code for i in items] == ["550", "5.1.1"]
    reply, enhanced = items
    assert reply.found_in == "550 5.1.1 <bob@example.test>: Recipient address rejected"
    assert reply.in_context is not None
    assert (
        reply.in_context.headline
        == "No such user: <bob@example.test> does not exist at this domain"
    )
    assert enhanced.title == "Bad destination mailbox address"


def test_a_code_with_its_enhanced_code_reads_as_a_reply() -> None:
    items = explain("550 5.7.1")
    assert [i.code for i in items] == ["550", "5.7.1"]
    assert items[0].in_context is not None


def test_a_multi_line_bounce_paragraph() -> None:
    items = explain(GMAIL_BOUNCE)
    assert [i.code for i in items] == ["550", "5.7.26"], (
        "IP addresses and RFC sections are not codes"
    )
    reply = items[0]
    assert reply.found_in is not None
    assert (
        reply.found_in.count("550-5.7.26") == 6 and "550 5.7.26 For instructions" in reply.found_in
    )
    assert reply.in_context is not None
    assert "sender authentication" in reply.in_context.headline
    assert "no recipient gets it" in reply.in_context.detail, "it answered the end of DATA"
    assert items[1].title == "Multiple authentication checks failed"


def test_a_dsn_fragment() -> None:
    items = explain(DSN_FRAGMENT)
    assert [i.code for i in items] == ["5.1.1", "550"]
    assert items[0].found_in == "Status: 5.1.1"
    context = items[1].in_context
    assert context is not None and context.headline.startswith("No such user: <carol@example.test>")
    assert context.advice is not None and "judged on their own" in context.advice


def test_a_bounce_and_a_dsn_together_explain_each_code_once() -> None:
    assert codes(GMAIL_BOUNCE + "\n" + DSN_FRAGMENT) == ["550", "5.7.26", "5.1.1"]


def test_an_exim_bounce_and_smtplibs_exception() -> None:
    exim = (
        "SMTP error from remote mail server after RCPT TO:<bob@example.test>:\n"
        "    550 5.7.1 Relaying denied"
    )
    (reply, _) = explain(exim)
    assert reply.in_context is not None and reply.in_context.headline.startswith("Relay denied")
    python = (
        "smtplib.SMTPRecipientsRefused: "
        "{'bob@example.test': (550, b'5.1.1 <bob@example.test> no such mailbox')}"
    )
    assert codes(python) == ["550", "5.1.1"]


def test_a_providers_own_detail_code_is_explained_by_its_subject() -> None:
    (_, item) = explain("550 5.7.606 Access denied, banned sending IP [192.0.2.1]")
    assert item.code == "5.7.606" and item.title == "not in the IANA registry"
    assert "Security or Policy Status" in item.meaning


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "299",
            "unknown reply code 299: valid reply codes are 2xx–5xx; `smtp-tutor codes` lists them",
        ),
        ("199 hello", "unknown reply code 199: valid reply codes are 2xx–5xx"),
        ("523", "unknown reply code 523: not defined by RFC 5321"),
        ("6.1.1", "unknown enhanced status code 6.1.1: the first number is the class"),
        ("5.9.99", "unknown enhanced status code 5.9.99: subjects run from 0 to 7"),
        ("550 5.9.99 odd", "unknown enhanced status code 5.9.99"),
        ("hello world", "no SMTP reply code"),
        ("  \n ", "nothing to explain"),
    ],
)
def test_unknown_or_missing_codes_are_one_clear_line(text: str, message: str) -> None:
    with pytest.raises(UserError) as raised:
        explain(text)
    assert str(raised.value).startswith(message)
    assert "\n" not in str(raised.value)


def test_explain_args_joins_words_or_reads_stdin() -> None:
    from tutor.env import Environment

    words = ["550", "5.1.1", "no", "such", "user"]
    assert [i.code for i in explain_args(words, lambda: "")] == ["550", "5.1.1"]
    stdin = io.TextIOWrapper(io.BytesIO(DSN_FRAGMENT.encode() + b"\xff\n"))
    env = Environment(stdin=stdin)
    assert [i.code for i in explain_args(["-"], env.read_stdin)] == ["5.1.1", "550"]


# --- the view -----------------------------------------------------------------------------


def test_render_explained_shows_every_fact() -> None:
    out = render(render_explained(explain("550 5.1.1 <bob@example.test>: no such user")))
    for text in (
        "550 (reply code): Requested action not taken: mailbox unavailable",
        "5.1.1 (enhanced status code): Bad destination mailbox address",
        "this reply says: No such user",
        "what to do:",
        "first digit: 5xx permanent negative completion",
        "subject: X.1.YYY Addressing Status",
        "reference: RFC 3463 §3.2",
    ):
        assert text in " ".join(out.split()), text


def test_a_multi_line_reply_is_shown_line_by_line() -> None:
    out = render(render_explained(explain(GMAIL_BOUNCE), plain=True))
    assert "found in: 550-5.7.26 This mail has been blocked" in out
    assert "\n          550-5.7.26 Gmail requires all senders" in out
    assert "\\x0a" not in out


def test_render_explained_plain_has_no_boxes() -> None:
    out = render(render_explained(explain("354"), plain=True))
    assert "== 354 (reply code): Start mail input" in out
    assert not set("╭╮╰╯│─") & set(out)


def test_untrusted_text_in_a_pasted_bounce_is_shown_literally() -> None:
    hostile = "550 5.1.1 [bold]x[/] \x1b[31mred\x1b[0m \u202eevil"
    out = render(render_explained(explain(hostile)))
    assert "[bold]x[/]" in out
    assert "\\x1b[31mred" in out and "\\u202e" in out
    assert "\x1b" not in out and "\u202e" not in out


# --- codes --------------------------------------------------------------------------------


def test_codes_lists_everything_by_default() -> None:
    selection = select_codes(None)
    assert {r.code for r in selection.replies} >= {220, 250, 354, 421, 550, 556}
    assert ("X.7.26", selection.enhanced[-5][1]) in selection.enhanced or any(
        shown == "X.7.26" for shown, _ in selection.enhanced
    )
    out = render(codes_table(None))
    assert "Reply codes" in out and "Enhanced status codes" in out


@pytest.mark.parametrize(
    ("spec", "replies", "enhanced"),
    [
        ("5xx", {500, 550, 556}, set()),
        ("55x", {550, 551, 552, 553, 554, 555, 556}, set()),
        ("550", {550}, set()),
        ("3", {334, 354}, set()),
        ("5.7", set(), {"5.7.1", "5.7.26"}),
        ("5.7.x", set(), {"5.7.1", "5.7.26"}),
        ("x.7.x", set(), {"X.7.1", "X.7.26"}),
        ("4.x.x", set(), {"4.1.1", "4.7.1"}),
        ("5.7.26", set(), {"5.7.26"}),
    ],
)
def test_codes_filters(spec: str, replies: set[int], enhanced: set[str]) -> None:
    selection = select_codes(spec)
    got_replies = {r.code for r in selection.replies}
    got_enhanced = {shown for shown, _ in selection.enhanced}
    assert replies <= got_replies and enhanced <= got_enhanced
    if spec == "55x":
        assert got_replies == replies
    if spec == "5.7.26":
        assert got_enhanced == {"5.7.26"}
    if spec in ("5.7", "5.7.x"):
        assert all(shown.startswith("5.7.") for shown in got_enhanced)
    if spec == "5xx":
        assert all(code // 100 == 5 for code in got_replies) and not got_enhanced


def test_codes_table_renders_rows_and_plain_lines() -> None:
    out = render(codes_table("55x"))
    assert "5xx permanent negative completion" in out
    assert "556" in out and "Domain does not accept mail" in out
    plain = render(codes_table("5.7.26", plain=True))
    assert "5.7.26  Multiple authentication checks failed  (with 550; RFC 7372)" in plain
    assert not set("╭╮╰╯│") & set(plain)


@pytest.mark.parametrize("spec", ["abc", "6xx", "5x0", "5.9", "59x", "56x", "5.7.99", "1.2.3"])
def test_codes_rejects_unknown_filters(spec: str) -> None:
    with pytest.raises(UserError) as raised:
        codes_table(spec)
    assert "try 5xx, 55x, 550" in str(raised.value)
