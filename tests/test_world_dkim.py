"""DKIM, SPF, DMARC and ARC in the world, for real: smtp.tutor.test signs what `you`
submits (STARTTLS, AUTH) and relays it by the world's DNS; mx.forward.example forwards
carol's mail unchanged and list's changed, ARC-sealed; every receiver verifies against
the world's DNS server. Real servers, real sockets, the real dig and Perl's Mail::DKIM."""

from __future__ import annotations

import mailbox
import os
import re
import smtplib
import ssl
import subprocess
import time
import uuid
from collections.abc import Iterator
from email import message_from_bytes
from email.message import Message
from pathlib import Path

import dns.flags
import dns.message
import dns.query
import pytest

from tests.support import require_tool, run_cli
from tutor.server.persona import DEMO_ACCOUNTS
from tutor.server.world import World, WorldMap
from tutor.server.world_mail import LIST_TAG, WorldMail
from tutor.server.world_send import Outbound, deliver
from tutor.world.dkim_keys import SUBMISSION_KEY, ensure_key, keys_dir, public_record
from tutor.world.routing import Resolver

TIMEOUT = 60.0
PASSWORD = DEMO_ACCOUNTS["you"]


class Running:
    def __init__(self, world: World, world_map: WorldMap, home: Path) -> None:
        self.world = world
        self.map = world_map
        self.home = home

    @property
    def dns_port(self) -> int:
        return self.map.dns_port

    def address(self, host: str) -> tuple[str, int]:
        mta = self.map.mta(host)
        return mta.address, mta.port


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    home = tmp_path_factory.mktemp("dkim-home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SMTP_TUTOR_HOME", str(home))  # the keys and the CA, for the children too
        world = World(home / "world")
        world_map = world.start()
        if not world_map.shared_port:
            world.stop()
            pytest.skip("the world relays only where 127.0.0.x can be bound (Linux)")
        try:
            yield Running(world, world_map, home)
        finally:
            world.stop()


def submit(world: Running, recipient: str, subject: str, body: str = "Hello.\r\n") -> None:
    """As a mail client does: STARTTLS (verifying smtp.tutor.test), AUTH, then the message."""
    address, port = world.address("smtp.tutor.test")
    context = ssl.create_default_context(cafile=str(world.home / "tls" / "smtp-tutor-ca.pem"))
    with smtplib.SMTP(address, port, timeout=TIMEOUT) as client:
        # The name a client resolved to reach it (smtplib checks the certificate for it).
        client._host = "smtp.tutor.test"
        client.starttls(context=context)
        client.login("you", PASSWORD)
        message = (
            f"From: You <you@tutor.test>\r\nTo: <{recipient}>\r\nSubject: {subject}\r\n"
            f"Message-ID: <{uuid.uuid4()}@tutor.test>\r\n\r\n{body}"
        )
        client.sendmail("you@tutor.test", [recipient], message.encode())


def arrived(
    world: Running, domain: str, box: str, subject: str, *, containing: bytes = b""
) -> tuple[Message, bytes]:
    """The message with this subject (and these bytes) in a mailbox of the world."""
    root = world.world.maildir / domain / box
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        if root.exists():
            folder = mailbox.Maildir(root, factory=None, create=False)
            for key in folder.iterkeys():
                raw = folder.get_bytes(key)
                parsed = message_from_bytes(raw)
                if str(parsed["Subject"]).startswith(subject) and containing in raw:
                    return parsed, raw
        time.sleep(0.05)
    raise AssertionError(f"nothing with {subject!r} arrived in {root}")


def verdicts(message: Message) -> str:
    """The Authentication-Results the receiver wrote (the topmost)."""
    return " ".join(str(message.get_all("Authentication-Results")[0]).split())


def test_submitted_mail_is_signed_relayed_past_the_busy_mx_and_verified(world: Running) -> None:
    subject = f"signed {uuid.uuid4()}"
    submit(world, "bob@example.org", subject)
    message, _ = arrived(world, "example.org", "bob", subject)
    results = verdicts(message)
    assert results.startswith("mx2.example.org; dkim=pass header.d=tutor.test header.s=lesson")
    assert "spf=pass smtp.mailfrom=tutor.test" in results
    assert "dmarc=pass (p=reject) header.from=tutor.test" in results
    assert "arc=none" in results
    signature = " ".join(str(message["DKIM-Signature"]).split())
    assert "a=rsa-sha256" in signature and "c=relaxed/relaxed" in signature
    assert "d=tutor.test" in signature and "s=lesson" in signature
    signed = set(re.search(r"h=([^;]+);", signature).group(1).replace(" ", "").split(":"))  # type: ignore[union-attr]
    assert {"from", "to", "subject", "message-id", "date"} <= signed
    received = " ".join(" ".join(message.get_all("Received")).split())
    # mx1.example.org greets with 421: the submission MTA went on to mx2, from its address.
    assert "from smtp.tutor.test ([127.0.0.25])" in received and "by mx2.example.org" in received
    assert "Return-Path" not in str(message.get_all("Received"))


