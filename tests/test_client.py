"""The raw-socket client against the real teaching server, over real sockets.

What the learner types must reach the server byte for byte; replies are read whole; the
STARTTLS upgrade happens on the same socket; the byte tap shows the plaintext beside the
ciphertext, and that ciphertext is exactly what a relay in the middle saw.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tutor.client.client import (
    SmtpClient,
    SmtpClientError,
    SmtpConnectError,
    SmtpConnectionClosed,
    SmtpProtocolError,
    SmtpStateError,
    SmtpTimeout,
    SmtpTlsError,
    TapRecord,
    stuffed,
)
from tutor.server.persona import Persona
from tutor.server.runner import TeachingServer
from tutor.server.tlsmaterial import ca_file, ensure_certificate
from tutor.smtp.events import Exchange, TlsStarted

TIMEOUT = 10.0
WAIT = 5.0


# --- helpers ------------------------------------------------------------------------------------


class Relay:
    """A TCP relay (127.0.0.1:0 -> target) that records every chunk it forwards, each way.

    A chunk is recorded before it is forwarded, so whatever one side has received, the
    relay has already recorded.
    """

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(TIMEOUT)
        self.address: tuple[str, int] = self.listener.getsockname()[:2]
        self.chunks: dict[str, list[bytes]] = {"c2s": [], "s2c": []}
        self.sockets: list[socket.socket] = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()

    def _accept(self) -> None:
        try:
            downstream, _ = self.listener.accept()
            downstream.settimeout(TIMEOUT)
            upstream = socket.create_connection(self.target, timeout=TIMEOUT)
        except OSError:
            return
        with self.lock:
            self.sockets += [downstream, upstream]
            for source, sink, key in ((downstream, upstream, "c2s"), (upstream, downstream, "s2c")):
                thread = threading.Thread(target=self._pump, args=(source, sink, key), daemon=True)
                self.threads.append(thread)
                thread.start()

    def _pump(self, source: socket.socket, sink: socket.socket, key: str) -> None:
        try:
            while data := source.recv(65536):
                with self.lock:
                    self.chunks[key].append(data)
                sink.sendall(data)
        except OSError:
            pass  # a side went away; the other pump sees it too
        finally:
            with contextlib.suppress(OSError):
                sink.shutdown(socket.SHUT_WR)

    def seen(self, key: str) -> bytes:
        with self.lock:
            return b"".join(self.chunks[key])

    def close(self) -> None:
        with self.lock:
            sockets = list(self.sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for thread in list(self.threads):
            thread.join(timeout=TIMEOUT)
        for sock in [*sockets, self.listener]:
            sock.close()


@pytest.fixture
def tls_server(server: TeachingServer) -> Iterator[TeachingServer]:
    """The server, for tests that end under TLS: it sees every client go before it stops."""
    yield server
    wait_until_every_session_closed(server)


@pytest.fixture
def relay(tls_server: TeachingServer) -> Iterator[Relay]:
    relay = Relay(tls_server.address)
    yield relay
    relay.close()


@contextlib.contextmanager
def one_shot_server(payload: bytes) -> Iterator[tuple[str, int]]:
    """A fake server: accept one connection, send `payload`, close. Not an SMTP server."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(TIMEOUT)

    def serve() -> None:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        with conn, contextlib.suppress(OSError):
            conn.sendall(payload)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[:2]
    finally:
        thread.join(timeout=TIMEOUT)
        listener.close()


def joined(records: list[TapRecord], direction: str, *, tls: bool, part: str = "wire") -> bytes:
    return b"".join(getattr(r, part) for r in records if r.direction == direction and r.tls is tls)


def wire_text(reply_lines: list[str]) -> bytes:
    return "".join(line + "\r\n" for line in reply_lines).encode()


def wait_until_every_session_closed(server: TeachingServer) -> None:
    """Let the server see each client go before the fixture stops it."""
    capture = server.capture
    assert capture.wait_for(lambda: all(r.closed for r in capture.sessions()), WAIT)


