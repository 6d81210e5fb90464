"""SMTP reply codes and enhanced status codes, explained for learners.

``REPLY_CODES``: the three-digit basic reply codes of RFC 5321 §4.2 plus those added by
the extensions a learner meets in practice: AUTH (RFC 4954), STARTTLS (RFC 3207),
SMTPUTF8 (RFC 6531) and "no mail here" (RFC 7504 / RFC 7505).

``ENHANCED_CODES``: the whole IANA registry "Simple Mail Transfer Protocol (SMTP)
Enhanced Status Codes" (RFC 3463 and its updates), read from the copy shipped as
package data (tutor/data/), keyed by IANA's own spelling of each code:

* ``"2.XXX.YYY"``, ``"4.XXX.YYY"``, ``"5.XXX.YYY"`` - the three classes;
* ``"X.0.YYY"`` ... ``"X.7.YYY"`` - the eight subjects;
* ``"X.1.1"``, ``"X.7.26"`` ... - the enumerated detail codes.

The registry lists detail codes without a class (the ``X`` stands for 2, 4 or 5), so
:func:`enhanced_code` maps ``"5.1.1"``, ``"4.1.1"`` and ``"X.1.1"`` all to the
``"X.1.1"`` entry. It also accepts the short wildcard forms ``"5.X.X"`` (a class) and
``"X.1.X"`` (a subject).

Enhanced codes' titles, references and paired reply codes are the registry's; the rest
(``_TEACHING``, all other text) is written for learners, not quoted. Stdlib only.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.resources import files
from types import MappingProxyType

__all__ = [
    "ENHANCED_CODES",
    "REPLY_CODES",
    "EnhancedCode",
    "ReplyCode",
    "enhanced_class",
    "enhanced_code",
    "enhanced_subject",
    "reply_category",
    "reply_class",
    "reply_code",
    "short_meaning",
]


@dataclass(frozen=True)
class ReplyCode:
    """One basic (three-digit) SMTP reply code."""

    code: int
    title: str  # the customary reply text, e.g. "Requested mail action okay, completed"
    meaning: str  # what it means, in plain English
    when: str  # when servers typically send it
    action: str  # what a client should do about it
    rfc: str  # where it is defined, e.g. "RFC 5321 §4.2.3"


@dataclass(frozen=True)
class EnhancedCode:
    """One entry of the IANA enhanced status code registry."""

    code: str  # IANA's spelling: "2.XXX.YYY" (class), "X.1.YYY" (subject), "X.1.1" (detail)
    title: str  # the registry's sample text (or summary, for classes and subjects)
    description: str  # what it means, in plain English
    rfc: str  # the registry's reference, e.g. "RFC 3463" or "RFC 7505; RFC 7504"
    used_with: tuple[int, ...]  # basic reply codes the registry pairs it with; () if none named


# ---------------------------------------------------------------------------
# Basic reply codes
# ---------------------------------------------------------------------------

_RFC5321 = "RFC 5321 §4.2.3"

# fmt: off
_REPLY_TABLE: tuple[ReplyCode, ...] = (
    # -- 2yz: positive completion ------------------------------------------
    ReplyCode(
        211, "System status, or system help reply",
        "The server is reporting on its own state. The text is meant for people and "
        "has no fixed format.",
        "Rarely: in answer to HELP or to a non-standard status request.",
        "Show or log the text; nothing needs to be done before the next command.",
        _RFC5321,
    ),
    ReplyCode(
        214, "Help message",
        "The reply carries help text for a human reader, such as the list of commands "
        "the server knows or a pointer to its documentation.",
        "In answer to HELP, with or without a topic.",
        "Display it to the user. Do not try to parse it: every server words it "
        "differently.",
        _RFC5321,
    ),
    ReplyCode(
        220, "<domain> Service ready",
        "The server is ready to talk. As a greeting it invites the client to introduce "
        "itself; in answer to STARTTLS it means the TLS handshake can begin.",
        "As the greeting (banner) right after the client connects, and in answer to "
        "STARTTLS.",
        "After the greeting, send EHLO (or HELO). After STARTTLS, start the TLS "
        "handshake at once and then send EHLO again.",
        "RFC 5321 §4.2.3; RFC 3207 §4",
    ),
    ReplyCode(
        221, "<domain> Service closing transmission channel",
        "The server is saying goodbye and is about to close the connection. This is "
        "the normal, tidy end of a session.",
        "In answer to QUIT.",
        "Close your end of the connection; there is nothing more to send.",
        _RFC5321,
    ),
    ReplyCode(
        235, "Authentication succeeded",
        "The credentials were accepted and the session is now logged in.",
        "At the end of a successful AUTH exchange, usually with enhanced code 2.7.0.",
        "Go on with the mail transaction (MAIL FROM). Do not send AUTH again in this "
        "session.",
        "RFC 4954 §6",
    ),
    ReplyCode(
        250, "Requested mail action okay, completed",
        "The command worked: this is the everyday 'OK' of SMTP. After the final dot of "
        "DATA it means the server has taken responsibility for the message.",
        "In answer to EHLO, HELO, MAIL, RCPT, RSET and NOOP, and after the message "
        "body has been received.",
        "Carry on with the next step. After the message body, the message is on its "
        "way; keep any queue ID from the text for your logs.",
        _RFC5321,
    ),
    ReplyCode(
        251, "User not local; will forward to <forward-path>",
        "The recipient does not live on this server, but the server knows where they "
        "are and will pass the message on itself.",
        "In answer to RCPT TO on servers that forward mail for users who have moved; "
        "seldom seen today.",
        "Treat it as success and continue. You may note the new address for next "
        "time.",
        _RFC5321,
    ),
    ReplyCode(
        252, "Cannot VRFY user, but will accept message and attempt delivery",
        "The server will not say whether the mailbox exists, but it will take mail for "
        "it and try to deliver it.",
        "In answer to VRFY (Postfix: 252 2.0.0), and to VRFY or EXPN on servers that "
        "decline to disclose their users, to stop address harvesting (RFC 5321 §7.3).",
        "Do not read it as proof that the address exists; just send the message if "
        "you want to.",
        _RFC5321,
    ),
    # -- 3yz: positive intermediate ----------------------------------------
    ReplyCode(
        334, "Server challenge (AUTH continues)",
        "An AUTH exchange is in progress and the server wants the next step. The text "
        "after the code is a base64 challenge, which may be empty.",
        "During AUTH: twice for AUTH LOGIN (user name, then password), once for AUTH "
        "PLAIN sent without an initial response.",
        "Decode the challenge if your mechanism needs it and answer with one "
        "base64-encoded line, or send a single '*' to cancel.",
        "RFC 4954 §4",
    ),
    ReplyCode(
        354, "Start mail input; end with <CRLF>.<CRLF>",
        "The server is ready for the message itself: the header lines, an empty line, "
        "then the body.",
        "In answer to DATA, once at least one recipient has been accepted.",
        "Send the message, adding an extra dot to any line that starts with a dot, and "
        "finish with a line holding only a dot. Then wait for the final reply.",
        _RFC5321,
    ),
    # -- 4yz: transient negative completion --------------------------------
    ReplyCode(
        421, "<domain> Service not available, closing transmission channel",
        "The server cannot serve you right now and is hanging up. The cause is "
        "temporary: overload, a shutdown, rate limits or an idle timeout.",
        "Instead of 220 as the greeting, or in answer to any command when the server "
        "has to stop talking.",
        "Close the connection, keep the message queued and try again later, waiting "
        "longer after each failure.",
        _RFC5321,
    ),
    ReplyCode(
        432, "A password transition is needed",
        "The server needs you to move over to the mechanism you asked for, which "
        "normally means logging in once with PLAIN so it can set up your "
        "credentials.",
        "In answer to AUTH with a mechanism not yet set up for this user, with "
        "enhanced code 4.7.12.",
        "Log in once with PLAIN over an encrypted connection; the chosen mechanism "
        "should work in later sessions.",
        "RFC 4954 §6",
    ),
    ReplyCode(
        450, "Requested mail action not taken: mailbox unavailable",
        "The mailbox cannot take mail at the moment: it may be busy, locked or "
        "temporarily blocked by policy. Greylisting servers use this code.",
        "In answer to RCPT TO (sometimes MAIL FROM), for instance while greylisting a "
        "new sender.",
        "Keep the message and retry later; a greylisting server usually accepts the "
        "retry after a few minutes.",
        _RFC5321,
    ),
    ReplyCode(
        451, "Requested action aborted: local error in processing",
        "Something went wrong inside the server, such as a failed DNS lookup or an "
        "internal fault. It is expected to clear up.",
        "At any stage of a transaction, often after RCPT TO or after the end of DATA.",
        "Retry later. If it keeps happening for days, give up and tell the sender.",
        _RFC5321,
    ),
    ReplyCode(
        452, "Requested action not taken: insufficient system storage",
        "The server is short of room right now: its disk is full, or a limit such as "
        "the number of recipients per message has been reached.",
        "In answer to MAIL FROM or RCPT TO (often meaning 'too many recipients'), or "
        "after DATA.",
        "If it came after a RCPT, deliver to the recipients accepted so far and send "
        "the rest in a new transaction; otherwise retry later.",
        _RFC5321,
    ),
    ReplyCode(
        454, "TLS not available, or temporary authentication failure",
        "A security step cannot be completed for the moment: either TLS cannot be "
        "started right now, or the login service has a passing problem.",
        "In answer to STARTTLS, or to AUTH (with enhanced code 4.7.0) when the "
        "server cannot reach its password store.",
        "Try again later and do not ask the user for a new password. If the mail must "
        "travel encrypted, do not fall back to a plain connection.",
        "RFC 3207 §4; RFC 4954 §6",
    ),
    ReplyCode(
        455, "Server unable to accommodate parameters",
        "The server understood the extra parameters on MAIL FROM or RCPT TO but cannot "
        "honour them right now.",
        "In answer to MAIL FROM or RCPT TO carrying extension parameters the server "
        "cannot meet at the moment.",
        "Try again later, perhaps without the optional parameter.",
        _RFC5321,
    ),
    # -- 5yz: permanent negative completion --------------------------------
    ReplyCode(
        500, "Syntax error, command unrecognized",
        "The server did not recognise the command at all, or the line was too long to "
        "be a valid command.",
        "After a misspelt or unknown command, an over-long command line, or an "
        "over-long AUTH response (with enhanced code 5.5.6).",
        "Fix the command; sending the same line again will fail the same way.",
        "RFC 5321 §4.2.3; RFC 4954 §6",
    ),
    ReplyCode(
        501, "Syntax error in parameters or arguments",
        "The command is known, but what follows it is malformed, for example an "
        "address without angle brackets.",
        "After MAIL FROM, RCPT TO, EHLO/HELO, AUTH or STARTTLS with bad arguments.",
        "Correct the arguments and send the command again.",
        _RFC5321,
    ),
    ReplyCode(
        502, "Command not implemented",
        "The server knows the command exists but does not support it.",
        "After commands the server does not implement, such as EXPN or TURN, or EHLO "
        "on a very old server. A server that merely declines to disclose its users "
        "answers VRFY and EXPN with 252 instead (RFC 5321 §7.3).",
        "Stop using that command with this server; fall back where possible (HELO "
        "instead of EHLO, for instance).",
        _RFC5321,
    ),
    ReplyCode(
        503, "Bad sequence of commands",
        "The command is fine in itself but arrives at the wrong point in the "
        "conversation.",
        "For RCPT before MAIL, DATA before any accepted RCPT, MAIL before EHLO, a "
        "second AUTH, or AUTH before STARTTLS on a server that offers AUTH only under "
        "TLS (Postfix: 503 5.5.1 Error: authentication not enabled).",
        "Follow the expected order: EHLO, then STARTTLS and AUTH if needed, MAIL, one "
        "or more RCPT, DATA. RSET starts a transaction afresh.",
        _RFC5321,
    ),
    ReplyCode(
        504, "Command parameter not implemented",
        "The command is supported, but one of its parameters or options is not.",
        "After AUTH with a mechanism the server does not offer or that needs an "
        "encrypted connection (504 5.5.4, RFC 4954 §4), or a command option it lacks.",
        "Pick a parameter the server listed in its EHLO reply.",
        _RFC5321,
    ),
    ReplyCode(
        521, "Host does not accept mail",
        "This host never accepts mail for anyone; it is not a mail server at all. "
        "(First proposed in RFC 1846, standardised by RFC 7504.)",
        "As the greeting from a machine set up only to turn SMTP clients away, such "
        "as a web server that answers on port 25.",
        "Do not retry this host. Use another MX for the domain if there is one, "
        "otherwise return the message to the sender.",
        "RFC 7504",
    ),
    ReplyCode(
        530, "Authentication required (or: must issue a STARTTLS command first)",
        "The server refuses to go on until the client has logged in, or until the "
        "connection has been encrypted.",
        "In answer to MAIL FROM or other commands on servers that demand AUTH (often "
        "with 5.7.0) or STARTTLS first.",
        "Do what is asked: STARTTLS, then EHLO again, then AUTH; then repeat the "
        "command.",
        "RFC 4954 §6; RFC 3207 §4",
    ),
    ReplyCode(
        534, "Authentication mechanism is too weak",
        "The login method chosen is weaker than the server's policy allows for this "
        "user.",
        "In answer to AUTH, with enhanced code 5.7.9.",
        "Log in again with a stronger mechanism from the AUTH line of the EHLO reply.",
        "RFC 4954 §6",
    ),
    ReplyCode(
        535, "Authentication credentials invalid",
        "The user name, password or other credentials were not accepted.",
        "At the end of a failed AUTH exchange, with enhanced code 5.7.8.",
        "Check the credentials before trying again; do not retry in a loop, because "
        "servers lock out repeated failures.",
        "RFC 4954 §6",
    ),
    ReplyCode(
        538, "Encryption required for requested authentication mechanism",
        "Historical: RFC 4954 §6 keeps this code 'for historical purposes only'. It "
        "once meant that the chosen login mechanism needed an encrypted connection.",
        "Hardly ever today. A server that wants TLS first does not offer AUTH before "
        "STARTTLS and answers AUTH with 503 5.5.1; a mechanism that needs encryption "
        "gets 504 5.5.4 (RFC 4954 §4).",
        "Run STARTTLS, send EHLO again, then log in.",
        "RFC 4954 §6",
    ),
    ReplyCode(
        550, "Requested action not taken: mailbox unavailable",
        "The server will not do this for that mailbox: it does not exist, you may "
        "not use it, or policy refuses the mail.",
        "Mostly after RCPT TO for unknown users or refused relaying, and after DATA "
        "when spam or sender-authentication checks reject the message.",
        "Do not retry unchanged. Read the enhanced code and text to learn why, and "
        "report the failure (a bounce) to the sender.",
        _RFC5321,
    ),
    ReplyCode(
        551, "User not local; please try <forward-path>",
        "The recipient is not here. The server may name another address to use, but "
        "it will not forward the message itself.",
        "In answer to RCPT TO for users who have moved; some servers also use it to "
        "refuse relaying.",
        "Do not retry here. If a new address is given, the sender can resend to it.",
        _RFC5321,
    ),
    ReplyCode(
        552, "Requested mail action aborted: exceeded storage allocation",
        "The message cannot be stored because it would go over a size or quota "
        "limit.",
        "After DATA for a message that is too big, after RCPT TO for a mailbox over "
        "quota, or after MAIL FROM with a SIZE that is too large.",
        "Make the message smaller, or wait for the recipient to free space, before "
        "trying again.",
        "RFC 5321 §4.2.3, §4.5.3.1.9; RFC 1870 §6",
    ),
    ReplyCode(
        553, "Requested action not taken: mailbox name not allowed",
        "The address itself is unacceptable: it is malformed, or uses characters such "
        "as non-ASCII ones that the server will not take.",
        "In answer to MAIL FROM or RCPT TO with a badly formed address, or a non-ASCII "
        "address on a server without SMTPUTF8 (with enhanced code 5.6.7).",
        "Fix or change the address; the same address will be refused again.",
        "RFC 5321 §4.2.3; RFC 6531 §3.5",
    ),
    ReplyCode(
        554, "Transaction failed",
        "The transaction failed for a reason no more specific code covers. As a "
        "greeting it means the server will not talk to this client at all.",
        "As the greeting to blocked clients, or after the end of DATA when the message "
        "is refused (spam, viruses, policy).",
        "Do not retry unchanged; read the text and enhanced code. If it was the "
        "greeting, send QUIT and disconnect.",
        _RFC5321,
    ),
    ReplyCode(
        555, "MAIL FROM/RCPT TO parameters not recognized or not implemented",
        "A parameter added to MAIL FROM or RCPT TO is unknown to the server or not "
        "supported by it. The address itself is fine; this is not a syntax error (501).",
        "When a client sends an extension parameter that the server did not advertise, "
        "such as NOTIFY= without DSN, or any parameter after HELO (Postfix: 555 5.5.4 "
        "Unsupported option: FOO=bar).",
        "Only send parameters for extensions listed in the server's EHLO reply.",
        "RFC 5321 §4.2.3, §4.1.1.11",
    ),
    ReplyCode(
        556, "Domain does not accept mail",
        "The recipient's domain has announced, with a null MX record, that it receives "
        "no mail at all.",
        "From a server that looked up the recipient's domain and found a null MX; it "
        "comes with enhanced code 5.1.10.",
        "Do not retry: the address can never work. Return the message to the sender.",
        "RFC 7504; RFC 7505 §4.1",
    ),
)
# fmt: on

#: One short label per reply code, used by :func:`short_meaning` for log lines.
_SHORT_LABELS: Mapping[int, str] = MappingProxyType(
    {
        211: "Status — system status",
        214: "Help — help text follows",
        220: "Ready — service ready",
        221: "Bye — closing connection",
        235: "OK — authentication succeeded",
        250: "OK — mail action completed",
        251: "OK — will forward to another address",
        252: "OK — cannot verify user, will try delivery",
        334: "Continue — send the next AUTH response",
        354: "Go ahead — send the message, end with a lone dot",
        421: "Try later — service unavailable, closing connection",
        432: "Try later — password transition needed",
        450: "Try later — mailbox unavailable",
        451: "Try later — local error at the server",
        452: "Try later — insufficient storage",
        454: "Try later — TLS or authentication temporarily unavailable",
        455: "Try later — cannot accommodate parameters",
        500: "Syntax error — command unrecognised",
        501: "Syntax error — bad parameters or arguments",
        502: "Refused — command not implemented",
        503: "Refused — bad sequence of commands",
        504: "Refused — command parameter not implemented",
        521: "Refused — host does not accept mail",
        530: "Refused — authentication (or STARTTLS) required",
        534: "Refused — authentication mechanism too weak",
        535: "Refused — authentication credentials invalid",
        538: "Historical — encryption required for this AUTH mechanism",
        550: "Rejected — mailbox unavailable or refused by policy",
        551: "Rejected — user not local",
        552: "Rejected — exceeded storage allocation",
        553: "Rejected — mailbox name not allowed",
        554: "Failed — transaction failed",
        555: "Rejected — MAIL/RCPT parameters not recognised",
        556: "Rejected — domain does not accept mail",
    }
)

REPLY_CODES: Mapping[int, ReplyCode] = MappingProxyType({r.code: r for r in _REPLY_TABLE})

#: Meaning of the first digit of a reply code (RFC 5321 §4.2.1).
_REPLY_CLASSES: Mapping[int, str] = MappingProxyType(
    {
        2: "2xx positive completion: the command succeeded and the client may send the next one",
        3: "3xx positive intermediate: so far so good, but the server needs more input "
        "before it can finish",
        4: "4xx transient negative completion: the command failed this time, but the same "
        "command may work if tried again later",
        5: "5xx permanent negative completion: the command failed and repeating it "
        "unchanged will fail again",
    }
)

#: Meaning of the second digit of a reply code (RFC 5321 §4.2.1).
_REPLY_CATEGORIES: Mapping[int, str] = MappingProxyType(
    {
        0: "x0z syntax: about the form of the command (unknown, malformed, not "
        "implemented or out of order)",
        1: "x1z information: answers a request for information such as status or help",
        2: "x2z connections: about the connection itself (greeting, closing, service availability)",
        3: "x3z unspecified: RFC 5321 gives it no meaning; in practice the AUTH "
        "extension uses it (235, 334, 432, 530, 534, 535, 538)",
        4: "x4z unspecified: RFC 5321 gives it no meaning and no common reply uses it",
        5: "x5z mail system: about how the receiving mail system handled the request "
        "(mailboxes, storage, policy)",
    }
)


# ---------------------------------------------------------------------------
# Enhanced status codes (IANA registry)
# ---------------------------------------------------------------------------


# The registry itself is package data: tutor/data/iana-smtp-enhanced-status-codes.csv, a
# verbatim copy (its README says where it came from). Titles, the reply codes each code is
# used with and the references are read from it; this module adds only the plain-language
# description of each code, so the registry is kept in one place.
_REGISTRY_CSV = "iana-smtp-enhanced-status-codes.csv"
_REGISTRY_COLUMNS = [
    "Code",
    "Sample Text",
    "Associated basic status code",
    "Description",
    "Reference",
    "Submitter",
    "Change Controller",
]
# The registry leaves X.6.10 (a deprecated duplicate) without a sample text.
_TITLES_THE_REGISTRY_LACKS: Mapping[str, str] = MappingProxyType(
    {"X.6.10": "Deprecated duplicate of X.6.8"}
)

# fmt: off
_TEACHING: Mapping[str, str] = MappingProxyType({
    # -- classes -----------------------------------------------------------
    "2.XXX.YYY":
        "The action being reported worked. The rest of the code may mention changes made on "
        "the way, such as a conversion.",
    "4.XXX.YYY":
        "The message is fine, but a temporary condition stopped or delayed it. Sending again "
        "later may succeed.",
    "5.XXX.YYY":
        "Sending the same message the same way will not work; something about the message or "
        "the destination has to change first.",
    # -- subjects ----------------------------------------------------------
    "X.0.YYY": "No particular subject applies, or the system cannot tell which one does.",
    "X.1.YYY":
        "About an address, the sender's or a recipient's: its syntax or whether it is valid. "
        "The sender can usually fix these.",
    "X.2.YYY":
        "About the recipient's mailbox itself, which is normally the recipient's to sort out.",
    "X.3.YYY": "About the receiving mail system as a whole, which its administrator looks after.",
    "X.4.YYY":
        "About the network and routing between mail systems: connections, DNS and other "
        "directory lookups.",
    "X.5.YYY":
        "About the SMTP conversation itself: bad commands, syntax, protocol versions, broken "
        "connections.",
    "X.6.YYY":
        "About the message content: its format, media types, or a conversion that was needed.",
    "X.7.YYY":
        "About security or policy: authentication, permission, filtering, encryption and "
        "anti-spam checks.",
    # -- X.0.Z: other ------------------------------------------------------
    "X.0.0":
        "Used when only the class (success, temporary or permanent failure) is known and "
        "nothing more specific fits.",
    # -- X.1.Z: addressing -------------------------------------------------
    "X.1.0": "Something about an address caused this report, and no more specific code applies.",
    "X.1.1":
        "The recipient's mailbox does not exist: the part before the @ is unknown at the "
        "destination.",
    "X.1.2": "The recipient's domain, the part after the @, does not exist or cannot receive mail.",
    "X.1.3": "The recipient address is malformed and cannot be parsed.",
    "X.1.4":
        "The recipient address matches more than one mailbox at the destination, so it cannot "
        "be delivered as written.",
    "X.1.5":
        "The server takes this recipient. Used in positive replies to RCPT TO; it says only "
        "that this server accepts the address now, not that the mailbox exists or that the "
        "message will arrive (mail it relays can still bounce later).",
    "X.1.6": "The address used to work but no longer takes mail, and no new address is known.",
    "X.1.7": "The sender address given in MAIL FROM is malformed.",
    "X.1.8": "The sender's domain does not exist or could not receive replies and bounces.",
    "X.1.9":
        "The address was fine, but the message was handed to a system that cannot report "
        "back, so no further status will come.",
    "X.1.10": "The recipient's domain publishes a null MX record, saying that it accepts no mail.",
    # -- X.2.Z: mailbox ----------------------------------------------------
    "X.2.0": "The mailbox exists, but something about it caused this report.",
    "X.2.1":
        "The mailbox exists but has been switched off for incoming mail, for a while or for "
        "good.",
    "X.2.2":
        "The recipient has used up their quota; once they delete some mail, delivery can work "
        "again.",
    "X.2.3":
        "The message is bigger than this mailbox allows, even if the system as a whole could "
        "take it.",
    "X.2.4": "The address is a mailing list and the list could not be expanded into its members.",
    # -- X.3.Z: mail system ------------------------------------------------
    "X.3.0":
        "The destination system normally takes mail, but something about it caused this "
        "report.",
    "X.3.1":
        "The receiving system as a whole is out of storage; the recipient cannot fix this by "
        "deleting mail.",
    "X.3.2":
        "The host is not taking mail, for example because of a shutdown, overload or "
        "maintenance, or because it never takes mail.",
    "X.3.3":
        "The destination cannot provide features requested for this message; this often "
        "happens at gateways between different mail systems.",
    "X.3.4": "The message is larger than the receiving system's size limit.",
    "X.3.5": "The receiving system is set up in a way that stops it from accepting this message.",
    "X.3.6":
        "The message was accepted, but not at the priority the sender asked for; the reply "
        "text says which priority is used.",
    # -- X.4.Z: network and routing ----------------------------------------
    "X.4.0":
        "Something went wrong with the network or routing that no more specific code "
        "describes.",
    "X.4.1": "The next mail server could not be reached: the connection attempt got no answer.",
    "X.4.2": "A connection was made but failed or timed out before the message got through.",
    "X.4.3": "A directory service such as DNS was unavailable, so the message could not be routed.",
    "X.4.4":
        "The mail system could not work out where to send the message next, for instance "
        "because the domain has no usable DNS records.",
    "X.4.5": "The mail system is too busy to deliver the message just now.",
    "X.4.6":
        "The message has been passed along too many times, a sign of a forwarding or routing "
        "loop.",
    "X.4.7": "The message spent too long in queues or in transit and has been given up on.",
    # -- X.5.Z: mail delivery protocol -------------------------------------
    "X.5.0": "Something went wrong in the SMTP exchange that no more specific code describes.",
    "X.5.1": "A command was sent that the server does not support or did not expect at that point.",
    "X.5.2": "A command could not be understood, because it is unknown or malformed.",
    "X.5.3":
        "The message names more recipients than the server takes at once; the rest should go "
        "in another transaction.",
    "X.5.4": "A valid command carried arguments that are out of range or not supported.",
    "X.5.5": "The two sides speak protocol versions that do not match and could not agree on one.",
    "X.5.6": "During AUTH the client sent a response line longer than the server accepts.",
    # -- X.6.Z: message content or media -----------------------------------
    "X.6.0":
        "Something about the content made the message undeliverable, and no more specific "
        "code describes it.",
    "X.6.1":
        "The message uses a media type that the delivery protocol or the next system cannot "
        "handle.",
    "X.6.2":
        "The content would have to be converted to be delivered, but conversion is not "
        "allowed for this message.",
    "X.6.3": "The content would have to be converted, but a system on the way cannot do it.",
    "X.6.4": "The message was delivered, but a conversion on the way lost some of its data.",
    "X.6.5": "A needed conversion of the content was tried and did not work.",
    "X.6.6":
        "The content was meant to be fetched from another system (as with BURL) and could not "
        "be.",
    "X.6.7":
        "An address with non-ASCII characters was given where such addresses are not allowed, "
        "usually because SMTPUTF8 is not in use.",
    "X.6.8":
        "The server would have to answer in UTF-8 (to show a mailbox name, say), but the "
        "client has not said it can cope with that.",
    "X.6.9":
        "The message has UTF-8 header fields and cannot be passed on to some recipients, so "
        "it is refused after the final dot of DATA.",
    "X.6.10":
        "Withdrawn because it repeated X.6.8; use that code instead. (The registry gives it "
        "no title.)",
    # -- X.7.Z: security or policy -----------------------------------------
    "X.7.0":
        "A security matter caused this report and no more specific code fits; common with "
        "'authentication required' and TLS replies.",
    "X.7.1":
        "The sender may not send to this recipient, because of filtering, relay rules or "
        "another local policy.",
    "X.7.2": "The sender is not allowed to post to this mailing list.",
    "X.7.3":
        "Delivery needed a conversion between secure messaging formats, and that could not be "
        "done.",
    "X.7.4": "The message relies on security features that the delivery protocol cannot handle.",
    "X.7.5":
        "A system that should verify or decrypt the message could not, for example because a "
        "key was missing.",
    "X.7.6":
        "A system that should verify or decrypt the message does not support the algorithm "
        "used.",
    "X.7.7": "The message could not be validated because it had been damaged or altered.",
    "X.7.8": "Login failed because the credentials were wrong or not enough.",
    "X.7.9": "Login failed because the chosen mechanism is weaker than this user's policy allows.",
    "X.7.10":
        "The requested login needs an encrypted connection first; this mostly concerns "
        "mechanisms that send passwords in the clear.",
    "X.7.11":
        "The chosen login mechanism may only be used once the connection is encrypted, for "
        "example after STARTTLS. Its reply code 538 is kept for historical purposes only; "
        "servers today answer 503 or 504 instead.",
    "X.7.12":
        "The user has to move to the requested login mechanism, normally by logging in once "
        "with PLAIN.",
    "X.7.13":
        "The account exists but an administrator has disabled it, for example after abuse or "
        "non-payment.",
    "X.7.14":
        "The submission server needs a configured trust relationship with another server "
        "before it may fetch content from it (as with BURL).",
    "X.7.15":
        "The message's priority is below the lowest this server accepts, possibly only for "
        "now.",
    "X.7.16":
        "The message is too large to be taken at the requested priority; a lower priority or "
        "a smaller message may be accepted.",
    "X.7.17":
        "The sender asked (with RRVS) for delivery only if the mailbox had not changed hands "
        "since a given date, and it has. Used with any 5xx reply.",
    "X.7.18":
        "During an RRVS check the receiver found that the whole domain has changed hands "
        "since the given date. Used with any 5xx reply.",
    "X.7.19":
        "The receiver could not carry out the RRVS ownership check the sender asked for. Used "
        "with any 5xx reply.",
    "X.7.20": "The message has no DKIM signature that verifies, and local policy demands one.",
    "X.7.21":
        "Some DKIM signatures verify, but none is acceptable under local policy, for instance "
        "because of the signing domain.",
    "X.7.22":
        "Valid DKIM signatures exist, but none comes from the domain in the From address, as "
        "local policy requires.",
    "X.7.23":
        "The SPF check of the sending host gave a 'fail' result, and local policy rejects "
        "such mail.",
    "X.7.24": "Checking SPF ran into an error, such as a DNS problem or a broken SPF record.",
    "X.7.25":
        "The client's IP address failed a reverse DNS check (for example no PTR record, or "
        "one that does not match), against local policy.",
    "X.7.26":
        "The message failed more than one sender-authentication check, such as SPF and DKIM; "
        "the reply does not say which. Receivers often refuse mail that fails DMARC (RFC "
        "9989) with 550 5.7.26.",
    "X.7.27":
        "The sender's domain publishes a null MX, so bounces could never reach it, and this "
        "server refuses mail from such senders.",
    "X.7.28": "The message looks like part of a flood of similar abusive messages.",
    "X.7.29": "The message's ARC (Authenticated Received Chain) header fields did not validate.",
    "X.7.30":
        "The message demands REQUIRETLS, but no server it could be passed to next supports "
        "it, so it cannot be forwarded.",
})
# fmt: on


def _registry_rows() -> list[dict[str, str]]:
    """The rows of the IANA registry as shipped with the tutor, in registry order."""
    text = (files("tutor") / "data" / _REGISTRY_CSV).read_text(encoding="utf-8")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    if reader.fieldnames != _REGISTRY_COLUMNS:
        raise ValueError(f"{_REGISTRY_CSV}: unexpected columns {reader.fieldnames}")
    return list(reader)


# "[RFC7372], Section 3.3 (Standards Track)" or "[draft-levine-mailbomb-header-00]"
_REFERENCE_RE = re.compile(r"\[RFC(\d+)\](?:, Section ([\d.]+))?|\[(draft-[\w-]+)\]")


def _citation(reference: str) -> str:
    """IANA's reference column as learners read it: "RFC 7372 §3.3; RFC 6376"."""
    cited = []
    for rfc, section, draft in _REFERENCE_RE.findall(reference):
        if draft:
            cited.append(draft)
        else:
            cited.append(f"RFC {rfc}" + (f" §{section}" if section else ""))
    return "; ".join(cited)


