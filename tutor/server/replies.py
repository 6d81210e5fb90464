"""The one reply table: every reply the teaching server can send, with its trigger.

ENHANCEDSTATUSCODES is advertised, so every 2xx/4xx/5xx reply carries an enhanced code
of the same class, except the greeting and the replies to HELO/EHLO (RFC 2034 §4);
3xx replies (354, 334) carry none. tests/test_reply_table.py triggers every row over a
socket. Replies whose text aiosmtpd fixes internally are listed in LIBRARY_TEXTS and
rewritten to the persona's row on their way out (see protocol.TeachingSMTP.push).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from tutor.smtp.wire import format_reply


class ReplyKey(StrEnum):
    """One member per row of TABLE: a misspelt key is a mypy error, not a KeyError in a
    session. The values are the rows' names in docs/server.md and the tests."""

    GREETING = "greeting"
    TOO_MANY_CONNECTIONS = "too_many_connections"
    BUSY = "busy"
    NOT_ON_NETWORK = "not_on_network"
    NOT_ON_NETWORK_COMMAND = "not_on_network_command"
    IDLE_TIMEOUT = "idle_timeout"
    TOO_MANY_UNKNOWN = "too_many_unknown"
    SHUTDOWN = "shutdown"
    QUIT = "quit"
    QUIT_SYNTAX = "quit_syntax"
    UNKNOWN = "unknown"
    EMPTY_LINE = "empty_line"
    BAD_VERB = "bad_verb"
    NUL_BYTE = "nul_byte"
    COMMAND_TOO_LONG = "command_too_long"
    BAD_UTF8 = "bad_utf8"
    HELO = "helo"
    EHLO = "ehlo"
    HELO_SYNTAX = "helo_syntax"
    EHLO_SYNTAX = "ehlo_syntax"
    MAIL_OK = "mail_ok"
    MAIL_NEED_HELO = "mail_need_helo"
    MAIL_NESTED = "mail_nested"
    MAIL_SYNTAX = "mail_syntax"
    MAIL_BRACKETS = "mail_brackets"
    MAIL_BAD_ADDRESS = "mail_bad_address"
    MAIL_NON_ASCII = "mail_non_ascii"
    MAIL_TOO_BIG = "mail_too_big"
    MAIL_PARAMS = "mail_params"
    MAIL_PARAMS_HELO = "mail_params_helo"
    MAIL_BODY = "mail_body"
    MAIL_NULL_MX = "mail_null_mx"
    RCPT_OK = "rcpt_ok"
    RCPT_RELAY_OK = "rcpt_relay_ok"
    RCPT_NEED_HELO = "rcpt_need_helo"
    RCPT_NEED_MAIL = "rcpt_need_mail"
    RCPT_SYNTAX = "rcpt_syntax"
    RCPT_BRACKETS = "rcpt_brackets"
    RCPT_BAD_ADDRESS = "rcpt_bad_address"
    RCPT_NON_ASCII = "rcpt_non_ascii"
    RCPT_PARAMS = "rcpt_params"
    RCPT_UNKNOWN = "rcpt_unknown"
    RCPT_RELAY_DENIED = "rcpt_relay_denied"
    RCPT_NULL_MX = "rcpt_null_mx"
    RCPT_GREYLISTED = "rcpt_greylisted"
    RCPT_TOO_MANY = "rcpt_too_many"
    DATA_GO = "data_go"
    DATA_OK = "data_ok"
    DATA_NEED_HELO = "data_need_helo"
    DATA_NEED_RCPT = "data_need_rcpt"
    DATA_SYNTAX = "data_syntax"
    DATA_TOO_BIG = "data_too_big"
    DATA_LINE_TOO_LONG = "data_line_too_long"
    DATA_SPAM = "data_spam"
    DATA_STORAGE_FULL = "data_storage_full"
    RSET = "rset"
    RSET_SYNTAX = "rset_syntax"
    NOOP = "noop"
    NOOP_STUDENT = "noop_student"
    NOOP_STUDENT_REFUSED = "noop_student_refused"
    VRFY = "vrfy"
    VRFY_UNKNOWN = "vrfy_unknown"
    VRFY_RELAY_DENIED = "vrfy_relay_denied"
    VRFY_SYNTAX = "vrfy_syntax"
    EXPN = "expn"
    HELP = "help"
    HELP_UNKNOWN = "help_unknown"
    STARTTLS_READY = "starttls_ready"
    STARTTLS_NEED_EHLO = "starttls_need_ehlo"
    STARTTLS_ACTIVE = "starttls_active"
    STARTTLS_SYNTAX = "starttls_syntax"
    STARTTLS_UNAVAILABLE = "starttls_unavailable"
    AUTH_BEFORE_TLS = "auth_before_tls"
    AUTH_NEED_EHLO = "auth_need_ehlo"
    AUTH_ALREADY = "auth_already"
    AUTH_IN_TRANSACTION = "auth_in_transaction"
    AUTH_SYNTAX = "auth_syntax"
    AUTH_MECHANISM = "auth_mechanism"
    AUTH_CHALLENGE = "auth_challenge"
    AUTH_OK = "auth_ok"
    AUTH_FAILED = "auth_failed"
    AUTH_BASE64 = "auth_base64"
    AUTH_SPLIT = "auth_split"
    AUTH_ABORTED = "auth_aborted"
    INTERNAL_ERROR = "internal_error"