def stored_messages(server: TeachingServer, folder: str = "you") -> list[bytes]:
    return [path.read_bytes() for path in sorted((server.maildir / folder / "new").glob("*"))]


# --- connecting, replies ------------------------------------------------------------------------


def test_banner_is_read_on_connect(server: TeachingServer) -> None:
    with SmtpClient.connect(*server.address) as client:
        banner = client.banner
        assert banner.code == 220
        assert len(banner.lines) == 1
        assert banner.lines[0].text.startswith("mx.tutor.test ESMTP")
        assert banner.enhanced is None  # the greeting carries none (RFC 2034 §4)
        [record] = client.tap
        assert record.direction == "received" and not record.tls
        assert record.plaintext == record.wire == wire_text(banner.wire_lines())


def test_multi_line_ehlo_reply_is_parsed(server: TeachingServer) -> None:
    with SmtpClient.connect(*server.address) as client:
        reply = client.send_line("EHLO client.example")
    assert reply.code == 250
    assert len(reply.lines) > 3
    assert {line.code for line in reply.lines} == {250}
    assert [line.final for line in reply.lines] == [False] * (len(reply.lines) - 1) + [True]
    assert reply.lines[0].text.startswith("mx.tutor.test Hello client.example [127.0.0.1]")
    keywords = [line.text.split()[0] for line in reply.lines[1:]]
    assert {"PIPELINING", "ENHANCEDSTATUSCODES", "STARTTLS", "8BITMIME"} <= set(keywords)
    assert "AUTH" not in keywords  # only after TLS
    assert reply.enhanced is None  # EHLO replies carry none (RFC 2034 §4)


def test_single_line_reply_has_its_enhanced_code(server: TeachingServer) -> None:
    with SmtpClient.connect(*server.address) as client:
        client.send_line("EHLO client.example")
        noop = client.send_line("NOOP")
        early = client.send_line("RCPT TO:<you@tutor.test>")
    assert (noop.code, noop.enhanced) == (250, "2.0.0")
    assert (early.code, early.enhanced) == (503, "5.5.1")  # RCPT before MAIL


@pytest.mark.parametrize("line", ["NOOP\r\nQUIT", "NOOP\n", b"NO\rOP", "\n"])
def test_a_line_with_cr_or_lf_is_refused_and_nothing_is_sent(
    server: TeachingServer, line: str | bytes
) -> None:
    with SmtpClient.connect(*server.address) as client:
        mark = client.mark()
        with pytest.raises(ValueError, match="CR or LF"):
            client.send_line(line)
        assert client.tap_since(mark) == []
        assert client.send_line("NOOP").code == 250  # still in step


def test_the_exact_bytes_reach_the_server(server: TeachingServer) -> None:
    with SmtpClient.connect(*server.address) as client:
        client.send_line("ehlo   Odd.Spacing.example")
        record = server.capture.find_peer(*client.local_address)
        assert record is not None

        def seen() -> list[bytes]:
            return [e.sent for e in record.exchanges if isinstance(e, Exchange)]

        assert server.capture.wait_for(lambda: b"ehlo   Odd.Spacing.example\r\n" in seen(), WAIT), (
            seen()
        )


def test_tap_before_tls_holds_the_bytes_themselves(server: TeachingServer) -> None:
    with SmtpClient.connect(*server.address) as client:
        mark = client.mark()
        reply = client.send_line("NOOP")
        records = client.tap_since(mark)
    assert records[0].direction == "sent"
    assert records[0].plaintext == records[0].wire == b"NOOP\r\n"
    assert all(not r.tls and r.plaintext == r.wire for r in records)
    assert joined(records, "received", tls=False) == wire_text(reply.wire_lines())
    assert [r.at for r in records] == sorted(r.at for r in records)


