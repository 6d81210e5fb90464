"""The raw client against a hostile server (tests/hostile_server.py), in-process.

What must hold whatever the server does: every call returns within its deadline (plus
scheduling slack), the client holds a bounded number of the server's bytes, a reply past
the limits closes the connection with one line, and TLS is never reported without a
completed handshake. The real `sandbox` process against the same attacks is in
tests/test_hostile_sandbox.py.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.hostile_server import (
    GREETING,
    LARGEST_REPLY,
    STARTTLS_OK,
    Close,
    Converse,
    Drip,
    HostileServer,
    Pause,
    ReadLine,
    Send,
    Step,
    Stream,
    scenarios,
)
from tutor.client.client import (
    ClientLimits,
    SmtpClient,
    SmtpClientError,
    SmtpConnectionClosed,
    SmtpProtocolError,
    SmtpTimeout,
    SmtpTlsError,
    Tap,
    TapRecord,
)
from tutor.smtp.wire import Reply

TIMEOUT = 0.5  # the deadline, where a test is about the deadline
ROOMY = 10.0  # where it is not: a loaded machine must not turn a hang-up into a timeout
SLACK = 1.0  # a loaded 2-core machine may schedule us late; the deadline itself is exact


@pytest.fixture(scope="module")
def attacks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Callable[[], list[Step]]]:
    return scenarios(tmp_path_factory.mktemp("hostile-tls"))


def connect(server: HostileServer, *, timeout: float = ROOMY, **options: object) -> SmtpClient:
    return SmtpClient.connect(*server.address, timeout=timeout, **options)  # type: ignore[arg-type]


def elapsed(call: Callable[[], object]) -> tuple[float, BaseException | None]:
    start = time.monotonic()
    try:
        call()
    except SmtpClientError as error:
        return time.monotonic() - start, error
    return time.monotonic() - start, None


# --- replies that never end --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "what"),
    [
        ("endless-reply", "a reply longer than 64 KiB (it began '250-AAAA"),  # 76-byte lines
        ("endless-greeting", "a reply of more than 1000 lines (it began '220-hello')"),
    ],
)
def test_an_endless_reply_is_cut_at_a_limit_and_the_connection_closed(
    attacks: dict[str, Callable[[], list[Step]]], name: str, what: str
) -> None:
    with HostileServer(attacks[name]()) as evil:
        _, error = elapsed(lambda: connect(evil).send_line("EHLO me.example"))
    # A protocol error, not a timeout: the limit stopped it, long before the (roomy)
    # deadline, which a loaded machine could otherwise reach while the flood arrives.
    assert isinstance(error, SmtpProtocolError)
    [line] = str(error).splitlines()
    assert line.startswith(f"the server sent {what}")
    assert line.endswith("the tutor stopped reading and closed the connection")


def test_a_line_without_an_end_is_cut_at_8_kib(
    attacks: dict[str, Callable[[], list[Step]]],
) -> None:
    with HostileServer(attacks["huge-line"]()) as evil:
        client = connect(evil)
        with pytest.raises(SmtpProtocolError, match=r"a line longer than 8 KiB without a line"):
            client.send_line("EHLO me.example")
        assert client.closed and client.held_bytes < 200_000
        with pytest.raises(SmtpConnectionClosed, match=r"^the tutor closed the connection after"):
            client.send_line("NOOP")


def test_the_largest_reply_within_the_limits_is_read_whole(
    attacks: dict[str, Callable[[], list[Step]]],
) -> None:
    with HostileServer(attacks["largest-reply"]()) as evil, connect(evil) as client:
        reply = client.send_line("EHLO me.example")
    assert len(reply.lines) == 126 and reply.code == 250
    assert "".join(line + "\r\n" for line in reply.wire_lines()).encode() == LARGEST_REPLY


@pytest.mark.parametrize(
    ("reply", "what"),
    [
        (b"250-" + b"W" * 9000 + b"\r\n250 ok\r\n", "a line longer than 8 KiB ("),
        ((b"250-" + b"M" * 500 + b"\r\n") * 140 + b"250 ok\r\n", "a reply longer than 64 KiB ("),
    ],
)
def test_a_complete_reply_over_the_limits_is_refused_too(reply: bytes, what: str) -> None:
    """Arriving whole, in one write, does not get a reply past the limits."""
    with HostileServer([Send(GREETING), ReadLine(), Send(reply)]) as evil:
        client = connect(evil)
        with pytest.raises(SmtpProtocolError) as caught:
            client.send_line("EHLO me.example")
    assert str(caught.value).startswith(f"the server sent {what}it began '250-")
    assert client.closed


def test_a_dripping_reply_meets_the_wall_clock_deadline(
    attacks: dict[str, Callable[[], list[Step]]],
) -> None:
    """The reply keeps coming, a byte every 10 ms: the deadline still holds, and the
    connection stays open (a slow server may yet finish)."""
    with HostileServer(attacks["drip-reply"]()) as evil, connect(evil, timeout=TIMEOUT) as client:
        seconds, error = elapsed(lambda: client.send_line("EHLO me.example"))
        assert isinstance(error, SmtpTimeout)
        assert re.match(
            r"no complete reply within 0\.5 s \(so far \d+ bytes: .250-AAAA", str(error)
        )
        assert TIMEOUT <= seconds < TIMEOUT + SLACK
        assert not client.closed


def test_a_reply_cut_mid_line_is_a_closed_connection(
    attacks: dict[str, Callable[[], list[Step]]],
) -> None:
    with HostileServer(attacks["close-mid-reply"]()) as evil:
        client = connect(evil)
        with pytest.raises(SmtpConnectionClosed, match="in the middle of a reply"):
            client.send_line("EHLO me.example")
        assert client.closed


# --- STARTTLS: never TLS without a completed handshake -------------------------------------------


def starttls_failure(
    server: HostileServer, *, verify: bool = False, timeout: float = ROOMY
) -> tuple[SmtpClient, str]:
    client = connect(server, timeout=timeout)
    client.send_line("EHLO me.example")
    assert client.send_line("STARTTLS").code == 220
    with pytest.raises((SmtpTlsError, SmtpConnectionClosed)) as caught:
        client.starttls(verify=verify)
    assert client.closed and not client.tls_active and client.tls_info is None
    [line] = str(caught.value).splitlines()
    return client, line


@pytest.mark.parametrize("name", ["starttls-trailing", "starttls-trailing-late"])
def test_bytes_after_the_220_are_never_read_and_the_connection_closes(
    attacks: dict[str, Callable[[], list[Step]]], name: str
) -> None:
    """RFC 3207 §4.2 the other way round (CVE-2011-0411): plaintext the server sent after
    its 220, at once or a moment later, would be read as the answer to a command sent
    under TLS. The client reads none of it and hangs up before saying anything more."""
    with HostileServer(attacks[name]()) as evil:
        client, line = starttls_failure(evil)
        with pytest.raises(SmtpConnectionClosed):
            client.send_line("AUTH PLAIN AHlvdQB0dXRvci1wYXNzd29yZA==")
    assert line.startswith("the server sent more after its 220, before TLS started ('250-inj")
    assert line.endswith("which the tutor did not read (RFC 3207 §4.2)")
    assert b"AUTH" not in evil.heard


def test_a_handshake_answered_with_garbage_closes(
    attacks: dict[str, Callable[[], list[Step]]],
) -> None:
    with HostileServer(attacks["starttls-garbage"]()) as evil:
        _client, line = starttls_failure(evil)
    assert line.startswith("the TLS handshake failed")


def test_a_stalled_handshake_closes_at_the_deadline(
    attacks: dict[str, Callable[[], list[Step]]],
) -> None:
    with HostileServer(attacks["starttls-stall"]()) as evil:
        start = time.monotonic()
        _client, line = starttls_failure(evil, timeout=TIMEOUT)
        assert time.monotonic() - start < TIMEOUT + SLACK
    assert line == "the TLS handshake did not finish within 0.5 s"


def test_a_certificate_that_does_not_verify_closes(
    attacks: dict[str, Callable[[], list[Step]]],
) -> None:
    with HostileServer(attacks["starttls-untrusted"]()) as evil:
        _client, line = starttls_failure(evil, verify=True)
    assert line.startswith("the server's certificate did not verify (certificate verify failed")


def test_a_server_that_hangs_up_for_the_handshake_closes(
    attacks: dict[str, Callable[[], list[Step]]],
) -> None:
    with HostileServer(attacks["starttls-close"]()) as evil:
        _client, line = starttls_failure(evil)
    assert line == "the server closed the connection during the TLS handshake"


def test_unverified_tls_still_starts_when_verification_was_not_asked(
    attacks: dict[str, Callable[[], list[Step]]],
) -> None:
    """The hostile kit's TLS is real: without verification the same server's handshake
    completes, and the client says it is not verified."""
    with HostileServer(attacks["starttls-untrusted"]()) as evil, connect(evil) as client:
        client.send_line("EHLO me.example")
        client.send_line("STARTTLS")
        info = client.starttls(verify=False)
        assert client.tls_active and not info.verified
        assert client.send_line("NOOP").code == 250


# --- the byte tap --------------------------------------------------------------------------------


def record(direction: str, size: int, fill: bytes = b"x") -> TapRecord:
    data = fill * size
    return TapRecord(direction, data, data, False, 0.0)  # type: ignore[arg-type]


def test_a_long_exchange_keeps_its_start_and_end_and_counts_the_rest() -> None:
    tap = Tap(ClientLimits(tap_head=2000, tap_tail=2000, tap_session=100_000))
    mark = tap.mark()
    for index in range(100):
        tap.add(record("received", 500, bytes([65 + index % 26])))
    records = tap.since(mark)
    assert sum(r.size for r in records) == 100 * 500  # nothing lost from the count
    assert records[0].wire.startswith(b"A")  # the start is kept
    assert records[-1].wire.startswith(bytes([65 + 99 % 26]))  # and the end
    [gap] = [r for r in records if r.not_kept]
    assert gap.wire == b"" and gap.direction == "received"
    assert sum(len(r.wire) for r in records) <= 2000 + 2000


def test_one_huge_record_is_cut_with_its_size_kept() -> None:
    tap = Tap(ClientLimits(tap_head=1000, tap_tail=1000))
    mark = tap.mark()
    tap.add(record("sent", 1_000_000))
    [kept] = tap.since(mark)
    assert (len(kept.wire), kept.not_kept, kept.size, kept.text_size) == (
        1000,
        999_000,
        1_000_000,
        1_000_000,
    )


def test_old_exchanges_go_first_and_a_mark_among_them_gets_gap_records() -> None:
    tap = Tap(ClientLimits(tap_head=4000, tap_tail=4000, tap_session=20_000))
    first = tap.mark()
    for _ in range(200):
        tap.mark()
        tap.add(record("sent", 100))
        tap.add(record("received", 300))
    assert tap.kept_bytes <= 20_000
    since_first = tap.since(first)
    gaps = [r for r in since_first if not r.wire]
    sent = sum(r.size for r in since_first if r.direction == "sent")
    received = sum(r.size for r in since_first if r.direction == "received")
    assert (sent, received) == (200 * 100, 200 * 300)  # dropped, yet counted exactly
    assert {gap.direction for gap in gaps} == {"sent", "received"}
    latest = tap.mark()
    tap.add(record("sent", 10))
    assert [r.size for r in tap.since(latest)] == [10]


def test_the_tap_of_a_real_endless_reply_stays_bounded(
    attacks: dict[str, Callable[[], list[Step]]],
) -> None:
    with HostileServer(attacks["endless-reply"]()) as evil:
        client = connect(evil)
        mark = client.mark()
        with pytest.raises(SmtpProtocolError):
            client.send_line("EHLO me.example")
        records = client.tap_since(mark)
    assert client.held_bytes < 400_000
    assert sum(r.size for r in records if r.direction == "received") >= 64 * 1024


# --- properties: whatever the server sends ------------------------------------------------------

SMALL = ClientLimits(
    reply_line=600,
    reply_lines=40,
    reply_bytes=4000,
    tap_head=3000,
    tap_tail=3000,
    tap_session=12_000,
)
PROPERTY_TIMEOUT = 0.1


def held_bound(limits: ClientLimits) -> int:
    """The most the client may hold: the tap's budget or one exchange at its largest, plus
    one reply at its largest and the one socket read that made it too long."""
    record = 2 * limits.tap_head + 256
    exchange = 1536 + limits.tap_head + limits.tap_tail + 2 * record
    return max(limits.tap_session, exchange) + limits.reply_bytes + 65536


reply_lines = st.builds(
    lambda code, final, text, ending: f"{code}{' ' if final else '-'}".encode() + text + ending,
    st.sampled_from(["220", "250", "421", "554", "2x0"]),
    st.booleans(),
    st.binary(max_size=700),
    st.sampled_from([b"\r\n", b"\n", b""]),
)
steps = st.one_of(
    st.builds(Send, reply_lines),
    st.builds(Send, st.binary(min_size=1, max_size=2000)),
    st.builds(
        Stream,
        st.sampled_from([b"250-x\r\n", b"A", b"250-" + b"B" * 90 + b"\r\n", b"250 ok\r\n"]),
        st.none() | st.integers(0, 400_000),  # None: endless
    ),
    st.builds(
        Drip,
        st.binary(min_size=1, max_size=8),
        st.sampled_from([0.002, 0.02]),
        st.booleans(),  # forever
    ),
    st.builds(Pause, st.sampled_from([0.0, 0.05])),
    st.just(ReadLine()),
    st.just(Close()),
)


PROPERTY_SETTINGS = settings(
    deadline=None,
    database=None,
    derandomize=True,  # the same scripts on every run, as in tests/test_properties.py
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
CALLS: list[Callable[[SmtpClient], Reply]] = [
    lambda client: client.send_line("EHLO me.example"),
    lambda client: client.send_line("NOOP"),
    lambda client: client.read_reply(timeout=0),
]


def holds_against(script: list[Step], limits: ClientLimits, timeout: float) -> None:
    """Connect, then EHLO, NOOP and a look for more: each call within its deadline, and
    the client never holding more than `held_bound`."""
    bound = held_bound(limits)
    with HostileServer([Send(GREETING), *script]) as evil:
        start = time.monotonic()
        try:
            client = connect(evil, timeout=timeout, limits=limits)
        except SmtpClientError:
            assert time.monotonic() - start < timeout + SLACK
            return
        with client:
            assert client.held_bytes <= bound
            for call in CALLS:
                start = time.monotonic()
                reply: Reply | None = None
                with contextlib.suppress(SmtpClientError):
                    reply = call(client)
                assert time.monotonic() - start < timeout + SLACK
                assert client.held_bytes <= bound
                if reply is not None:
                    assert len(reply.lines) <= limits.reply_lines
                if client.closed:
                    return


@settings(PROPERTY_SETTINGS, max_examples=15)
@given(script=st.lists(steps, max_size=5), small=st.booleans())
def test_whatever_the_server_sends_the_deadline_holds_and_memory_stays_bounded(
    script: list[Step], small: bool
) -> None:
    holds_against(script, SMALL if small else ClientLimits(), PROPERTY_TIMEOUT)


@pytest.mark.slow
@settings(PROPERTY_SETTINGS, max_examples=300)
@given(script=st.lists(steps, max_size=8), small=st.booleans())
def test_whatever_the_server_sends_at_length(script: list[Step], small: bool) -> None:
    holds_against(script, SMALL if small else ClientLimits(), 2 * PROPERTY_TIMEOUT)


@settings(PROPERTY_SETTINGS, max_examples=15)
@given(extra=st.binary(min_size=1, max_size=200), late=st.booleans())
def test_any_bytes_after_the_220_end_the_session_without_tls(extra: bytes, late: bool) -> None:
    script: list[Step] = [
        Send(GREETING),
        Converse(until="STARTTLS"),
        Send(STARTTLS_OK),
        *([Pause(0.05)] if late else []),
        Send(extra),
    ]
    with HostileServer(script) as evil:
        client = connect(evil, timeout=1.0)
        assert client.send_line("STARTTLS").code == 220
        with pytest.raises((SmtpTlsError, SmtpConnectionClosed)):
            client.starttls()
        assert client.closed and not client.tls_active and client.tls_info is None
