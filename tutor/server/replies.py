"""The one reply table: every reply the teaching server can send, with its trigger.

ENHANCEDSTATUSCODES is advertised, so every 2xx/4xx/5xx reply carries an enhanced code
of the same class, except the greeting and the replies to HELO/EHLO (RFC 2034 §4);
3xx replies (354, 334) carry none. tests/test_reply_table.py triggers every row over a
socket. Replies whose text aiosmtpd fixes internally are listed in LIBRARY_TEXTS and
rewritten to the persona's row on their way out (see protocol.TeachingSMTP.push).
"""

from __future__ import annotations

from dataclasses import dataclass

from tutor.wire import format_reply


@dataclass(frozen=True)
class ReplySpec:
    key: str
    code: int
    enhanced: str | None
    text: str  # str.format template; fields are filled by render()
    trigger: str
    rfc: str

    def render(self, **fields: object) -> str:
        """The single reply line, e.g. `250 2.1.0 <a@b> ... syntactically correct`."""
        text = self.text.format(**fields)
        return f"{self.code} {self.enhanced} {text}" if self.enhanced else f"{self.code} {text}"

    def render_lines(self, lines: list[str], **fields: object) -> list[str]:
        """A multi-line reply: the enhanced code (if any) starts every line (RFC 2034 §4)."""
        prefix = f"{self.enhanced} " if self.enhanced else ""
        return format_reply(self.code, [prefix + line.format(**fields) for line in lines])


def _r(key: str, code: int, enhanced: str | None, text: str, trigger: str, rfc: str) -> ReplySpec:
    return ReplySpec(key, code, enhanced, text, trigger, rfc)


