"""SessionState: what the server knows, followed from the replies only."""

from __future__ import annotations

from tests.support import RawClient
from tutor.server.runner import TeachingServer
from tutor.smtp.events import Exchange
from tutor.smtp.session_state import SessionState, auth_user, path_argument, queue_id
from tutor.smtp.wire import Reply, parse_reply_line, split_command

TIMEOUT = 10.0

EHLO_REPLY = [
    "250-mx.tutor.test Hello a.b.c [127.0.0.1]",
    "250-SIZE 10485760",
    "250-PIPELINING",
    "250-STARTTLS",
    "250 HELP",
]


def reply(*lines: str) -> Reply:
    parsed = [parse_reply_line(line) for line in lines]
    assert all(parsed), lines
    return Reply(tuple(line for line in parsed if line is not None))


def greeted(verb: str = "EHLO") -> SessionState:
    state = SessionState()
    state.feed(None, reply("220 mx.tutor.test ESMTP smtp-tutor ready"))
    state.feed(f"{verb} a.b.c", reply(*EHLO_REPLY) if verb == "EHLO" else reply("250 hi"))
    return state


def with_transaction() -> SessionState:
    state = greeted()
    state.feed("MAIL FROM:<x@example.test>", reply("250 2.1.0 ok"))
    return state


# --- greeting -----------------------------------------------------------------------------


def test_a_fresh_state_knows_nothing() -> None:
    state = SessionState()
    assert state.summary() == ["not greeted"]
    assert not state.greeted and state.sender is None and not state.tls


def test_the_banner_is_kept_but_is_not_a_greeting() -> None:
    state = SessionState()
    state.feed(None, reply("220 mx.tutor.test ESMTP smtp-tutor ready"))
    assert state.banner is not None and state.banner.code == 220
    assert not state.greeted


def test_ehlo_greets_and_reads_the_extensions() -> None:
    state = greeted()
    assert state.greeting == "EHLO" and state.client_name == "a.b.c"
    assert state.server_name == "mx.tutor.test"
    assert state.extensions == {"SIZE": "10485760", "PIPELINING": "", "STARTTLS": "", "HELP": ""}
    assert state.summary()[0] == "greeted: EHLO a.b.c"


def test_helo_greets_without_extensions() -> None:
    state = greeted("HELO")
    assert state.greeting == "HELO" and state.extensions == {}
    assert not state.can_use_extensions


def test_a_refused_greeting_changes_nothing() -> None:
    state = SessionState()
    state.feed("EHLO", reply("501 Syntax: EHLO hostname"))
    assert not state.greeted


# --- the envelope -------------------------------------------------------------------------


def test_mail_sets_the_sender_only_on_250() -> None:
    state = greeted()
    state.feed("MAIL FROM:x@example.test", reply("501 5.5.4 Syntax"))
    assert state.sender is None
    state.feed("mail from:<x@example.test> SIZE=100", reply("250 2.1.0 ok"))
    assert state.sender == "x@example.test"
    assert "sender: <x@example.test>" in state.summary()


def test_the_null_sender_is_a_sender() -> None:
    state = greeted()
    state.feed("MAIL FROM:<>", reply("250 2.1.0 ok"))
    assert state.sender == ""
    assert "sender: <>" in state.summary()


def test_each_rcpt_is_judged_on_its_own() -> None:
    state = with_transaction()
    state.feed("RCPT TO:<you@tutor.test>", reply("250 2.1.5 ok"))
    state.feed("RCPT TO:<nobody@tutor.test>", reply("550 5.1.1 no such mailbox"))
    state.feed("RCPT TO:<alice@tutor.test>", reply("250 2.1.5 ok"))
    assert state.accepted == ["you@tutor.test", "alice@tutor.test"]
    assert [(r.address, r.code) for r in state.refused] == [("nobody@tutor.test", 550)]
    assert "recipients: 2 accepted, 1 refused" in state.summary()


