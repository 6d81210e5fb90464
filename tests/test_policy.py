"""The lesson policy decided directly, without a server: greylisting, GTUBE, passwords."""

from __future__ import annotations

from tutor.server.persona import Persona
from tutor.server.policy import (
    GTUBE,
    Triplet,
    greylist_refusal,
    password_refusal,
    spam_refusal,
)
from tutor.server.replies import ReplyKey


def test_greylisting_refuses_a_triplets_first_try_only() -> None:
    persona = Persona(greylist=True)
    seen: set[Triplet] = set()
    first = greylist_refusal(persona, seen, "127.0.0.1", "me@example.test", "you@tutor.test")
    retry = greylist_refusal(persona, seen, "127.0.0.1", "ME@example.test", "YOU@tutor.test")
    assert (first, retry) == (ReplyKey.RCPT_GREYLISTED, None)


def test_greylisting_keys_on_client_sender_and_recipient() -> None:
    persona = Persona(greylist=True)
    seen: set[Triplet] = set()
    greylist_refusal(persona, seen, "127.0.0.1", "me@example.test", "you@tutor.test")
    assert greylist_refusal(persona, seen, "127.0.0.2", "me@example.test", "you@tutor.test")
    assert greylist_refusal(persona, seen, "127.0.0.1", "", "you@tutor.test")
    assert greylist_refusal(persona, seen, "127.0.0.1", "me@example.test", "bob@tutor.test")


def test_greylisting_off_refuses_nothing_and_remembers_nothing() -> None:
    seen: set[Triplet] = set()
    assert greylist_refusal(Persona(), seen, "127.0.0.1", "a@b.test", "you@tutor.test") is None
    assert seen == set()


def test_a_message_holding_gtube_is_spam() -> None:
    assert spam_refusal(b"Subject: hi\r\n\r\nbefore " + GTUBE + b" after\r\n") is ReplyKey.DATA_SPAM
    assert spam_refusal(b"Subject: hi\r\n\r\nan ordinary message\r\n") is None


def test_only_a_demo_accounts_own_password_passes() -> None:
    persona = Persona()
    assert password_refusal(persona, "you", "tutor-password") is None
    assert password_refusal(persona, "alice", "wonderland") is None
    assert password_refusal(persona, "you", "wonderland") is ReplyKey.AUTH_FAILED
    assert password_refusal(persona, "nobody", "tutor-password") is ReplyKey.AUTH_FAILED
    assert password_refusal(persona, "you", "") is ReplyKey.AUTH_FAILED


def test_a_lesson_can_replace_the_accounts() -> None:
    persona = Persona(accounts={"carol": "secret"})
    assert password_refusal(persona, "carol", "secret") is None
    assert password_refusal(persona, "you", "tutor-password") is ReplyKey.AUTH_FAILED