def test_a_forward_keeps_dkim_fails_spf_and_passes_dmarc_with_arc(world: Running) -> None:
    subject = f"carol {uuid.uuid4()}"
    submit(world, "carol@forward.example", subject)
    message, _ = arrived(world, "example.org", "bob", subject)
    results = verdicts(message)
    assert "dkim=pass header.d=tutor.test header.s=lesson" in results
    # The envelope sender is still you@tutor.test, and 127.0.0.18 is not in its SPF record.
    assert "spf=fail smtp.mailfrom=tutor.test" in results
    assert "dmarc=pass" in results and "arc=pass" in results
    assert "from mx.forward.example ([127.0.0.18])" in " ".join(message.get_all("Received"))
    assert "i=1; mx.forward.example" in " ".join(str(message["ARC-Authentication-Results"]).split())
    assert "d=forward.example" in str(message["ARC-Seal"])


def test_a_list_breaks_dkim_and_dmarc_and_arc_still_tells(world: Running) -> None:
    subject = f"list {uuid.uuid4()}"
    submit(world, "list@forward.example", subject)
    message, _ = arrived(world, "example.org", "bob", LIST_TAG + subject)
    assert str(message["Subject"]) == LIST_TAG + subject
    assert "list@forward.example" in str(message.get_payload())
    results = verdicts(message)
    assert "dkim=fail (the body hash does not match: the body changed) header.d=tutor.test" in (
        results
    )
    assert "spf=fail" in results and "dmarc=fail (p=reject)" in results
    assert "arc=pass" in results
    # The forwarder itself saw it intact, and said so in the chain.
    chain = " ".join(str(message["ARC-Authentication-Results"]).split())
    assert "dkim=pass header.d=tutor.test" in chain


def test_a_greylisted_relay_is_tried_again_and_arrives(world: Running) -> None:
    """mx.greylist.example answers 451 to the first try; the relay tries again."""
    subject = f"greylisted {uuid.uuid4()}"
    submit(world, "bob@greylist.example", subject)
    message, _ = arrived(world, "greylist.example", "bob", subject)
    assert "dkim=pass header.d=tutor.test" in verdicts(message)


def test_the_submission_mta_relays_for_authenticated_clients_only(world: Running) -> None:
    with smtplib.SMTP(*world.address("smtp.tutor.test"), timeout=TIMEOUT) as client:
        client.ehlo("client.example")
        assert "auth" not in client.esmtp_features, "AUTH only after STARTTLS"
        client.mail("you@tutor.test")
        code, text = client.rcpt("bob@example.org")
    assert code == 554 or code // 100 == 5, text


def test_a_failed_relay_comes_back_as_a_bounce_to_the_sender(world: Running) -> None:
    """no-mx.example's address is 203.0.113.7: not a loopback address of the world."""
    subject = f"gated {uuid.uuid4()}"
    submit(world, "someone@no-mx.example", subject)
    bounce, raw = arrived(world, "tutor.test", "you", "Undelivered", containing=subject.encode())
    assert b"someone@no-mx.example" in raw and subject.encode() in raw
    assert b"203.0.113.7, which is not a loopback address of the world" in raw
    assert "from smtp.tutor.test" in " ".join(bounce.get_all("Received"))
    assert b"attempted for real" in raw and b"was simulated" not in raw
    results = verdicts(bounce)  # the bounce is signed too: From MAILER-DAEMON@smtp.tutor.test
    assert "dkim=pass header.d=tutor.test" in results and "dmarc=pass" in results


def test_the_gate_refuses_every_address_the_world_does_not_name(world: Running) -> None:
    mail = WorldMail(
        dns=("127.0.0.1", world.dns_port),
        port=world.map.mta("mx.tutor.test").port,
        source="127.0.0.25",
        key_dir=str(keys_dir()),
    )
    attempt = deliver(mail, "smtp.tutor.test", Outbound("", "x@no-mx.example", b"x\r\n", "Q1"))
    assert not attempt.delivered and attempt.permanent and attempt.status == "5.4.4"
    outside = deliver(mail, "smtp.tutor.test", Outbound("", "x@example.com", b"x\r\n", "Q2"))
    assert outside.permanent and "REFUSED" in outside.diagnostic, "never the real internet"