def _used_with(basic_codes: str) -> tuple[int, ...]:
    """The reply codes named in the registry's column, which also holds "451/550", "5XX",
    "Any" and "Not given"; only the three-digit codes count."""
    return tuple(int(n) for n in re.findall(r"\b[2-5]\d\d\b", basic_codes))


def _enhanced_entry(row: dict[str, str]) -> EnhancedCode:
    code = row["Code"]
    return EnhancedCode(
        code=code,
        title=row["Sample Text"] or _TITLES_THE_REGISTRY_LACKS[code],
        description=_TEACHING[code],
        rfc=_citation(row["Reference"]),
        used_with=_used_with(row["Associated basic status code"]),
    )


ENHANCED_CODES: Mapping[str, EnhancedCode] = MappingProxyType(
    {row["Code"]: _enhanced_entry(row) for row in _registry_rows()}
)

# class . subject . detail, where the class may be "X" and subject/detail may be wildcards
_ENHANCED_RE = re.compile(r"([245X])\.(\d{1,3}|X{1,3})\.(\d{1,3}|X{1,3}|Y{1,3})")


def _parse_enhanced(code: str) -> tuple[str, str | None, str | None] | None:
    """Split an enhanced code into (class, subject, detail); wildcards become None."""
    match = _ENHANCED_RE.fullmatch(code.strip().upper())
    if match is None:
        return None
    klass, subject, detail = match.groups()
    return (
        klass,
        str(int(subject)) if subject.isdigit() else None,
        str(int(detail)) if detail.isdigit() else None,
    )