@dataclass(frozen=True)
class ReplySpec:
    key: ReplyKey
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


def _r(
    key: ReplyKey, code: int, enhanced: str | None, text: str, trigger: str, rfc: str
) -> ReplySpec:
    return ReplySpec(key, code, enhanced, text, trigger, rfc)


TABLE: tuple[ReplySpec, ...] = (
    # --- connection ---------------------------------------------------------------------
    _r(
        ReplyKey.GREETING,
        220,
        None,
        "{host} ESMTP smtp-tutor ready",
        "a client connects",
        "RFC 5321 §4.3.1",
    ),
    _r(
        ReplyKey.TOO_MANY_CONNECTIONS,
        421,
        "4.7.0",
        "{host} Too many connections, try again later",
        "a client connects while the connection cap is reached",
        "RFC 5321 §3.8",
    ),
    # A host that is up but takes no mail now: a 421 in place of the 220 is a recoverable
    # failure, so a sending server tries its next MX at once (Postfix's smtp(8) moves to
    # an alternate host after one) and this host again on a later run of its queue.
    _r(
        ReplyKey.BUSY,
        421,
        "4.3.2",
        "{host} Service not available: all server ports are busy, try again later",
        "a client connects to a world host whose role is `busy` (mx1.example.org)",
        "RFC 5321 §3.8",
    ),
    # RFC 5321 §3.1: a 554 in place of the 220; the server still waits for QUIT and
    # answers anything else with 503.
    _r(
        ReplyKey.NOT_ON_NETWORK,
        554,
        "5.7.1",
        "{host} [{address}] is not on this class's network "
        "(smtp-tutor serve --lan accepts private addresses only)",
        "a client from outside the class's network connects to `serve --lan` (not a "
        "private, link-local or loopback address, nor one that --allow names)",
        "RFC 5321 §3.1",
    ),
    _r(
        ReplyKey.NOT_ON_NETWORK_COMMAND,
        503,
        "5.5.1",
        "Bad sequence of commands: [{address}] is not on this class's network; only QUIT",
        "any command but QUIT after that 554",
        "RFC 5321 §3.1",
    ),
    _r(
        ReplyKey.IDLE_TIMEOUT,
        421,
        "4.4.2",
        "{host} Idle timeout, closing connection",
        "the client sends nothing for the idle timeout",
        "RFC 5321 §4.5.3.2.7",
    ),
    _r(
        ReplyKey.TOO_MANY_UNKNOWN,
        421,
        "4.7.0",
        "{host} Too many unrecognized commands, closing connection",
        "the client sends too many unknown commands",
        "RFC 5321 §3.8",
    ),
    _r(
        ReplyKey.SHUTDOWN,
        421,
        "4.3.2",
        "{host} Service shutting down, closing connection",
        "the server is stopped (Ctrl-C on serve) while the client is connected",
        "RFC 5321 §3.8",
    ),
    _r(ReplyKey.QUIT, 221, "2.0.0", "{host} closing connection", "QUIT", "RFC 5321 §4.1.1.10"),
    _r(
        ReplyKey.QUIT_SYNTAX,
        501,
        "5.5.4",
        "Syntax: QUIT (no argument)",
        "QUIT with an argument",
        "RFC 5321 §4.1.1.10",
    ),
    # --- command line syntax ------------------------------------------------------------
    _r(
        ReplyKey.UNKNOWN,
        500,
        "5.5.2",
        "Command not recognized: {verb}",
        "an unknown command",
        "RFC 5321 §4.2.4",
    ),
    _r(
        ReplyKey.EMPTY_LINE,
        500,
        "5.5.2",
        "Empty command line",
        "an empty line outside DATA",
        "RFC 5321 §4.2.4",
    ),
    _r(
        ReplyKey.BAD_VERB,
        500,
        "5.5.2",
        "Syntax error: the command name must be ASCII letters",
        "a command name with non-ASCII or control bytes",
        "RFC 5321 §2.4",
    ),
    _r(
        ReplyKey.NUL_BYTE,
        500,
        "5.5.2",
        "Syntax error: NUL bytes are not allowed in commands",
        "a NUL byte in a command line",
        "RFC 5321 §4.1.1",
    ),
    _r(
        ReplyKey.COMMAND_TOO_LONG,
        500,
        "5.5.2",
        "Line too long: a command line may be at most 512 octets including CRLF",
        "a command line over 512 octets",
        "RFC 5321 §4.5.3.1.4",
    ),
    _r(
        ReplyKey.BAD_UTF8,
        500,
        "5.5.2",
        "Syntax error: the command is not valid UTF-8",
        "an argument that is not valid UTF-8",
        "RFC 6531 §3.3",
    ),
    # --- greetings (no enhanced codes: RFC 2034 §4) -------------------------------------
    _r(
        ReplyKey.HELO,
        250,
        None,
        "{host} Hello {name} [{address}]",
        "HELO name",
        "RFC 5321 §4.1.1.1",
    ),
    _r(
        ReplyKey.EHLO,
        250,
        None,
        "{host} Hello {name} [{address}]",
        "EHLO name (followed by the extension lines)",
        "RFC 5321 §4.1.1.1",
    ),
    _r(
        ReplyKey.HELO_SYNTAX,
        501,
        None,
        "Syntax: HELO hostname",
        "HELO without a name",
        "RFC 5321 §4.1.1.1",
    ),
    _r(
        ReplyKey.EHLO_SYNTAX,
        501,
        None,
        "Syntax: EHLO hostname",
        "EHLO without a name",
        "RFC 5321 §4.1.1.1",
    ),
    # --- MAIL ---------------------------------------------------------------------------
    _r(
        ReplyKey.MAIL_OK,
        250,
        "2.1.0",
        "<{address}> sender address syntactically correct",
        "MAIL FROM:<valid address> (or <>)",
        "RFC 5321 §4.1.1.2",
    ),
    _r(
        ReplyKey.MAIL_NEED_HELO,
        503,
        "5.5.1",
        "Bad sequence of commands: send HELO or EHLO first",
        "MAIL before HELO/EHLO",
        "RFC 5321 §4.1.4",
    ),
    _r(
        ReplyKey.MAIL_NESTED,
        503,
        "5.5.1",
        "Bad sequence of commands: sender already given (RSET starts over)",
        "a second MAIL in one transaction",
        "RFC 5321 §4.1.4",
    ),
    _r(
        ReplyKey.MAIL_SYNTAX,
        501,
        "5.5.4",
        "Syntax: MAIL FROM:<address> [SP <parameters>]",
        "MAIL without FROM:, a malformed parameter, or SIZE= that is not a number",
        "RFC 5321 §4.1.1.2",
    ),
    _r(
        ReplyKey.MAIL_BRACKETS,
        501,
        "5.5.4",
        "Syntax: MAIL FROM:<address> (angle brackets are required)",
        "MAIL FROM:address without < >",
        "RFC 5321 §4.1.2",
    ),
    _r(
        ReplyKey.MAIL_BAD_ADDRESS,
        553,
        "5.1.7",
        "Malformed sender address: {detail}",
        "MAIL FROM:<not an address>",
        "RFC 5321 §4.1.2, RFC 3463 §3.2",
    ),
    _r(
        ReplyKey.MAIL_NON_ASCII,
        553,
        "5.6.7",
        "Non-ASCII sender address needs the SMTPUTF8 parameter",
        "MAIL FROM:<nön-ascii@…> without SMTPUTF8",
        "RFC 6531 §3.5",
    ),
    _r(
        ReplyKey.MAIL_TOO_BIG,
        552,
        "5.3.4",
        "Message size exceeds fixed maximum of {limit} octets",
        "MAIL FROM:<a> SIZE= over the limit",
        "RFC 1870 §6, RFC 5321 §4.5.3.1.9",
    ),
    _r(
        ReplyKey.MAIL_PARAMS,
        555,
        "5.5.4",
        "Unsupported option: {option}",
        "MAIL with a parameter this server does not support (after EHLO)",
        "RFC 5321 §4.1.1.11",
    ),
    _r(
        ReplyKey.MAIL_PARAMS_HELO,
        555,
        "5.5.4",
        "Unsupported option: {option} (parameters need a session begun with EHLO)",
        "MAIL with any parameter after HELO: HELO offers no extensions",
        "RFC 5321 §4.1.1.11, RFC 5321 §2.2.1",
    ),
    _r(
        ReplyKey.MAIL_BODY,
        555,
        "5.5.4",
        "Unsupported option: {option} (BODY=7BIT or BODY=8BITMIME)",
        "MAIL with BODY= other than 7BIT/8BITMIME",
        "RFC 5321 §4.1.1.11, RFC 6152 §2",
    ),
    _r(
        ReplyKey.MAIL_NULL_MX,
        550,
        "5.7.27",
        "Sender domain {domain} has a null MX: it accepts no mail",
        "MAIL FROM a domain that has a null MX in the simulated DNS",
        "RFC 7505 §4.1, §4.2",
    ),
    # --- RCPT ---------------------------------------------------------------------------
    _r(
        ReplyKey.RCPT_OK,
        250,
        "2.1.5",
        "<{address}> recipient verified",
        "RCPT TO:<local mailbox>",
        "RFC 5321 §4.1.1.3",
    ),
    _r(
        ReplyKey.RCPT_RELAY_OK,
        250,
        "2.1.5",
        "<{address}> accepted for relay (captured here, never sent: {why})",
        "RCPT TO another domain with the open relay or after AUTH",
        "RFC 5321 §3.6.1",
    ),
    _r(
        ReplyKey.RCPT_NEED_HELO,
        503,
        "5.5.1",
        "Bad sequence of commands: send HELO or EHLO first",
        "RCPT before HELO/EHLO",
        "RFC 5321 §4.1.4",
    ),
    _r(
        ReplyKey.RCPT_NEED_MAIL,
        503,
        "5.5.1",
        "Bad sequence of commands: send MAIL FROM first",
        "RCPT before MAIL",
        "RFC 5321 §4.1.4",
    ),
    _r(
        ReplyKey.RCPT_SYNTAX,
        501,
        "5.5.4",
        "Syntax: RCPT TO:<address> [SP <parameters>]",
        "RCPT without TO:, or with a malformed parameter",
        "RFC 5321 §4.1.1.3",
    ),
    _r(
        ReplyKey.RCPT_BRACKETS,
        501,
        "5.5.4",
        "Syntax: RCPT TO:<address> (angle brackets are required)",
        "RCPT TO:address without < >",
        "RFC 5321 §4.1.2",
    ),
    _r(
        ReplyKey.RCPT_BAD_ADDRESS,
        553,
        "5.1.3",
        "Malformed recipient address: {detail}",
        "RCPT TO:<not an address>",
        "RFC 5321 §4.1.2, RFC 3463 §3.2",
    ),
    _r(
        ReplyKey.RCPT_NON_ASCII,
        553,
        "5.6.7",
        "Non-ASCII recipient address needs SMTPUTF8 on MAIL",
        "RCPT TO:<nön-ascii@…> in a transaction without SMTPUTF8",
        "RFC 6531 §3.5",
    ),
    _r(
        ReplyKey.RCPT_PARAMS,
        555,
        "5.5.4",
        "Unsupported option: {option}",
        "RCPT with any parameter: none is supported on RCPT, after EHLO or HELO",
        "RFC 5321 §4.1.1.11",
    ),
    _r(
        ReplyKey.RCPT_UNKNOWN,
        550,
        "5.1.1",
        "<{address}> no such mailbox here",
        "RCPT TO:<unknown@tutor.test>",
        "RFC 5321 §4.2.2, RFC 3463 §3.2",
    ),
    _r(
        ReplyKey.RCPT_RELAY_DENIED,
        550,
        "5.7.1",
        "<{address}> relay access denied",
        "RCPT TO another domain (closed relay, no AUTH)",
        "RFC 5321 §3.6.2, RFC 3463 §3.8",
    ),
    _r(
        ReplyKey.RCPT_NULL_MX,
        556,
        "5.1.10",
        "<{address}> domain {domain} has a null MX: it accepts no mail",
        "RCPT TO a domain with a null MX (relay allowed)",
        "RFC 7505 §4.1",
    ),
    _r(
        ReplyKey.RCPT_GREYLISTED,
        451,
        "4.7.1",
        "<{address}> greylisted: first contact from this client and sender, try again later",
        "RCPT to a local mailbox: the first try of a (client, sender, recipient) triplet, "
        "when the lesson's persona greylists",
        "RFC 6647 §2.4",
    ),
    _r(
        ReplyKey.RCPT_TOO_MANY,
        452,
        "4.5.3",
        "Too many recipients (at most {limit} per message)",
        "RCPT beyond the recipient limit",
        "RFC 5321 §4.5.3.1.10",
    ),
    # --- DATA ---------------------------------------------------------------------------
    _r(
        ReplyKey.DATA_GO,
        354,
        None,
        'Enter message, ending with "." on a line by itself',
        "DATA after at least one accepted RCPT",
        "RFC 5321 §4.1.1.4",
    ),
    _r(
        ReplyKey.DATA_OK,
        250,
        "2.0.0",
        "OK id={queue_id}",
        "the lone dot ends a message that was stored",
        "RFC 5321 §4.1.1.4",
    ),
    _r(
        ReplyKey.DATA_NEED_HELO,
        503,
        "5.5.1",
        "Bad sequence of commands: send HELO or EHLO first",
        "DATA before HELO/EHLO",
        "RFC 5321 §4.1.4",
    ),
    _r(
        ReplyKey.DATA_NEED_RCPT,
        503,
        "5.5.1",
        "Bad sequence of commands: no valid recipients yet (RCPT TO)",
        "DATA before an accepted RCPT",
        "RFC 5321 §4.1.4",
    ),
    _r(
        ReplyKey.DATA_SYNTAX,
        501,
        "5.5.4",
        "Syntax: DATA (no argument)",
        "DATA with an argument",
        "RFC 5321 §4.1.1.4",
    ),
    _r(
        ReplyKey.DATA_TOO_BIG,
        552,
        "5.3.4",
        "Message exceeds fixed maximum of {limit} octets; not stored",
        "message data over the SIZE limit",
        "RFC 5321 §4.5.3.1.9, RFC 1870 §6",
    ),
    _r(
        ReplyKey.DATA_LINE_TOO_LONG,
        500,
        "5.5.2",
        "Line too long: a text line may be at most 1000 octets including CRLF; not stored",
        "a message line over 1000 octets",
        "RFC 5321 §4.5.3.1.6",
    ),
    _r(
        ReplyKey.DATA_SPAM,
        554,
        "5.7.1",
        "Message refused as spam: it contains the GTUBE test string",
        "a message holding the GTUBE anti-spam test string",
        "RFC 5321 §4.2.5, RFC 3463 §3.8",
    ),
    _r(
        ReplyKey.DATA_STORAGE_FULL,
        452,
        "4.3.1",
        "Insufficient system storage; message not stored",
        "the Maildir cannot be written",
        "RFC 5321 §4.2.2, RFC 3463 §3.4",
    ),
    # --- other commands -----------------------------------------------------------------
    _r(ReplyKey.RSET, 250, "2.0.0", "OK, transaction reset", "RSET", "RFC 5321 §4.1.1.5"),
    _r(
        ReplyKey.RSET_SYNTAX,
        501,
        "5.5.4",
        "Syntax: RSET (no argument)",
        "RSET with an argument",
        "RFC 5321 §4.1.1.5",
    ),
    _r(ReplyKey.NOOP, 250, "2.0.0", "OK", "NOOP", "RFC 5321 §4.1.1.9"),
    _r(
        ReplyKey.NOOP_STUDENT,
        250,
        "2.0.0",
        "OK, you are {name} in this class",
        "NOOP student=NAME (this server's own use of NOOP's argument)",
        "RFC 5321 §4.1.1.9",
    ),
    _r(
        ReplyKey.NOOP_STUDENT_REFUSED,
        250,
        "2.0.0",
        "OK, but no name taken: {problem}",
        "NOOP student= with an empty, too long or odd name",
        "RFC 5321 §4.1.1.9",
    ),
    _r(
        ReplyKey.VRFY,
        252,
        "2.0.0",
        "<{address}> mail to it will be accepted and delivery attempted",
        "VRFY an address RCPT would accept: a local mailbox, or any where relay is allowed",
        "RFC 5321 §3.5.3",
    ),
    _r(
        ReplyKey.VRFY_UNKNOWN,
        550,
        "5.1.1",
        "<{address}> no such mailbox here",
        "VRFY an unknown user of tutor.test (a bare name counts as one of tutor.test)",
        "RFC 5321 §3.5.3, RFC 3463 §3.2",
    ),
    _r(
        ReplyKey.VRFY_RELAY_DENIED,
        550,
        "5.7.1",
        "<{address}> relay access denied",
        "VRFY an address of another domain (closed relay, no AUTH)",
        "RFC 5321 §3.6.2, RFC 3463 §3.8",
    ),
    _r(
        ReplyKey.VRFY_SYNTAX,
        501,
        "5.5.4",
        "Syntax: VRFY <address>",
        "VRFY without an argument, or with one that is not an address",
        "RFC 5321 §4.1.1.6",
    ),
    _r(
        ReplyKey.EXPN,
        502,
        "5.5.2",
        "EXPN not implemented",
        "EXPN (with or without a list name)",
        "RFC 5321 §4.2.4, RFC 5321 §4.3.2",
    ),
    _r(ReplyKey.HELP, 214, "2.0.0", "{line}", "HELP", "RFC 5321 §4.1.1.8"),
    _r(
        ReplyKey.HELP_UNKNOWN,
        504,
        "5.5.1",
        "No help for {topic}",
        "HELP for an unknown topic",
        "RFC 5321 §4.1.1.8",
    ),
    # --- STARTTLS (RFC 3207) -----------------------------------------------------------
    _r(
        ReplyKey.STARTTLS_READY,
        220,
        "2.0.0",
        "Ready to start TLS",
        "STARTTLS after EHLO",
        "RFC 3207 §4",
    ),
    _r(
        ReplyKey.STARTTLS_NEED_EHLO,
        503,
        "5.5.1",
        "Bad sequence of commands: STARTTLS is an ESMTP extension, send EHLO first",
        "STARTTLS before EHLO or after HELO",
        "RFC 3207 §4",
    ),
    _r(
        ReplyKey.STARTTLS_ACTIVE,
        503,
        "5.5.1",
        "Bad sequence of commands: TLS is already active",
        "STARTTLS under TLS",
        "RFC 3207 §4.2",
    ),
    _r(
        ReplyKey.STARTTLS_SYNTAX,
        501,
        "5.5.4",
        "Syntax: STARTTLS (no argument)",
        "STARTTLS with an argument",
        "RFC 3207 §4",
    ),
    _r(
        ReplyKey.STARTTLS_UNAVAILABLE,
        454,
        "4.7.0",
        "TLS not available",
        "STARTTLS when TLS is off",
        "RFC 3207 §4",
    ),
    # --- AUTH (RFC 4954) ---------------------------------------------------------------
    _r(
        ReplyKey.AUTH_BEFORE_TLS,
        503,
        "5.5.1",
        "Authentication not enabled: AUTH is offered only after STARTTLS",
        "AUTH before STARTTLS (EHLO does not list AUTH then)",
        "RFC 4954 §4",
    ),
    _r(
        ReplyKey.AUTH_NEED_EHLO,
        503,
        "5.5.1",
        "Bad sequence of commands: send EHLO first",
        "AUTH before EHLO",
        "RFC 4954 §4",
    ),
    _r(
        ReplyKey.AUTH_ALREADY,
        503,
        "5.5.1",
        "Bad sequence of commands: already authenticated",
        "a second AUTH",
        "RFC 4954 §4",
    ),
    _r(
        ReplyKey.AUTH_IN_TRANSACTION,
        503,
        "5.5.1",
        "Bad sequence of commands: AUTH is not allowed during a mail transaction",
        "AUTH after MAIL",
        "RFC 4954 §4",
    ),
    _r(
        ReplyKey.AUTH_SYNTAX,
        501,
        "5.5.4",
        "Syntax: AUTH mechanism [initial-response]",
        "AUTH without a mechanism or with extra words",
        "RFC 4954 §4",
    ),
    _r(
        ReplyKey.AUTH_MECHANISM,
        504,
        "5.5.4",
        "Unrecognized authentication type",
        "AUTH (under TLS) with a mechanism other than PLAIN or LOGIN",
        "RFC 4954 §4",
    ),
    _r(
        ReplyKey.AUTH_CHALLENGE,
        334,
        None,
        "{challenge}",
        "a mechanism asks for the next value",
        "RFC 4954 §4",
    ),
    _r(
        ReplyKey.AUTH_OK,
        235,
        "2.7.0",
        "Authentication successful",
        "AUTH with a demo account",
        "RFC 4954 §6",
    ),
    _r(
        ReplyKey.AUTH_FAILED,
        535,
        "5.7.8",
        "Authentication credentials invalid",
        "AUTH with a wrong user or password",
        "RFC 4954 §6",
    ),
    _r(
        ReplyKey.AUTH_BASE64,
        501,
        "5.5.2",
        "Cannot decode base64",
        "an AUTH value that is not base64",
        "RFC 4954 §4",
    ),
    _r(
        ReplyKey.AUTH_SPLIT,
        501,
        "5.5.2",
        "Cannot split PLAIN credentials (expected authzid\\0user\\0pass)",
        "AUTH PLAIN whose decoded value lacks two NUL separators",
        "RFC 4616 §2",
    ),
    _r(
        ReplyKey.AUTH_ABORTED,
        501,
        "5.7.0",
        "Authentication aborted",
        "the client answers a 334 with '*'",
        "RFC 4954 §4",
    ),
    # --- errors of the server itself -----------------------------------------------------
    _r(
        ReplyKey.INTERNAL_ERROR,
        451,
        "4.3.0",
        "Local error in processing; please try again",
        "an unexpected error inside the server",
        "RFC 5321 §4.2.3",
    ),
)

REPLIES: dict[ReplyKey, ReplySpec] = {spec.key: spec for spec in TABLE}
assert len(REPLIES) == len(TABLE), "duplicate reply key"

# Texts pushed by aiosmtpd's own code paths that the persona still uses (the AUTH
# mechanisms and the STARTTLS handshake); each is rewritten to a row of TABLE.
LIBRARY_TEXTS: dict[str, ReplyKey] = {
    "220 Ready to start TLS": ReplyKey.STARTTLS_READY,
    "501 5.5.2 Can't decode base64": ReplyKey.AUTH_BASE64,
    "501 5.5.2 Can't split auth value": ReplyKey.AUTH_SPLIT,
    "501 5.7.0 Auth aborted": ReplyKey.AUTH_ABORTED,
}


def reply(key: ReplyKey, **fields: object) -> str:
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
