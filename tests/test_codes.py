"""Tests for tutor.smtp.codes: the reply-code and enhanced-status-code catalogue."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

from tutor.smtp import codes
from tutor.smtp.codes import (
    ENHANCED_CODES,
    REPLY_CODES,
    enhanced_class,
    enhanced_code,
    enhanced_subject,
    reply_category,
    reply_class,
    reply_code,
    short_meaning,
)

# Read here with the csv module, not through tutor.smtp.codes, so the test checks the catalogue
# against the registry rather than against itself.
IANA_CSV = Path(codes.__file__).parent.parent / "data" / "iana-smtp-enhanced-status-codes.csv"
IANA_COLUMNS = [
    "Code",
    "Sample Text",
    "Associated basic status code",
    "Description",
    "Reference",
    "Submitter",
    "Change Controller",
]

REQUIRED_REPLY_CODES = (
    211, 214, 220, 221, 235, 250, 251, 252, 334, 354, 421, 432, 450, 451, 452, 454, 455,
    500, 501, 502, 503, 504, 521, 530, 534, 535, 538, 550, 551, 552, 553, 554, 555, 556,
)  # fmt: skip


def _iana_rows() -> list[dict[str, str]]:
    with IANA_CSV.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == IANA_COLUMNS
        return list(reader)


IANA_ROWS = _iana_rows()


# -- the IANA copy ------------------------------------------------------------


def test_iana_copy_is_complete() -> None:
    found = {row["Code"] for row in IANA_ROWS}
    assert {"2.XXX.YYY", "4.XXX.YYY", "5.XXX.YYY"} <= found
    assert {f"X.{n}.YYY" for n in range(8)} <= found
    for code in ("X.0.0", "X.1.1", "X.1.10", "X.3.4", "X.7.8", "X.7.11", "X.7.26", "X.7.27"):
        assert code in found
    assert len(found) == len(IANA_ROWS), "duplicate codes in the IANA copy"


@pytest.mark.parametrize("row", IANA_ROWS, ids=lambda row: row["Code"])
def test_every_iana_code_is_catalogued_with_its_title(row: dict[str, str]) -> None:
    entry = ENHANCED_CODES.get(row["Code"])
    assert entry is not None, f"{row['Code']} missing from ENHANCED_CODES"
    assert entry.code == row["Code"]
    if row["Sample Text"]:
        assert entry.title == row["Sample Text"]
    else:  # X.6.10: the registry gives the deprecated duplicate no title
        assert "deprecated" in entry.title.lower()


@pytest.mark.parametrize("row", IANA_ROWS, ids=lambda row: row["Code"])
def test_references_match_the_registry(row: dict[str, str]) -> None:
    entry = ENHANCED_CODES[row["Code"]]
    registry_rfcs = set(re.findall(r"RFC(\d+)", row["Reference"]))
    ours = set(re.findall(r"RFC (\d+)", entry.rfc))
    assert ours == registry_rfcs
    for draft in re.findall(r"draft-[\w-]+", row["Reference"]):
        assert draft in entry.rfc


@pytest.mark.parametrize("row", IANA_ROWS, ids=lambda row: row["Code"])
def test_used_with_matches_the_registry(row: dict[str, str]) -> None:
    entry = ENHANCED_CODES[row["Code"]]
    listed = tuple(
        int(n) for n in re.findall(r"\b[2-5]\d\d\b", row["Associated basic status code"])
    )
    assert entry.used_with == listed


def test_catalogue_has_nothing_beyond_the_registry() -> None:
    assert set(ENHANCED_CODES) == {row["Code"] for row in IANA_ROWS}
    assert list(ENHANCED_CODES) == [row["Code"] for row in IANA_ROWS], "registry order"


def test_every_registry_code_has_a_teaching_text_and_none_is_invented() -> None:
    registry = {row["Code"] for row in IANA_ROWS}
    assert sorted(registry - set(codes._TEACHING)) == [], "codes without a teaching text"
    assert sorted(set(codes._TEACHING) - registry) == [], "teaching texts for no registry code"


@pytest.mark.parametrize(
    ("reference", "citation"),
    [
        ("[RFC3463] (Standards track)", "RFC 3463"),
        ("[RFC7505] (Standards Track); [RFC7504] (Standards Track)", "RFC 7505; RFC 7504"),
        ("[RFC7372], Section 3.3 (Standards Track)", "RFC 7372 §3.3"),
        ("[draft-levine-mailbomb-header-00]", "draft-levine-mailbomb-header-00"),
    ],
)
def test_registry_references_become_citations(reference: str, citation: str) -> None:
    assert codes._citation(reference) == citation


@pytest.mark.parametrize(
    ("column", "used_with"),
    [
        ("", ()),
        ("Not given", ()),
        ("5XX", ()),
        ("451/550", (451, 550)),
        ("250 or 251", (250, 251)),
        ("450, 550 (other 4XX or 5XX codes are allowed)", (450, 550)),
    ],
)
def test_registry_basic_codes_become_used_with(column: str, used_with: tuple[int, ...]) -> None:
    assert codes._used_with(column) == used_with


def test_the_registry_ships_inside_the_package() -> None:
    from importlib.resources import files

    shipped = files("tutor") / "data" / "iana-smtp-enhanced-status-codes.csv"
    assert shipped.read_text(encoding="utf-8") == IANA_CSV.read_text(encoding="utf-8")
    readme = files("tutor") / "data" / "iana-smtp-enhanced-status-codes.README"
    assert "larseggert/iana-assignments" in readme.read_text(encoding="utf-8")


def test_enhanced_entries_are_filled_in() -> None:
    for entry in ENHANCED_CODES.values():
        assert entry.title.strip()
        assert entry.description.strip()
        assert entry.description != _iana_description(entry.code)
        assert re.match(r"(RFC \d+|draft-)", entry.rfc)
        assert all(200 <= n <= 599 for n in entry.used_with)


def _iana_description(code: str) -> str:
    return next(row["Description"] for row in IANA_ROWS if row["Code"] == code)


# -- basic reply codes --------------------------------------------------------


def test_listed_reply_codes_are_present() -> None:
    missing = [code for code in REQUIRED_REPLY_CODES if code not in REPLY_CODES]
    assert missing == []


@pytest.mark.parametrize("code", sorted(REPLY_CODES))
def test_reply_code_fields(code: int) -> None:
    entry = REPLY_CODES[code]
    assert entry.code == code
    for field in ("title", "meaning", "when", "action", "rfc"):
        value = getattr(entry, field)
        assert isinstance(value, str)
        assert value.strip(), f"{code}.{field} is empty"
    assert re.search(r"\bRFC \d{3,4}\b", entry.rfc)
    assert reply_code(code) is entry


@pytest.mark.parametrize(
    ("code", "rfc"),
    [
        (250, "RFC 5321 §4.2.3"),
        (235, "RFC 4954 §6"),
        (334, "RFC 4954 §4"),
        (454, "RFC 3207 §4"),
        (521, "RFC 7504"),
        (553, "RFC 6531"),
        (556, "RFC 7505 §4.1"),
    ],
)
def test_reply_code_references(code: int, rfc: str) -> None:
    entry = reply_code(code)
    assert entry is not None
    assert rfc in entry.rfc


def test_every_reply_code_has_a_short_label() -> None:
    for code in REPLY_CODES:
        assert not short_meaning(code).startswith(("Unlisted reply", "Invalid reply code"))


def test_unknown_reply_code() -> None:
    assert reply_code(299) is None
    assert reply_code(0) is None


def test_entries_are_read_only() -> None:
    entry = REPLY_CODES[250]
    with pytest.raises(AttributeError):
        entry.code = 251  # type: ignore[misc]
    with pytest.raises(TypeError):
        codes.REPLY_CODES[999] = entry  # type: ignore[index]


# -- digits -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "start"),
    [
        (250, "2xx positive completion"),
        (354, "3xx positive intermediate"),
        (421, "4xx transient negative"),
        (550, "5xx permanent negative"),
    ],
)
def test_reply_class(code: int, start: str) -> None:
    assert reply_class(code).startswith(start)


@pytest.mark.parametrize("code", [0, 99, 150, 650, 1000, -250])
def test_reply_class_unknown(code: int) -> None:
    assert reply_class(code).startswith("unknown class")


@pytest.mark.parametrize(
    ("code", "start"),
    [
        (500, "x0z syntax"),
        (214, "x1z information"),
        (221, "x2z connections"),
        (535, "x3z unspecified"),
        (543, "x4z unspecified"),
        (550, "x5z mail system"),
    ],
)
def test_reply_category(code: int, start: str) -> None:
    assert reply_category(code).startswith(start)


@pytest.mark.parametrize("code", [260, 99, 1000])
def test_reply_category_unknown(code: int) -> None:
    assert reply_category(code).startswith("unknown category")


# -- enhanced look-ups --------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "key"),
    [
        ("5.1.1", "X.1.1"),
        ("4.1.1", "X.1.1"),
        ("X.1.1", "X.1.1"),
        ("x.1.1", "X.1.1"),
        (" 5.7.26 ", "X.7.26"),
        ("4.7.26", "X.7.26"),
        ("5.1.10", "X.1.10"),
        ("2.1.5", "X.1.5"),
        ("5.7.027", "X.7.27"),
        ("5.XXX.YYY", "5.XXX.YYY"),
        ("5.X.X", "5.XXX.YYY"),
        ("X.1.YYY", "X.1.YYY"),
        ("X.1.X", "X.1.YYY"),
        ("4.3.X", "X.3.YYY"),
    ],
)
def test_enhanced_code_lookup(given: str, key: str) -> None:
    entry = enhanced_code(given)
    assert entry is not None
    assert entry.code == key


@pytest.mark.parametrize(
    "given", ["", "5", "5.1", "3.1.1", "5.9.99", "5.1.99", "X.X.X", "5.1.1.1", "hello", "5.1000.1"]
)
def test_enhanced_code_unknown(given: str) -> None:
    assert enhanced_code(given) is None


def test_enhanced_code_details() -> None:
    null_mx = enhanced_code("5.7.27")
    assert null_mx is not None
    assert null_mx.title == "Sender address has null MX"
    assert null_mx.rfc == "RFC 7505"
    assert null_mx.used_with == (550,)
    multi = enhanced_code("5.7.26")
    assert multi is not None
    assert multi.title == "Multiple authentication checks failed"
    recipient_null_mx = enhanced_code("5.1.10")
    assert recipient_null_mx is not None
    assert recipient_null_mx.used_with == (556,)


@pytest.mark.parametrize(
    ("given", "start"),
    [
        ("2.1.5", "2.XXX.YYY Success"),
        ("4.4.1", "4.XXX.YYY Persistent Transient Failure"),
        ("5.1.1", "5.XXX.YYY Permanent Failure"),
        ("X.1.1", "X: no class given"),
        ("nonsense", "unknown class"),
    ],
)
def test_enhanced_class(given: str, start: str) -> None:
    assert enhanced_class(given).startswith(start)


@pytest.mark.parametrize(
    ("given", "start"),
    [
        ("5.0.0", "X.0.YYY Other or Undefined Status"),
        ("5.1.1", "X.1.YYY Addressing Status"),
        ("4.2.2", "X.2.YYY Mailbox Status"),
        ("5.3.4", "X.3.YYY Mail System Status"),
        ("4.4.1", "X.4.YYY Network and Routing Status"),
        ("5.5.2", "X.5.YYY Mail Delivery Protocol Status"),
        ("5.6.7", "X.6.YYY Message Content or Media Status"),
        ("5.7.26", "X.7.YYY Security or Policy Status"),
        ("5.9.1", "unknown subject"),
        ("5.X.X", "no subject given"),
        ("bogus", "unknown subject"),
    ],
)
def test_enhanced_subject(given: str, start: str) -> None:
    assert enhanced_subject(given).startswith(start)


# -- short_meaning ------------------------------------------------------------


def test_short_meaning_examples() -> None:
    assert (
        short_meaning(250, "2.1.5")
        == "OK — mail action completed (2.1.5: destination address valid)"
    )
    assert short_meaning(550, "5.7.26") == (
        "Rejected — mailbox unavailable or refused by policy "
        "(5.7.26: multiple authentication checks failed)"
    )
    assert short_meaning(556, "5.1.10") == (
        "Rejected — domain does not accept mail (5.1.10: recipient address has null MX)"
    )


def test_short_meaning_without_enhanced_code() -> None:
    assert short_meaning(250) == "OK — mail action completed"
    assert short_meaning(354, None) == short_meaning(354)
    assert short_meaning(221, "") == short_meaning(221)


def test_short_meaning_keeps_acronyms() -> None:
    assert short_meaning(550, "5.7.23").endswith("(5.7.23: SPF validation failed)")


def test_short_meaning_unknown_codes() -> None:
    assert short_meaning(299) == "Unlisted reply 299 — treat as 2xx positive completion"
    assert short_meaning(599).startswith("Unlisted reply 599 — treat as 5xx permanent")
    assert short_meaning(42) == "Invalid reply code 42"
    assert short_meaning(699) == "Invalid reply code 699"
    assert short_meaning(550, "5.9.99").endswith("(5.9.99: not in the IANA registry)")
    assert short_meaning(550, "nonsense").endswith("(nonsense: not an enhanced status code)")


def test_short_meaning_flags_class_mismatch() -> None:
    line = short_meaning(250, "5.1.1")
    assert line.startswith("OK — mail action completed (5.1.1: bad destination mailbox address")
    assert "does not match reply 250" in line
    assert "does not match" not in short_meaning(550, "X.1.1")