def test_pipelined_commands_with_send_raw(server: TeachingServer) -> None:
    with SmtpClient.connect(*server.address) as client:
        client.send_line("EHLO client.example")
        client.send_raw(b"NOOP\r\nRSET\r\nNOOP\r\n")
        codes = [client.read_reply().code for _ in range(3)]
        assert codes == [250, 250, 250]
        assert not client.pending()


# --- DATA ---------------------------------------------------------------------------------------


def test_stuffed_doubles_only_a_leading_dot() -> None:
    assert stuffed(".hidden") == b"..hidden"
    assert stuffed(b".") == b".."
    assert stuffed("..two") == b"...two"
    assert stuffed("a.b.") == b"a.b."
    assert stuffed("") == b""


def test_data_with_a_stuffed_line_arrives_unstuffed(server: TeachingServer) -> None:
    with SmtpClient.connect(*server.address) as client:
        client.send_line("EHLO client.example")
        assert client.send_line("MAIL FROM:<alice@tutor.test>").code == 250
        assert client.send_line("RCPT TO:<you@tutor.test>").code == 250
        assert not client.in_data
        assert client.send_line("DATA").code == 354
        assert client.in_data
        mark = client.mark()
        for line in ["Subject: dots", "", "visible", stuffed(".hidden"), "after"]:
            client.send_data_line(line)
        assert client.tap_since(mark)[3].plaintext == b"..hidden\r\n"  # shown as sent
        final = client.end_data()
        assert not client.in_data
        assert (final.code, final.enhanced) == (250, "2.0.0")
        assert final.lines[0].text.startswith("2.0.0 OK id=")
        assert client.send_line("QUIT").code == 221
    [message] = stored_messages(server)
    body = message.replace(b"\r\n", b"\n").split(b"\n\n", 1)[1]
    assert body == b"visible\n.hidden\nafter\n"


def test_data_mode_keeps_commands_and_text_apart(server: TeachingServer) -> None:
    with SmtpClient.connect(*server.address) as client:
        with pytest.raises(SmtpStateError, match="354"):
            client.send_data_line("text before DATA")
        with pytest.raises(SmtpStateError):
            client.end_data()
        client.send_line("EHLO client.example")
        client.send_line("MAIL FROM:<alice@tutor.test>")
        client.send_line("RCPT TO:<you@tutor.test>")
        client.send_line("DATA")
        with pytest.raises(SmtpStateError, match="send_data_line"):
            client.send_line("QUIT")
        with pytest.raises(ValueError, match="end_data"):
            client.send_data_line(".")
        with pytest.raises(ValueError, match="CR or LF"):
            client.send_data_line("two\r\nlines")
        client.send_data_line("Subject: still one message")
        assert client.end_data().code == 250
    assert len(stored_messages(server)) == 1


# --- STARTTLS -----------------------------------------------------------------------------------


def test_starttls_upgrades_the_same_connection(tls_server: TeachingServer, tls_dir: Path) -> None:
    cert_path, _ = ensure_certificate("mx.tutor.test", tls_dir)
    with SmtpClient.connect(*tls_server.address) as client:
        before = client.send_line("EHLO client.example")
        assert any(line.text == "STARTTLS" for line in before.lines)
        ready = client.send_line("STARTTLS")
        assert (ready.code, ready.enhanced) == (220, "2.0.0")
        info = client.starttls()
        assert client.tls_active and client.tls_info is info
        assert info.version in {"TLSv1.2", "TLSv1.3"}
        assert info.cipher and info.cipher_bits >= 128
        assert info.peer_cert_der == ssl.PEM_cert_to_DER_cert(cert_path.read_text())
        assert info.verified is False and info.verify_error
        assert info.server_hostname == "mx.tutor.test"
        after = client.send_line("EHLO client.example")
        keywords = [line.text for line in after.lines[1:]]
        assert "AUTH PLAIN LOGIN" in keywords
        assert "STARTTLS" not in keywords
        session = tls_server.capture.find_peer(*client.local_address)
        assert session is not None
        assert tls_server.capture.wait_for(
            lambda: any(isinstance(e, TlsStarted) for e in session.events), WAIT
        )
        assert client.send_line("QUIT").code == 221


