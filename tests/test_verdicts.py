"""SPF and DMARC verdicts, Authentication-Results and SMTPUTF8 storage, read back from disk.

SPF comes from pyspf answering from the simulated DNS (never the system resolver: the
test below makes every real lookup fail); DMARC follows RFC 9989 (policy discovery and
relaxed alignment by the DNS Tree Walk); every ASCII Authentication-Results the server
writes must parse with `authres` (an RFC 8601 parser), with no empty property value; an
SMTPUTF8 one is checked against RFC 8601's grammar with RFC 8616's UTF-8 allowed.
"""

from __future__ import annotations

import mailbox
import re
import smtplib
import socket
from typing import Any

import authres
import pytest

from tutor.server.runner import TeachingServer
from tutor.world import authresults

HOST = "mx.tutor.test"


def stored(server: TeachingServer, folder: str = "you") -> list[bytes]:
    box = mailbox.Maildir(server.maildir / folder, factory=None, create=False)
    return [box.get_bytes(key) for key in box.iterkeys()]


def header_section(raw: bytes) -> bytes:
    return raw.split(b"\n\n", 1)[0]


def field(raw: bytes, name: str) -> str:
    """One field's unfolded value, decoded as UTF-8 (strictly: no U+FFFD sneaks in)."""
    text = header_section(raw).decode("utf-8")
    match = re.search(rf"^{name}: (.*(?:\n[ \t].*)*)", text, re.MULTILINE)
    assert match, f"no {name} in {text!r}"
    return re.sub(r"\n[ \t]", " ", match.group(1))


def deliver(
    server: TeachingServer, sender: str, header_from: str, *, helo: str = "client.example"
) -> bytes:
    message = f"From: {header_from}\r\nTo: you@tutor.test\r\nSubject: checks\r\n\r\nhi\r\n"
    with smtplib.SMTP(*server.address, local_hostname=helo, timeout=10) as client:
        client.sendmail(sender, ["you@tutor.test"], message.encode())
    (raw,) = stored(server)
    return raw


def parse(value: str) -> Any:
    """authres's parse of one Authentication-Results value; every property has a value."""
    parsed = authres.AuthenticationResultsHeader.parse(f"Authentication-Results: {value}")
    for result in parsed.results:
        for prop in result.properties:
            assert prop.value, f"empty {prop.type}.{prop.name} in {value!r}"
    return parsed


def results(parsed: Any) -> dict[str, tuple[str, dict[str, str]]]:
    return {
        r.method: (r.result, {f"{p.type}.{p.name}": p.value for p in r.properties})
        for r in parsed.results
    }


# --- verdicts as stored -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sender", "header_from", "spf", "dmarc"),
    [
        ("you@tutor.test", "you@tutor.test", "pass", "pass"),
        ("victim@innocent.example", "Victim <victim@innocent.example>", "fail", "fail"),
        ("you@tutor.test", "boss@innocent.example", "pass", "fail"),
        ("bugs@looney.example", "Bugs <bugs@looney.example>", "none", "none"),
    ],
)
def test_stored_verdicts_parse_as_rfc_8601(
    server: TeachingServer, sender: str, header_from: str, spf: str, dmarc: str
) -> None:
    value = field(deliver(server, sender, header_from), "Authentication-Results")
    parsed = parse(value)
    assert parsed.authserv_id == HOST
    found = results(parsed)
    assert found["spf"] == (spf, {"smtp.mailfrom": sender.rpartition("@")[2]})
    assert found["dmarc"][0] == dmarc
    assert found["dmarc"][1]["header.from"] == header_from.rpartition("@")[2].rstrip(">")
    if dmarc == "fail":
        assert found["dmarc"][1]["policy.dmarc"] in ("reject", "quarantine")
    assert "policy=" not in value.replace("policy.dmarc=", "")


def test_null_sender_is_checked_as_postmaster_at_the_helo_domain(server: TeachingServer) -> None:
    """RFC 7208 §2.4: for MAIL FROM:<>, SPF checks postmaster@<HELO domain>."""
    value = field(
        deliver(server, "", "mailer@tutor.test", helo="tutor.test"), "Authentication-Results"
    )
    found = results(parse(value))
    assert found["spf"] == ("pass", {"smtp.mailfrom": "postmaster@tutor.test"})
    assert found["dmarc"][0] == "pass"