# ---------------------------------------------------------------------------
# Look-ups
# ---------------------------------------------------------------------------


def reply_code(code: int) -> ReplyCode | None:
    """Return the catalogue entry for a basic reply code, or None if it is not listed."""
    return REPLY_CODES.get(code)


def _digits(code: int) -> tuple[int, int, int] | None:
    if not 100 <= code <= 999:
        return None
    return code // 100, code // 10 % 10, code % 10


def reply_class(code: int) -> str:
    """Explain the first digit of a reply code, e.g. ``"2xx positive completion: ..."``."""
    digits = _digits(code)
    if digits is None or digits[0] not in _REPLY_CLASSES:
        return (
            f"unknown class: {code} is not an SMTP reply code "
            "(those have three digits and start with 2, 3, 4 or 5)"
        )
    return _REPLY_CLASSES[digits[0]]


def reply_category(code: int) -> str:
    """Explain the second digit of a reply code, e.g. ``"x5z mail system: ..."``."""
    digits = _digits(code)
    if digits is None:
        return f"unknown category: {code} is not a three-digit reply code"
    if digits[1] not in _REPLY_CATEGORIES:
        return f"unknown category: the second digit of {code} should be between 0 and 5"
    return _REPLY_CATEGORIES[digits[1]]


def enhanced_code(code: str) -> EnhancedCode | None:
    """Return the registry entry for an enhanced status code, or None if unknown.

    Accepts a concrete code (``"5.1.1"``, ``"4.7.26"``), the class-free form used by
    the registry (``"X.1.1"``), a class (``"5.XXX.YYY"`` or ``"5.X.X"``) or a subject
    (``"X.1.YYY"`` or ``"X.1.X"``). Case and surrounding spaces do not matter.
    """
    exact = ENHANCED_CODES.get(code.strip().upper())
    if exact is not None:
        return exact
    parts = _parse_enhanced(code)
    if parts is None:
        return None
    klass, subject, detail = parts
    if subject is not None and detail is not None:
        return ENHANCED_CODES.get(f"X.{subject}.{detail}")
    if subject is not None:
        return ENHANCED_CODES.get(f"X.{subject}.YYY")
    if detail is None and klass != "X":
        return ENHANCED_CODES.get(f"{klass}.XXX.YYY")
    return None