def test_tap_after_tls_shows_plaintext_beside_ciphertext(tls_server: TeachingServer) -> None:
    with SmtpClient.connect(*tls_server.address) as client:
        client.send_line("EHLO client.example")
        client.send_line("STARTTLS")
        client.starttls()
        mark = client.mark()
        reply = client.send_line("EHLO client.example")
        records = client.tap_since(mark)
    assert all(r.tls for r in records)
    sent = records[0]
    assert sent.direction == "sent"
    assert sent.plaintext == b"EHLO client.example\r\n"
    assert sent.wire != sent.plaintext and b"EHLO" not in sent.wire
    received = joined(records, "received", tls=True, part="plaintext")
    assert received == wire_text(reply.wire_lines())
    assert b"AUTH" not in joined(records, "received", tls=True)


def test_the_tap_wire_is_what_a_relay_in_the_middle_saw(relay: Relay) -> None:
    with SmtpClient.connect(*relay.address) as client:
        client.send_line("EHLO relay.example")
        assert client.send_line("STARTTLS").code == 220
        client.starttls()
        client.send_line("EHLO relay.example")
        client.send_line("NOOP")
        tap = list(client.tap)
        client_to_server, server_to_client = relay.seen("c2s"), relay.seen("s2c")
        client.send_line("QUIT")

    plain_sent = joined(tap, "sent", tls=False)
    plain_received = joined(tap, "received", tls=False)
    assert plain_sent == b"EHLO relay.example\r\nSTARTTLS\r\n"
    assert client_to_server[: len(plain_sent)] == plain_sent
    assert server_to_client[: len(plain_received)] == plain_received
    after_starttls_sent = client_to_server[len(plain_sent) :]
    after_starttls_received = server_to_client[len(plain_received) :]
    assert after_starttls_sent == joined(tap, "sent", tls=True)
    assert after_starttls_received == joined(tap, "received", tls=True)
    # ... and it really is ciphertext: the commands are not readable on the wire.
    assert b"EHLO" not in after_starttls_sent and b"NOOP" not in after_starttls_sent
    assert b"AUTH" not in after_starttls_received
    assert b"NOOP\r\n" in joined(tap, "sent", tls=True, part="plaintext")


def test_verify_true_refuses_the_self_signed_certificate(tls_server: TeachingServer) -> None:
    with SmtpClient.connect(*tls_server.address) as client:
        client.send_line("EHLO client.example")
        client.send_line("STARTTLS")
        with pytest.raises(SmtpTlsError, match="certificate did not verify") as caught:
            client.starttls(verify=True)
        assert caught.value.verify_message
        assert client.closed
        with pytest.raises(SmtpClientError):
            client.send_line("NOOP")


def test_a_context_that_trusts_the_certificate_reports_verified(
    tls_server: TeachingServer, tls_dir: Path
) -> None:
    context = ssl.create_default_context(cafile=str(ca_file("mx.tutor.test", tls_dir)))
    with SmtpClient.connect(*tls_server.address) as client:
        client.send_line("EHLO client.example")
        client.send_line("STARTTLS")
        info = client.starttls(context)
        assert info.verified is True and info.verify_error is None
        assert client.send_line("NOOP").code == 250


def test_starttls_needs_the_servers_220_first(server: TeachingServer) -> None:
    with SmtpClient.connect(*server.address) as client:
        with pytest.raises(SmtpStateError, match="STARTTLS"):
            client.starttls()  # only the banner so far
        assert client.send_line("STARTTLS").code == 503  # before EHLO
        with pytest.raises(SmtpStateError, match="220"):
            client.starttls()
        assert client.send_line("NOOP").code == 250  # nothing was sent


# --- failures -----------------------------------------------------------------------------------