def test_null_sender_with_an_address_literal_names_no_identity(server: TeachingServer) -> None:
    value = field(
        deliver(server, "", "mailer@tutor.test", helo="[127.0.0.1]"), "Authentication-Results"
    )
    found = results(parse(value))
    assert found["spf"] == ("none", {})
    assert "smtp.mailfrom" not in value


# --- SPF by pyspf, never by the resolver --------------------------------------------------------


def test_spf_never_reaches_the_system_resolver(monkeypatch: pytest.MonkeyPatch) -> None:
    def unreachable(*args: object, **kwargs: object) -> object:
        raise AssertionError(f"a real DNS lookup was attempted: {args!r}")

    import dns.resolver

    monkeypatch.setattr(socket, "getaddrinfo", unreachable)
    monkeypatch.setattr(socket, "gethostbyname", unreachable)
    monkeypatch.setattr(dns.resolver, "resolve", unreachable)
    monkeypatch.setattr(dns.resolver, "query", unreachable)
    monkeypatch.setattr(dns.resolver.Resolver, "resolve", unreachable)
    cases = {
        ("you@tutor.test", "127.0.0.1"): "pass",
        ("you@tutor.test", "::1"): "pass",
        ("you@tutor.test", "192.0.2.1"): "fail",
        ("ceo@innocent.example", "198.51.100.25"): "pass",
        ("x@nomail.example", "127.0.0.1"): "fail",
        ("x@no-such-name.example", "127.0.0.1"): "none",  # NXDOMAIN: not in the table
        ("x@gone.invalid", "127.0.0.1"): "none",
    }
    for (identity, ip), expected in cases.items():
        assert authresults.spf_result(identity, "client.example", ip) == expected, identity


def test_spf_is_pyspf_own_evaluation(monkeypatch: pytest.MonkeyPatch) -> None:
    """The verdict is pyspf's: a record only pyspf's parser understands still works."""
    import spf

    assert authresults.pyspf() is spf and spf.DNSLookup is authresults._simulated_lookup
    from tutor.world import dnsdata

    monkeypatch.setattr(
        dnsdata, "txt_records", lambda name: ("v=spf1 mx ?all",) if name == "tutor.test" else ()
    )
    assert authresults.spf_result("you@tutor.test", "h.example", "127.0.0.1") == "pass"
    assert authresults.spf_result("you@tutor.test", "h.example", "192.0.2.9") == "neutral"


# --- DMARC per RFC 9989 -------------------------------------------------------------------------


def test_relaxed_alignment_is_the_same_organizational_domain() -> None:
    assert authresults.organizational_domain("mx.tutor.test") == "tutor.test"
    assert authresults.organizational_domain("a.b.c.d.e.f.g.h.i.tutor.test") == "tutor.test"
    assert authresults.organizational_domain("nowhere.example") == "nowhere.example"
    assert authresults.aligned("mx.tutor.test", "tutor.test")
    assert authresults.aligned("tutor.test", "mx.tutor.test")
    # siblings under one organization align, which the old subdomain-only test missed
    assert authresults.aligned("mx.tutor.test", "lists.tutor.test")
    assert not authresults.aligned("tutor.test", "innocent.example")
    assert not authresults.aligned("evil-tutor.test", "tutor.test")


def test_policy_of_a_subdomain_comes_from_the_tree_walk() -> None:
    verdicts = authresults.evaluate("you@tutor.test", "x@news.tutor.test", "127.0.0.1", "h.example")
    assert (verdicts.dmarc, verdicts.dmarc_policy) == ("pass", "reject")
    verdicts = authresults.evaluate("x@looney.example", "x@news.tutor.test", "127.0.0.1", "h")
    assert (verdicts.dmarc, verdicts.dmarc_policy) == ("fail", "reject")


# --- SMTPUTF8 stored as sent ----------------------------------------------------------------------


UTF8_MESSAGE = (
    "From: Jörg Müller <jörg@tutor.test>\r\n"
    "To: Ünïcødé <you@tutor.test>\r\n"
    "Subject: Grüße aus Zürich — 你好\r\n"
    "\r\n"
    "Straße, naïve café, 日本語.\r\n"
).encode()