def enhanced_class(code: str) -> str:
    """Explain the class (first) part of an enhanced status code."""
    parts = _parse_enhanced(code)
    if parts is None:
        return f"unknown class: {code.strip()!r} is not an enhanced status code"
    if parts[0] == "X":
        return (
            "X: no class given; the registry lists codes without one, and a real "
            "reply puts 2 (success), 4 (temporary) or 5 (permanent) here"
        )
    entry = ENHANCED_CODES[f"{parts[0]}.XXX.YYY"]
    return f"{entry.code} {entry.title}: {entry.description}"


def enhanced_subject(code: str) -> str:
    """Explain the subject (middle) part of an enhanced status code."""
    parts = _parse_enhanced(code)
    if parts is None:
        return f"unknown subject: {code.strip()!r} is not an enhanced status code"
    subject = parts[1]
    if subject is None:
        return "no subject given"
    entry = ENHANCED_CODES.get(f"X.{subject}.YYY")
    if entry is None:
        return f"unknown subject: {subject} is not in the registry (subjects run from 0 to 7)"
    return f"{entry.code} {entry.title}: {entry.description}"


def _lower_first(title: str) -> str:
    """Lower-case a title's first letter, but leave acronyms such as "SPF" alone."""
    if len(title) > 1 and title[1].islower():
        return title[0].lower() + title[1:]
    return title