def test_the_dkim_key_is_answered_by_a_real_dig_over_udp_and_tcp(world: Running) -> None:
    tool = require_tool("dig")
    expected = public_record(
        (world.home / "dkim" / "lesson._domainkey.tutor.test.key").read_bytes()
    )
    for transport in ("+notcp", "+tcp"):
        result = subprocess.run(
            [
                tool,
                "@127.0.0.1",
                "-p",
                str(world.dns_port),
                "TXT",
                SUBMISSION_KEY.record_name,
                transport,
                "+short",
                "+time=5",
                "+tries=2",
            ],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=True,
        )
        joined = "".join(re.findall(r'"([^"]*)"', result.stdout))
        assert joined == expected, transport


def test_the_dkim_key_answer_fits_one_udp_message_without_edns(world: Running) -> None:
    """Some 470 bytes: any resolver gets it over UDP, no TCP retry needed (a longer
    record would come truncated, then whole over TCP: tests/test_dns_server.py)."""
    query = dns.message.make_query(SUBMISSION_KEY.record_name, "TXT", use_edns=False)
    response = dns.query.udp(query, "127.0.0.1", timeout=TIMEOUT, port=world.dns_port)
    assert not response.flags & dns.flags.TC
    assert len(response.to_wire()) <= 512
    [rrset] = response.answer
    assert b"".join(next(iter(rrset)).strings).startswith(b"v=DKIM1; k=rsa; p=")


def test_the_keys_are_made_once_and_kept(tmp_path: Path) -> None:
    first = ensure_key(SUBMISSION_KEY, tmp_path)
    path = SUBMISSION_KEY.path(tmp_path)
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert b"BEGIN RSA PRIVATE KEY" in first
    assert ensure_key(SUBMISSION_KEY, tmp_path) == first, "never made again"


def test_a_world_restarted_publishes_the_same_key(tmp_path: Path) -> None:
    answers = []
    for _ in range(2):
        world = World(tmp_path / "mail")
        world_map = world.start()
        try:
            resolver = Resolver("127.0.0.1", world_map.dns_port)
            answers.append(resolver.records(SUBMISSION_KEY.record_name, "TXT")[1])
        finally:
            world.stop()
    assert answers[0] == answers[1] and answers[0]
    assert '"v=DKIM1; k=rsa; p=' in answers[0][0]
    # `smtp-tutor dns` answers from the same zone, with the key this data home has.
    result = run_cli("dns", SUBMISSION_KEY.record_name, "TXT")
    assert "v=DKIM1; k=rsa; p=" in result.stdout, result.stdout


PERL_VERIFIER = r"""
use strict; use warnings;
use Mail::DKIM::Verifier; use Net::DNS::Resolver;
my $resolver = Net::DNS::Resolver->new(nameservers => ['127.0.0.1'], port => $ARGV[0],
                                       recurse => 0);
Mail::DKIM::DNS::resolver($resolver);
my $dkim = Mail::DKIM::Verifier->new();
while (my $line = <STDIN>) { $line =~ s/\r?\n\z//; $dkim->PRINT("$line\015\012"); }
$dkim->CLOSE;
print $dkim->result, "\n";
"""


def mail_dkim_says(world: Running, raw: bytes) -> str:
    perl = require_tool("perl")
    check = subprocess.run([perl, "-MMail::DKIM::Verifier", "-e1"], capture_output=True)
    if check.returncode != 0:
        message = "Perl's Mail::DKIM is not installed (libmail-dkim-perl)"
        if os.environ.get("CI"):
            pytest.fail(message + "; .ci/run installs it")
        pytest.skip(message)
    result = subprocess.run(
        [perl, "-e", PERL_VERIFIER, str(world.dns_port)],
        input=raw,
        capture_output=True,
        timeout=TIMEOUT,
        check=True,
    )
    return result.stdout.decode().strip()


@pytest.mark.slow
def test_perls_mail_dkim_says_pass_for_submitted_mail_and_fail_after_the_list(
    world: Running,
) -> None:
    """The independent check: another DKIM implementation, asking the world's DNS."""
    subject = f"perl {uuid.uuid4()}"
    submit(world, "bob@example.org", subject)
    submit(world, "list@forward.example", subject)
    _, direct = arrived(world, "example.org", "bob", subject)
    _, listed = arrived(world, "example.org", "bob", LIST_TAG + subject)
    assert mail_dkim_says(world, direct) == "pass"
    assert mail_dkim_says(world, listed) == "fail"
