"""The enhanced status code, read together with the reply code; it works without the
conversation too (a bounce)."""

from __future__ import annotations

from tutor.explain.annotate.note import Context, Note, Rule
from tutor.explain.annotate.sequence import bad_sequence

R5321 = "RFC 5321"


def by_status(c: Context) -> Note | None:
    if c.code == 421:
        return _closing(c)
    if c.code == 503:
        return bad_sequence(c)
    if 400 <= c.code < 500 and ("greylist" in c.text or "graylist" in c.text):
        return Note(
            "Greylisted: the server turns away a first attempt and waits for a retry",
            "A real mail server retries after a few minutes and gets through; much spam "
            "software never retries. Only a temporary (4xx) reply makes this work.",
            f"RFC 6647; {R5321} §4.5.4.1",
            "Retry in a few minutes (a mail server does this by itself).",
        )
    if c.code == 530:
        return _auth_required(c)
    rule = _STATUS.get(c.status or "")
    return rule(c) if rule else None


def _closing(c: Context) -> Note:
    text, status = c.text, c.status
    advice = "Reconnect later; a mail client keeps the message queued and retries."
    if status == "X.4.2" or "timeout" in text or "timed out" in text or "idle" in text:
        headline = "Idle timeout: the server stopped waiting for you and hung up"
        detail = (
            "A server waits only so long between commands (RFC 5321 suggests at least "
            "5 minutes). Nothing unfinished was kept."
        )
        rfc = f"{R5321} §4.5.3.2.7, §3.8"
    elif "connections" in text:
        headline = "Too many connections: the server is full and hangs up at once"
        detail = "It has reached its limit of simultaneous clients."
        rfc = f"{R5321} §3.8"
    elif "too many" in text:
        headline = "Too many errors: the server hangs up on a client that keeps failing"
        detail = "Servers do this to clients that send a stream of bad or unknown commands."
        rfc = f"{R5321} §3.8"
    elif "busy" in text:
        headline = "Busy: the server takes no mail now and hangs up"
        detail = (
            "It is up but not accepting messages (overloaded, or in maintenance). A "
            "sending server tries the domain's next MX host at once, and this one later."
        )
        rfc = f"{R5321} §3.8, §5.1"
        advice = "Try the domain's next MX host now; come back to this one later."
    elif status == "X.3.2" or "shutting down" in text or "shutdown" in text:
        headline = "The server is shutting down and closes the connection"
        detail = "An administrator stopped or restarted the service."
        rfc = f"{R5321} §3.8"
    else:
        headline = "Service not available: the server is closing the connection"
        detail = "A temporary condition (overload, maintenance, policy) ends the session."
        rfc = f"{R5321} §3.8, §4.2.3"
    detail += " Any message not yet answered with 250 was not accepted."
    return Note(headline, detail, rfc, advice)


def _auth_required(c: Context) -> Note:
    if "tls" in c.text:
        return Note(
            "Encryption required: STARTTLS first",
            "This server takes no mail (or no login) over an unencrypted connection.",
            "RFC 3207 §4",
            "STARTTLS, then EHLO again.",
        )
    return Note(
        "Authentication required: log in first",
        "This server takes mail only from its own users, typically on the submission port 587.",
        "RFC 4954 §6; RFC 6409",
        "STARTTLS, EHLO, AUTH, then MAIL FROM again.",
    )


def _address_rule(headline: str, detail: str, rfc: str, advice: str | None = None) -> Rule:
    """A rule keyed by enhanced code; "{who}" in the headline names the address."""

    def rule(c: Context) -> Note | None:
        return Note(headline.format(who=c.who()), detail, rfc, advice)

    return rule


def _relay_or_policy(c: Context) -> Note | None:
    if c.code < 500 and "relay" not in c.text:
        return None  # 4.7.1 is also a greylisting and rate-limit code: see the text
    if "relay" in c.text:
        return Note(
            f"Relay denied: this server does not take mail for {c.who()} from you",
            "A server accepts mail for its own domains, and relays elsewhere only for "
            "its logged-in users. Relaying for anyone (an open relay) is how spam spreads.",
            f"{R5321} §3.6, §7.9; RFC 3463 §3.8",
            "Send to a local address, or log in (STARTTLS, EHLO, AUTH) first.",
        )
    return Note(
        "Refused by policy: delivery not authorized",
        "The server's rules refuse this sender, recipient or message; the text after "
        "the code usually says which rule.",
        "RFC 3463 §3.8",
        "Do not retry unchanged; if you think it is wrong, contact the postmaster.",
    )


def _authentication_failed(what: str, rfc: str) -> Rule:
    def rule(c: Context) -> Note | None:
        return Note(
            f"Refused: {what}",
            "The receiver checks that mail really comes from the domain it claims. "
            "The fix is on the sending domain: its SPF record, DKIM signing, DMARC policy.",
            rfc,
            "The sender's administrator must fix the domain's authentication; resending "
            "will not help.",
        )

    return rule


def _temporary_or_permanent(c: Context) -> str:
    return "Try again later." if c.code < 500 else "Do not retry unchanged."


def _mailbox_full(c: Context) -> Note | None:
    return Note(
        f"Mailbox full: {c.who()} is over quota",
        "The mailbox exists but has no room; once its owner deletes mail, delivery works again.",
        "RFC 3463 §3.3",
        _temporary_or_permanent(c),
    )


def _too_big(c: Context) -> Note | None:
    limit = c.state.extensions.get("SIZE", "")
    known = f" The EHLO reply gave the limit: SIZE {limit}." if limit else ""
    return Note(
        "Message too big for this server",
        f"It is over the size limit, so none of it is stored.{known}",
        f"RFC 3463 §3.4; {R5321} §4.5.3.1.9; RFC 1870 §6",
        "Send it smaller, for example with a link instead of an attachment.",
    )