def test_smtputf8_message_round_trips_byte_for_byte(server: TeachingServer) -> None:
    with smtplib.SMTP(*server.address, local_hostname="client.example", timeout=10) as client:
        client.ehlo()
        assert client.has_extn("smtputf8")
        client.sendmail("jörg@tutor.test", ["you@tutor.test"], UTF8_MESSAGE, ["SMTPUTF8"])
    (raw,) = stored(server)
    assert raw.endswith(UTF8_MESSAGE.replace(b"\r\n", b"\n"))
    headers = header_section(raw).decode("utf-8")  # strict: the trace fields are UTF-8
    assert "\ufffd" not in headers
    assert "(envelope-from <jörg@tutor.test>)" in headers
    assert re.search(r"\bwith UTF8SMTP id ", headers), headers
    value = field(raw, "Authentication-Results")
    assert rfc8616_valid(value), value
    assert "spf=pass smtp.mailfrom=tutor.test" in value
    assert "dmarc=pass (p=reject) header.from=tutor.test" in value


def test_smtputf8_over_tls_with_login_says_utf8smtpsa(server: TeachingServer) -> None:
    import ssl

    from tutor.server.persona import DEMO_ACCOUNTS

    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with smtplib.SMTP(*server.address, local_hostname="client.example", timeout=10) as client:
        client.starttls(context=context)
        client.login("you", DEMO_ACCOUNTS["you"])
        client.sendmail("jörg@tutor.test", ["you@tutor.test"], UTF8_MESSAGE, ["SMTPUTF8"])
    (raw,) = stored(server)
    assert "with UTF8SMTPSA id " in header_section(raw).decode("utf-8")


def test_ascii_session_keeps_rfc_3848_names(server: TeachingServer) -> None:
    raw = deliver(server, "you@tutor.test", "you@tutor.test")
    assert " with ESMTP id " in header_section(raw).decode("ascii")


# --- our RFC 8601 grammar, with RFC 8616's UTF-8 -------------------------------------------------

# RFC 8601 §2.2, simplified to what a value can hold here: authserv-id, then
# "; method=result [comment] ptype.property=value ..." ; RFC 8616 §3 lets values and
# comments carry UTF-8 (the property value may be a Mailbox with a UTF-8 local part).
_TOKEN = r"[A-Za-z0-9][A-Za-z0-9_.-]*"
_VALUE = r"[^\s;()\"\\]+"
_COMMENT = r"\([^()\\]*\)"
_PROPERTY = rf"(?:smtp|header|body|policy)\.{_TOKEN}={_VALUE}"
_RESINFO = rf"{_TOKEN}={_TOKEN}(?:\s+{_COMMENT})?(?:\s+{_PROPERTY})*(?:\s+{_COMMENT})?"
_AUTHRES = re.compile(rf"{_VALUE}(?:;\s*{_RESINFO})+")


def rfc8616_valid(value: str) -> bool:
    return _AUTHRES.fullmatch(value) is not None


def test_our_grammar_agrees_with_authres_on_ascii_values() -> None:
    good = [
        "mx.tutor.test; spf=pass smtp.mailfrom=tutor.test; dmarc=pass (p=reject) "
        "header.from=tutor.test (simulated DNS)",
        "mx.tutor.test; spf=none; dmarc=none header.from=x.example (simulated DNS)",
    ]
    bad = [
        "mx.tutor.test; spf=pass smtp.mailfrom=; dmarc=none",
        "mx.tutor.test; dmarc=fail header.from=x.example policy=reject",
    ]
    for value in good:
        assert rfc8616_valid(value)
        parse(value)
    for value in bad:
        assert not rfc8616_valid(value)
    assert rfc8616_valid("mx.tutor.test; spf=pass smtp.mailfrom=jörg@tutor.test; dmarc=none")


def test_a_huge_from_is_judged_by_its_first_author_alone() -> None:
    """The author domain comes from the start of From: (what the server reads before its
    250); a 1 MB list of further addresses changes nothing and is not parsed whole."""
    short = authresults.evaluate("you@tutor.test", "You <you@tutor.test>", "127.0.0.1")
    huge_from = "You <you@tutor.test>, " + "x <x@innocent.example>, " * 45_000
    assert len(huge_from) > 1_000_000
    assert authresults.evaluate("you@tutor.test", huge_from, "127.0.0.1") == short
    assert short.dmarc == "pass"