def test_rcpt_without_a_transaction_is_not_a_refused_recipient() -> None:
    state = greeted()
    state.feed("RCPT TO:<you@tutor.test>", reply("503 5.5.1 Bad sequence: send MAIL FROM first"))
    assert state.refused == [] and state.accepted == []


def test_data_then_the_dot_stores_a_message_with_its_queue_id() -> None:
    state = with_transaction()
    state.feed("RCPT TO:<you@tutor.test>", reply("250 2.1.5 ok"))
    state.feed("DATA", reply('354 Enter message, ending with "." on a line by itself'))
    assert state.in_data and "in DATA" in state.summary()
    state.feed("Subject: hi\r\n\r\nbody\r\n.\r\n", reply("250 2.0.0 OK id=ABC123"), kind="data")
    assert not state.in_data
    (message,) = state.messages
    assert message.queue_id == "ABC123"
    assert message.sender == "x@example.test" and message.recipients == ("you@tutor.test",)
    assert state.sender is None and state.accepted == [], "the transaction is over"
    assert "messages accepted: 1 (ABC123)" in state.summary()


def test_a_refused_message_ends_the_transaction_without_a_message() -> None:
    state = with_transaction()
    state.feed("RCPT TO:<you@tutor.test>", reply("250 2.1.5 ok"))
    state.feed("DATA", reply("354 go ahead"))
    state.feed(".", reply("554 5.7.1 spam"), kind="data")
    assert state.messages == [] and state.sender is None and not state.in_data


def test_rset_forgets_the_transaction_but_keeps_the_greeting() -> None:
    state = with_transaction()
    state.feed("RCPT TO:<you@tutor.test>", reply("250 2.1.5 ok"))
    state.feed("RSET", reply("250 2.0.0 OK, transaction reset"))
    assert state.sender is None and state.accepted == []
    assert state.greeting == "EHLO"


def test_a_second_ehlo_also_ends_the_transaction() -> None:
    state = with_transaction()
    state.feed("EHLO a.b.c", reply(*EHLO_REPLY))
    assert state.sender is None


# --- TLS, AUTH, closing -------------------------------------------------------------------


def test_starttls_forgets_the_greeting() -> None:
    state = with_transaction()
    state.feed("STARTTLS", reply("220 2.0.0 Ready to start TLS"))
    assert state.tls and not state.greeted and state.greeting_forgotten
    assert state.extensions == {} and state.sender is None
    assert state.summary() == ["not greeted: TLS reset the greeting, send EHLO again", "TLS"]
    state.feed("EHLO a.b.c", reply(*EHLO_REPLY))
    assert state.greeted and not state.greeting_forgotten and state.tls


def test_a_refused_starttls_changes_nothing() -> None:
    state = greeted()
    state.feed("STARTTLS", reply("454 4.7.0 TLS not available"))
    assert not state.tls and state.greeted


def test_auth_plain_with_an_initial_response() -> None:
    state = greeted()
    state.feed(
        "AUTH PLAIN AHlvdQB0dXRvci1wYXNzd29yZA==", reply("235 2.7.0 Authentication successful")
    )
    assert state.authenticated and state.auth_user == "you"
    assert "AUTH as you" in state.summary()


def test_auth_login_over_two_challenges() -> None:
    state = greeted()
    state.feed("AUTH LOGIN", reply("334 VXNlcm5hbWU6"))
    assert state.auth_pending
    state.feed("eW91", reply("334 UGFzc3dvcmQ6"), kind="auth")
    state.feed("dHV0b3ItcGFzc3dvcmQ=", reply("235 2.7.0 Authentication successful"), kind="auth")
    assert state.authenticated and state.auth_user == "you" and not state.auth_pending


def test_a_failed_login_is_not_a_login() -> None:
    state = greeted()
    state.feed("AUTH LOGIN", reply("334 VXNlcm5hbWU6"))
    state.feed("eW91", reply("334 UGFzc3dvcmQ6"), kind="auth")
    state.feed("d3Jvbmc=", reply("535 5.7.8 Authentication credentials invalid"), kind="auth")
    assert not state.authenticated and not state.auth_pending