def too_many_recipients(c: Context) -> Note | None:
    return Note(
        "Too many recipients for one message",
        "The recipients accepted so far stand; the server takes no more in this transaction.",
        f"{R5321} §4.5.3.1.10; RFC 3463 §3.6",
        "Send DATA for these, then a new transaction for the rest.",
    )


_STATUS: dict[str, Rule] = {
    "X.1.1": _address_rule(
        "No such user: {who} does not exist at this domain",
        "The server knows the domain but not the mailbox, the part before the @. "
        "Check the spelling: retrying will not help.",
        f"{R5321} §4.2.2; RFC 3463 §3.2",
        "Correct the address.",
    ),
    "X.1.2": _address_rule(
        "Bad domain: the part after the @ cannot receive mail",
        "The destination domain does not exist or has no mail server.",
        "RFC 3463 §3.2",
        "Check the domain name.",
    ),
    "X.1.3": _address_rule(
        "Malformed recipient address: {who}",
        "The server could not read it as an address: RFC 5321 wants local-part@domain, "
        "in angle brackets.",
        f"{R5321} §4.1.2; RFC 3463 §3.2",
        "Fix the address; the same one will be refused again.",
    ),
    "X.1.6": _address_rule(
        "Mailbox moved: {who} no longer takes mail, and no new address is known",
        "The address used to work.",
        "RFC 3463 §3.2",
    ),
    "X.1.7": _address_rule(
        "Malformed sender address: {who}",
        "The reverse-path of MAIL FROM is not a valid address: RFC 5321 wants "
        "local-part@domain in angle brackets, or <> for the null sender.",
        f"{R5321} §4.1.2; RFC 3463 §3.2",
        "Fix the sender address.",
    ),
    "X.1.8": _address_rule(
        "Bad sender domain: bounces to {who} could never arrive",
        "The sender's domain does not exist or cannot receive mail, so the server "
        "refuses mail that it could never report failures for.",
        "RFC 3463 §3.2",
    ),
    "X.1.10": _address_rule(
        "Null MX: the domain of {who} accepts no mail at all",
        "Its DNS publishes a null MX record, a deliberate statement that nothing can "
        "ever be delivered there.",
        "RFC 7505 §4.1; RFC 7504",
        "Do not retry: the address can never work.",
    ),
    "X.2.1": _address_rule(
        "Mailbox disabled: {who} is not taking mail",
        "The mailbox exists but has been switched off, for a while or for good.",
        "RFC 3463 §3.3",
    ),
    "X.2.2": _mailbox_full,
    "X.2.3": _address_rule(
        "Message too big for this mailbox",
        "The mailbox has its own size limit, lower than the system's.",
        "RFC 3463 §3.3",
        "Send it smaller.",
    ),
    "X.3.1": lambda c: Note(
        "The server is out of storage",
        "The receiving system as a whole cannot store the message now; nothing was kept.",
        "RFC 3463 §3.4",
        _temporary_or_permanent(c),
    ),
    "X.3.4": _too_big,
    "X.5.3": too_many_recipients,
    "X.6.7": _address_rule(
        "Non-ASCII address needs SMTPUTF8",
        "An address with characters outside ASCII may be used only when MAIL FROM "
        "carries the SMTPUTF8 parameter and the server offered it.",
        "RFC 6531 §3.5",
        "Add SMTPUTF8 to MAIL FROM, if the EHLO reply lists it.",
    ),
    "X.7.1": _relay_or_policy,
    "X.7.8": lambda c: Note(
        "Login failed: wrong user name or password",
        "The server refused the credentials.",
        "RFC 4954 §6",
        "Check them before trying again.",
    ),
    "X.7.11": lambda c: Note(
        "Encrypt first: this login mechanism needs TLS",
        "It would send the password readable by anyone on the path. (Its reply code "
        "538 is historical, RFC 4954 §6; servers today answer 503 or 504.)",
        "RFC 4954 §6",
        "STARTTLS, then EHLO again, then AUTH.",
    ),
    "X.7.13": _address_rule(
        "Account disabled",
        "The account exists but an administrator switched it off.",
        "RFC 5248",
    ),
    "X.7.20": _authentication_failed("no passing DKIM signature", "RFC 7372 §3.1"),
    "X.7.21": _authentication_failed("no acceptable DKIM signature", "RFC 7372 §3.1"),
    "X.7.22": _authentication_failed("no DKIM signature from the From: domain", "RFC 7372 §3.1"),
    "X.7.23": _authentication_failed(
        "SPF says this server may not send for the sender's domain", "RFC 7372 §3.2; RFC 7208"
    ),
    "X.7.24": lambda c: Note(
        "SPF could not be checked",
        "Evaluating the sender domain's SPF record failed, often on DNS.",
        "RFC 7372 §3.2; RFC 7208",
        _temporary_or_permanent(c),
    ),
    "X.7.25": lambda c: Note(
        "Refused: the sending server's address failed the reverse DNS check",
        "Its IP address has no PTR record, or one that does not lead back to it.",
        "RFC 7372 §3.3",
        "The sending server's operator must fix its reverse DNS.",
    ),
    "X.7.26": _authentication_failed(
        "the message failed sender authentication (SPF, DKIM, DMARC)", "RFC 7372 §3.4; RFC 9989"
    ),
    "X.7.27": _address_rule(
        "Sender domain has a null MX: bounces could never reach {who}",
        "The sender's domain says it accepts no mail, so the server refuses mail from "
        "it: failures could never be reported.",
        "RFC 7505 §4.1, §4.2",
        "Use a sender address on a domain that receives mail.",
    ),
}