def test_read_reply_times_out_and_the_connection_stays_usable(start_server: Any) -> None:
    server = start_server(Persona(idle_timeout=60.0))
    with SmtpClient.connect(*server.address) as client:
        with pytest.raises(SmtpTimeout, match=r"^no reply within 0\.3 s$"):
            client.read_reply(timeout=0.3)
        with pytest.raises(SmtpTimeout, match=r"^no reply within 0 s$"):
            client.read_reply(timeout=0)
        assert not client.closed
        assert client.send_line("NOOP").code == 250


def test_idle_timeout_421_then_closed_on_next_send(start_server: Any) -> None:
    server = start_server(Persona(idle_timeout=0.5))
    with SmtpClient.connect(*server.address) as client:
        notice = client.read_reply(timeout=WAIT)
        assert (notice.code, notice.enhanced) == (421, "4.4.2")
        with pytest.raises(SmtpConnectionClosed, match=r"\(after 421 4\.4\.2 ") as caught:
            client.send_line("NOOP")
        assert caught.value.last_reply == notice
        assert client.closed
        with pytest.raises(SmtpConnectionClosed, match="421"):
            client.send_line("NOOP")


def test_a_reply_cut_off_midway_is_a_closed_connection() -> None:
    payload = b"220-mx.tutor.test first line\r\n220-second"
    cut_off = pytest.raises(SmtpConnectionClosed, match="in the middle of a reply")
    with one_shot_server(payload) as address, cut_off as caught:
        SmtpClient.connect(*address, timeout=WAIT)
    assert caught.value.received == b"220-mx.tutor.test first line\r\n220-second"
    assert "220-mx.tutor.test first line" in str(caught.value)
    assert "\n" not in str(caught.value)


def test_closing_without_a_word_is_a_closed_connection() -> None:
    closed = pytest.raises(SmtpConnectionClosed, match="before sending any reply")
    with one_shot_server(b"") as address, closed:
        SmtpClient.connect(*address, timeout=WAIT)


def test_a_line_that_is_not_a_reply_is_a_protocol_error() -> None:
    not_smtp = pytest.raises(SmtpProtocolError, match="not an SMTP reply")
    with one_shot_server(b"SSH-2.0-OpenSSH_9.6\r\n") as address, not_smtp as caught:
        SmtpClient.connect(*address, timeout=WAIT)
    assert caught.value.line == b"SSH-2.0-OpenSSH_9.6\r\n"


def test_a_refused_connection_says_nothing_is_listening() -> None:
    # A bound socket that does not listen holds the port, and connections to it are refused.
    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        port = placeholder.getsockname()[1]
        with pytest.raises(SmtpConnectError, match="nothing is listening") as caught:
            SmtpClient.connect("127.0.0.1", port, timeout=WAIT)
    assert str(caught.value) == f"nothing is listening on 127.0.0.1:{port}"
    assert isinstance(caught.value, SmtpClientError)


# --- closing ------------------------------------------------------------------------------------


def test_close_is_idempotent_and_local_address_finds_the_session(server: TeachingServer) -> None:
    client = SmtpClient.connect(*server.address)
    host, port = client.local_address
    assert host == "127.0.0.1" and port > 0
    assert server.capture.find_peer(host, port) is not None
    assert not client.closed
    assert client.send_line("QUIT").code == 221
    client.close()
    client.close()
    assert client.closed
    assert client.local_address == (host, port)
    with pytest.raises(SmtpStateError, match="closed"):
        client.send_line("NOOP")


def test_close_under_tls_sends_close_notify(tls_server: TeachingServer) -> None:
    with SmtpClient.connect(*tls_server.address) as client:
        client.send_line("EHLO client.example")
        client.send_line("STARTTLS")
        client.starttls()
        mark = client.mark()
    [record] = client.tap_since(mark)
    assert record.direction == "sent" and record.tls
    assert record.plaintext == b"" and record.wire  # the alert, encrypted