TABLE: tuple[ReplySpec, ...] = (
    # --- connection ---------------------------------------------------------------------
    _r(
        "greeting",
        220,
        None,
        "{host} ESMTP smtp-tutor ready",
        "a client connects",
        "RFC 5321 §4.3.1",
    ),
    _r(
        "too_many_connections",
        421,
        "4.7.0",
        "{host} Too many connections, try again later",
        "a client connects while the connection cap is reached",
        "RFC 5321 §3.8",
    ),
    _r(
        "idle_timeout",
        421,
        "4.4.2",
        "{host} Idle timeout, closing connection",
        "the client sends nothing for the idle timeout",
        "RFC 5321 §4.5.3.2.7",
    ),
    _r(
        "too_many_unknown",
        421,
        "4.7.0",
        "{host} Too many unrecognized commands, closing connection",
        "the client sends too many unknown commands",
        "RFC 5321 §3.8",
    ),
    _r(
        "shutdown",
        421,
        "4.3.2",
        "{host} Service shutting down, closing connection",
        "the server is stopped (Ctrl-C on serve) while the client is connected",
        "RFC 5321 §3.8",
    ),
    _r("quit", 221, "2.0.0", "{host} closing connection", "QUIT", "RFC 5321 §4.1.1.10"),
    _r(
        "quit_syntax",
        501,
        "5.5.4",
        "Syntax: QUIT (no argument)",
        "QUIT with an argument",
        "RFC 5321 §4.1.1.10",
    ),
    # --- command line syntax ------------------------------------------------------------
    _r(
        "unknown",
        500,
        "5.5.2",
        "Command not recognized: {verb}",
        "an unknown command",
        "RFC 5321 §4.2.4",
    ),
    _r(
        "empty_line",
        500,
        "5.5.2",
        "Empty command line",
        "an empty line outside DATA",
        "RFC 5321 §4.2.4",
    ),
    _r(
        "bad_verb",
        500,
        "5.5.2",
        "Syntax error: the command name must be ASCII letters",
        "a command name with non-ASCII or control bytes",
        "RFC 5321 §2.4",
    ),
    _r(
        "nul_byte",
        500,
        "5.5.2",
        "Syntax error: NUL bytes are not allowed in commands",
        "a NUL byte in a command line",
        "RFC 5321 §4.1.1",
    ),
    _r(
        "command_too_long",
        500,
        "5.5.2",
        "Line too long: a command line may be at most 512 octets including CRLF",
        "a command line over 512 octets",
        "RFC 5321 §4.5.3.1.4",
    ),
    _r(
        "bad_utf8",
        500,
        "5.5.2",
        "Syntax error: the command is not valid UTF-8",
        "an argument that is not valid UTF-8",
        "RFC 6531 §3.3",
    ),
    # --- greetings (no enhanced codes: RFC 2034 §4) -------------------------------------
    _r("helo", 250, None, "{host} Hello {name} [{address}]", "HELO name", "RFC 5321 §4.1.1.1"),
    _r(
        "ehlo",
        250,
        None,
        "{host} Hello {name} [{address}]",
        "EHLO name (followed by the extension lines)",
        "RFC 5321 §4.1.1.1",
    ),
    _r(
        "helo_syntax",
        501,
        None,
        "Syntax: HELO hostname",
        "HELO without a name",
        "RFC 5321 §4.1.1.1",
    ),
    _r(
        "ehlo_syntax",
        501,
        None,
        "Syntax: EHLO hostname",
        "EHLO without a name",
        "RFC 5321 §4.1.1.1",
    ),
    # --- MAIL ---------------------------------------------------------------------------
    _r(
        "mail_ok",
        250,
        "2.1.0",
        "<{address}> sender address syntactically correct",
        "MAIL FROM:<valid address> (or <>)",
        "RFC 5321 §4.1.1.2",
    ),
    _r(
        "mail_need_helo",
        503,
        "5.5.1",
        "Bad sequence of commands: send HELO or EHLO first",
        "MAIL before HELO/EHLO",
        "RFC 5321 §4.1.4",
    ),
    _r(
        "mail_nested",
        503,
        "5.5.1",
        "Bad sequence of commands: sender already given (RSET starts over)",
        "a second MAIL in one transaction",
        "RFC 5321 §4.1.4",
    ),
    _r(
        "mail_syntax",
        501,
        "5.5.4",
        "Syntax: MAIL FROM:<address> [SP <parameters>]",
        "MAIL without FROM:, a malformed parameter, or SIZE= that is not a number",
        "RFC 5321 §4.1.1.2",
    ),
    _r(
        "mail_brackets",
        501,
        "5.5.4",
        "Syntax: MAIL FROM:<address> (angle brackets are required)",
        "MAIL FROM:address without < >",
        "RFC 5321 §4.1.2",
    ),
    _r(
        "mail_bad_address",
        553,
        "5.1.7",
        "Malformed sender address: {detail}",
        "MAIL FROM:<not an address>",
        "RFC 5321 §4.1.2, RFC 3463 §3.2",
    ),
    _r(
        "mail_non_ascii",
        553,
        "5.6.7",
        "Non-ASCII sender address needs the SMTPUTF8 parameter",
        "MAIL FROM:<nön-ascii@…> without SMTPUTF8",
        "RFC 6531 §3.5",
    ),
    _r(
        "mail_too_big",
        552,
        "5.3.4",
        "Message size exceeds fixed maximum of {limit} octets",
        "MAIL FROM:<a> SIZE= over the limit",
        "RFC 1870 §6, RFC 5321 §4.5.3.1.9",
    ),
    _r(
        "mail_params",
        555,
        "5.5.4",
        "Unsupported option: {option}",
        "MAIL with a parameter this server does not support (after EHLO)",
        "RFC 5321 §4.1.1.11",
    ),
    _r(
        "mail_params_helo",
        555,
        "5.5.4",
        "Unsupported option: {option} (parameters need a session begun with EHLO)",
        "MAIL with any parameter after HELO: HELO offers no extensions",
        "RFC 5321 §4.1.1.11, RFC 5321 §2.2.1",
    ),
    _r(
        "mail_body",
        555,
        "5.5.4",
        "Unsupported option: {option} (BODY=7BIT or BODY=8BITMIME)",
        "MAIL with BODY= other than 7BIT/8BITMIME",
        "RFC 5321 §4.1.1.11, RFC 6152 §2",
    ),
    _r(
        "mail_null_mx",
        550,
        "5.7.27",
        "Sender domain {domain} has a null MX: it accepts no mail",
        "MAIL FROM a domain that has a null MX in the simulated DNS",
        "RFC 7505 §4.1, §4.2",
    ),
    # --- RCPT ---------------------------------------------------------------------------
    _r(
        "rcpt_ok",
        250,
        "2.1.5",
        "<{address}> recipient verified",
        "RCPT TO:<local mailbox>",
        "RFC 5321 §4.1.1.3",
    ),
    _r(
        "rcpt_relay_ok",
        250,
        "2.1.5",
        "<{address}> accepted for relay (captured here, never sent: {why})",
        "RCPT TO another domain with the open relay or after AUTH",
        "RFC 5321 §3.6.1",
    ),
    _r(
        "rcpt_need_helo",
        503,
        "5.5.1",
        "Bad sequence of commands: send HELO or EHLO first",
        "RCPT before HELO/EHLO",
        "RFC 5321 §4.1.4",
    ),
    _r(
        "rcpt_need_mail",
        503,
        "5.5.1",
        "Bad sequence of commands: send MAIL FROM first",
        "RCPT before MAIL",
        "RFC 5321 §4.1.4",
    ),
    _r(
        "rcpt_syntax",
        501,
        "5.5.4",
        "Syntax: RCPT TO:<address> [SP <parameters>]",
        "RCPT without TO:, or with a malformed parameter",
        "RFC 5321 §4.1.1.3",
    ),
    _r(
        "rcpt_brackets",
        501,
        "5.5.4",
        "Syntax: RCPT TO:<address> (angle brackets are required)",
        "RCPT TO:address without < >",
        "RFC 5321 §4.1.2",
    ),
    _r(
        "rcpt_bad_address",
        553,
        "5.1.3",
        "Malformed recipient address: {detail}",
        "RCPT TO:<not an address>",
        "RFC 5321 §4.1.2, RFC 3463 §3.2",
    ),
    _r(
        "rcpt_non_ascii",
        553,
        "5.6.7",
        "Non-ASCII recipient address needs SMTPUTF8 on MAIL",
        "RCPT TO:<nön-ascii@…> in a transaction without SMTPUTF8",
        "RFC 6531 §3.5",
    ),
    _r(
        "rcpt_params",
        555,
        "5.5.4",
        "Unsupported option: {option}",
        "RCPT with any parameter: none is supported on RCPT, after EHLO or HELO",
        "RFC 5321 §4.1.1.11",
    ),
    _r(
        "rcpt_unknown",
        550,
        "5.1.1",
        "<{address}> no such mailbox here",
        "RCPT TO:<unknown@tutor.test>",
        "RFC 5321 §4.2.2, RFC 3463 §3.2",
    ),
    _r(
        "rcpt_relay_denied",
        550,
        "5.7.1",
        "<{address}> relay access denied",
        "RCPT TO another domain (closed relay, no AUTH)",
        "RFC 5321 §3.6.2, RFC 3463 §3.8",
    ),
    _r(
        "rcpt_null_mx",
        556,
        "5.1.10",
        "<{address}> domain {domain} has a null MX: it accepts no mail",
        "RCPT TO a domain with a null MX (relay allowed)",
        "RFC 7505 §4.1",
    ),
    _r(
        "rcpt_greylisted",
        451,
        "4.7.1",
        "<{address}> greylisted: first contact from this client and sender, try again later",
        "RCPT to a local mailbox: the first try of a (client, sender, recipient) triplet, "
        "when the lesson's persona greylists",
        "RFC 6647 §2.4",
    ),
    _r(
        "rcpt_too_many",
        452,
        "4.5.3",
        "Too many recipients (at most {limit} per message)",
        "RCPT beyond the recipient limit",
        "RFC 5321 §4.5.3.1.10",
    ),
    # --- DATA ---------------------------------------------------------------------------
    _r(
        "data_go",
        354,
        None,
        'Enter message, ending with "." on a line by itself',
        "DATA after at least one accepted RCPT",
        "RFC 5321 §4.1.1.4",
    ),
    _r(
        "data_ok",
        250,
        "2.0.0",
        "OK id={queue_id}",
        "the lone dot ends a message that was stored",
        "RFC 5321 §4.1.1.4",
    ),
    _r(
        "data_need_helo",
        503,
        "5.5.1",
        "Bad sequence of commands: send HELO or EHLO first",
        "DATA before HELO/EHLO",
        "RFC 5321 §4.1.4",
    ),
    _r(
        "data_need_rcpt",
        503,
        "5.5.1",
        "Bad sequence of commands: no valid recipients yet (RCPT TO)",
        "DATA before an accepted RCPT",
        "RFC 5321 §4.1.4",
    ),
    _r(
        "data_syntax",
        501,
        "5.5.4",
        "Syntax: DATA (no argument)",
        "DATA with an argument",
        "RFC 5321 §4.1.1.4",
    ),
    _r(
        "data_too_big",
        552,
        "5.3.4",
        "Message exceeds fixed maximum of {limit} octets; not stored",
        "message data over the SIZE limit",
        "RFC 5321 §4.5.3.1.9, RFC 1870 §6",
    ),
    _r(
        "data_line_too_long",
        500,
        "5.5.2",
        "Line too long: a text line may be at most 1000 octets including CRLF; not stored",
        "a message line over 1000 octets",
        "RFC 5321 §4.5.3.1.6",
    ),
    _r(
        "data_spam",
        554,
        "5.7.1",
        "Message refused as spam: it contains the GTUBE test string",
        "a message holding the GTUBE anti-spam test string",
        "RFC 5321 §4.2.5, RFC 3463 §3.8",
    ),
    _r(
        "data_storage_full",
        452,
        "4.3.1",
        "Insufficient system storage; message not stored",
        "the Maildir cannot be written",
        "RFC 5321 §4.2.2, RFC 3463 §3.4",
    ),
    # --- other commands -----------------------------------------------------------------
    _r("rset", 250, "2.0.0", "OK, transaction reset", "RSET", "RFC 5321 §4.1.1.5"),
    _r(
        "rset_syntax",
        501,
        "5.5.4",
        "Syntax: RSET (no argument)",
        "RSET with an argument",
        "RFC 5321 §4.1.1.5",
    ),
    _r("noop", 250, "2.0.0", "OK", "NOOP", "RFC 5321 §4.1.1.9"),
    _r(
        "vrfy",
        252,
        "2.0.0",
        "<{address}> mail to it will be accepted and delivery attempted",
        "VRFY an address RCPT would accept: a local mailbox, or any where relay is allowed",
        "RFC 5321 §3.5.3",
    ),
    _r(
        "vrfy_unknown",
        550,
        "5.1.1",
        "<{address}> no such mailbox here",
        "VRFY an unknown user of tutor.test (a bare name counts as one of tutor.test)",
        "RFC 5321 §3.5.3, RFC 3463 §3.2",
    ),
    _r(
        "vrfy_relay_denied",
        550,
        "5.7.1",
        "<{address}> relay access denied",
        "VRFY an address of another domain (closed relay, no AUTH)",
        "RFC 5321 §3.6.2, RFC 3463 §3.8",
    ),
    _r(
        "vrfy_syntax",
        501,
        "5.5.4",
        "Syntax: VRFY <address>",
        "VRFY without an argument, or with one that is not an address",
        "RFC 5321 §4.1.1.6",
    ),
    _r(
        "expn",
        502,
        "5.5.2",
        "EXPN not implemented",
        "EXPN (with or without a list name)",
        "RFC 5321 §4.2.4, RFC 5321 §4.3.2",
    ),
    _r("help", 214, "2.0.0", "{line}", "HELP", "RFC 5321 §4.1.1.8"),
    _r(
        "help_unknown",
        504,
        "5.5.1",
        "No help for {topic}",
        "HELP for an unknown topic",
        "RFC 5321 §4.1.1.8",
    ),
    # --- STARTTLS (RFC 3207) -----------------------------------------------------------
    _r("starttls_ready", 220, "2.0.0", "Ready to start TLS", "STARTTLS after EHLO", "RFC 3207 §4"),
    _r(
        "starttls_need_ehlo",
        503,
        "5.5.1",
        "Bad sequence of commands: STARTTLS is an ESMTP extension, send EHLO first",
        "STARTTLS before EHLO or after HELO",
        "RFC 3207 §4",
    ),
    _r(
        "starttls_active",
        503,
        "5.5.1",
        "Bad sequence of commands: TLS is already active",
        "STARTTLS under TLS",
        "RFC 3207 §4.2",
    ),
    _r(
        "starttls_syntax",
        501,
        "5.5.4",
        "Syntax: STARTTLS (no argument)",
        "STARTTLS with an argument",
        "RFC 3207 §4",
    ),
    _r(
        "starttls_unavailable",
        454,
        "4.7.0",
        "TLS not available",
        "STARTTLS when TLS is off",
        "RFC 3207 §4",
    ),
    # --- AUTH (RFC 4954) ---------------------------------------------------------------
    _r(
        "auth_before_tls",
        503,
        "5.5.1",
        "Authentication not enabled: AUTH is offered only after STARTTLS",
        "AUTH before STARTTLS (EHLO does not list AUTH then)",
        "RFC 4954 §4",
    ),
    _r(
        "auth_need_ehlo",
        503,
        "5.5.1",
        "Bad sequence of commands: send EHLO first",
        "AUTH before EHLO",
        "RFC 4954 §4",
    ),
    _r(
        "auth_already",
        503,
        "5.5.1",
        "Bad sequence of commands: already authenticated",
        "a second AUTH",
        "RFC 4954 §4",
    ),
    _r(
        "auth_in_transaction",
        503,
        "5.5.1",
        "Bad sequence of commands: AUTH is not allowed during a mail transaction",
        "AUTH after MAIL",
        "RFC 4954 §4",
    ),
    _r(
        "auth_syntax",
        501,
        "5.5.4",
        "Syntax: AUTH mechanism [initial-response]",
        "AUTH without a mechanism or with extra words",
        "RFC 4954 §4",
    ),
    _r(
        "auth_mechanism",
        504,
        "5.5.4",
        "Unrecognized authentication type",
        "AUTH (under TLS) with a mechanism other than PLAIN or LOGIN",
        "RFC 4954 §4",
    ),
    _r(
        "auth_challenge",
        334,
        None,
        "{challenge}",
        "a mechanism asks for the next value",
        "RFC 4954 §4",
    ),
    _r(
        "auth_ok",
        235,
        "2.7.0",
        "Authentication successful",
        "AUTH with a demo account",
        "RFC 4954 §6",
    ),
    _r(
        "auth_failed",
        535,
        "5.7.8",
        "Authentication credentials invalid",
        "AUTH with a wrong user or password",
        "RFC 4954 §6",
    ),
    _r(
        "auth_base64",
        501,
        "5.5.2",
        "Cannot decode base64",
        "an AUTH value that is not base64",
        "RFC 4954 §4",
    ),
    _r(
        "auth_split",
        501,
        "5.5.2",
        "Cannot split PLAIN credentials (expected authzid\\0user\\0pass)",
        "AUTH PLAIN whose decoded value lacks two NUL separators",
        "RFC 4616 §2",
    ),
    _r(
        "auth_aborted",
        501,
        "5.7.0",
        "Authentication aborted",
        "the client answers a 334 with '*'",
        "RFC 4954 §4",
    ),
    # --- errors of the server itself -----------------------------------------------------
    _r(
        "internal_error",
        451,
        "4.3.0",
        "Local error in processing; please try again",
        "an unexpected error inside the server",
        "RFC 5321 §4.2.3",
    ),
)

REPLIES: dict[str, ReplySpec] = {spec.key: spec for spec in TABLE}
assert len(REPLIES) == len(TABLE), "duplicate reply key"

# Texts pushed by aiosmtpd's own code paths that the persona still uses (the AUTH
# mechanisms and the STARTTLS handshake); each is rewritten to a row of TABLE.
LIBRARY_TEXTS: dict[str, str] = {
    "220 Ready to start TLS": "starttls_ready",
    "501 5.5.2 Can't decode base64": "auth_base64",
    "501 5.5.2 Can't split auth value": "auth_split",
    "501 5.7.0 Auth aborted": "auth_aborted",
}


def reply(key: str, **fields: object) -> str:
    return REPLIES[key].render(**fields)


def markdown_table() -> str:
    """The reply table as Markdown, for docs/server.md (a test keeps the two in step)."""
    rows = ["| code | enhanced | text | sent when | reference |", "|---|---|---|---|---|"]
    for spec in TABLE:
        text = spec.text.replace("|", "\\|")
        rows.append(
            f"| {spec.code} | {spec.enhanced or '—'} | `{text}` | {spec.trigger} | {spec.rfc} |"
        )
    return "\n".join(rows) + "\n"