def short_meaning(code: int, enhanced: str | None = None) -> str:
    """One line for a log, e.g. ``short_meaning(250, "2.1.5")`` gives
    ``"OK — mail action completed (2.1.5: destination address valid)"``.

    Unknown reply codes are described by their first digit; unknown or malformed
    enhanced codes are flagged as such, as is an enhanced code whose class does not
    match the reply code's first digit.
    """
    label = _SHORT_LABELS.get(code)
    if label is None:
        digits = _digits(code)
        if digits is not None and digits[0] in _REPLY_CLASSES:
            kind = _REPLY_CLASSES[digits[0]].split(":", 1)[0]
            label = f"Unlisted reply {code} — treat as {kind}"
        else:
            label = f"Invalid reply code {code}"
    if not enhanced or not enhanced.strip():
        return label

    text = enhanced.strip()
    parts = _parse_enhanced(text)
    digits = _digits(code)
    if parts is not None and parts[1:] == ("0", "0") and digits and parts[0] == str(digits[0]):
        return label  # X.0.0 "other undefined status" adds nothing to the reply code
    entry = enhanced_code(text)
    if parts is None:
        detail = "not an enhanced status code"
    elif entry is None:
        detail = "not in the IANA registry"
    else:
        detail = _lower_first(entry.title)
    if parts is not None and parts[0] != "X" and digits is not None and int(parts[0]) != digits[0]:
        detail += f"; its class {parts[0]} does not match reply {code}"
    return f"{label} ({text}: {detail})"