def test_quit_and_421_close_the_session() -> None:
    state = greeted()
    state.feed("QUIT", reply("221 2.0.0 bye"))
    assert state.closed and state.summary()[-1] == "closed"
    state = greeted()
    state.feed(None, reply("421 4.4.2 mx.tutor.test Idle timeout"), kind="notice")
    assert state.closed


def test_copy_is_independent() -> None:
    state = with_transaction()
    before = state.copy()
    state.feed("RCPT TO:<you@tutor.test>", reply("250 2.1.5 ok"))
    assert before.accepted == [] and state.accepted == ["you@tutor.test"]


# --- helpers ------------------------------------------------------------------------------


def test_queue_id_spellings() -> None:
    assert queue_id(reply("250 2.0.0 OK id=3054452B33075")) == "3054452B33075"
    assert queue_id(reply("250 2.0.0 Ok: queued as 4XyZ12")) == "4XyZ12"
    assert queue_id(reply("250 OK id=1qXyz-0001ab-Cd")) == "1qXyz-0001ab-Cd"
    assert queue_id(reply("250 2.0.0 OK 1700000000 x12 - gsmtp")) is None


def test_path_argument_and_auth_user() -> None:
    assert path_argument("FROM:<a@b.example> SIZE=10") == "a@b.example"
    assert path_argument("TO: <a@b.example>") == "a@b.example"
    assert path_argument("FROM:<>") == ""
    assert path_argument("FROM:a@b.example") == "a@b.example"
    assert auth_user("PLAIN", "AHlvdQB0dXRvci1wYXNzd29yZA==") == "you"
    assert auth_user("LOGIN", "eW91") == "you"
    assert auth_user("PLAIN", "not base64!") is None


# --- the real server ----------------------------------------------------------------------


def test_following_the_real_servers_capture(server: TeachingServer) -> None:
    with RawClient(server.address) as client:
        client.cmd("EHLO a.b.c")
        client.cmd("RCPT TO:<you@tutor.test>")  # 503: no transaction yet
        client.cmd("MAIL FROM:<x@example.test>")
        client.cmd("RCPT TO:<you@tutor.test>")
        client.cmd("RCPT TO:<nobody@tutor.test>")
        client.cmd("DATA")
        client.sock.sendall(b"Subject: hi\r\n\r\n550 looks like a reply\r\n.\r\n")
        final = client.reply()
        client.cmd("QUIT")
    assert final[-1].startswith("250 2.0.0 OK id=")

    def finished() -> bool:
        sessions = server.capture.sessions()
        return bool(sessions) and any(e.verb == "QUIT" for e in sessions[-1].exchanges)

    assert server.capture.wait_for(finished, TIMEOUT)
    exchanges: list[Exchange] = server.capture.sessions()[-1].exchanges
    state = SessionState()
    seen: list[list[str]] = []
    for exchange in exchanges:
        state.feed_exchange(exchange)
        seen.append(state.summary())
    assert "in DATA" in seen[-3]
    assert "recipients: 1 accepted, 1 refused" in seen[-3]
    (message,) = state.messages
    assert message.queue_id == final[-1].split("id=")[1]
    assert message.recipients == ("you@tutor.test",)
    assert state.closed


def test_the_follower_splits_a_command_as_the_server_does(server: TeachingServer) -> None:
    """One split_command for both sides: a verb the server cannot read is no verb here."""
    assert split_command("mail FROM:<a@b>  ") == ("MAIL", "FROM:<a@b>")
    assert split_command(b"mail FROM:<a@b>  ") == (b"MAIL", b"FROM:<a@b>")
    assert split_command(" DATA")[0] == ""
    with RawClient(server.address) as client:
        assert client.code(" NOOP").startswith("500 ")
