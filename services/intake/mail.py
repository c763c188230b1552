"""E-mail in: an SMTP listener (aiosmtpd) that turns a mail to the idea address into an idea.
Subject -> title, text body -> description, sender -> submitter. Mail that cannot become an idea is refused
with an SMTP reply that says why; when Kafka is unavailable the reply is temporary (4xx), so the sending
server tries again, and the Message-ID makes that retry land on the same idea.

Only the Kiruna municipal group's own people send ideas this way: the sender (the From address, and the envelope
MAIL FROM) must be in the mail domains of a catalogue organisation, and a mail that the receiving mail server
marked as failing DMARC (its ``Authentication-Results`` header, RFC 8601) is refused. Intake does no SPF, DKIM or
DMARC itself: a real deployment receives mail on the organisation's own mail server, which checks them, adds
``Authentication-Results`` and relays to this port; nothing else should reach the port."""

from __future__ import annotations

import asyncio
import contextlib
import email.policy
import email.utils
import html
import os
import re
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from email.message import EmailMessage

from aiosmtpd.smtp import SMTP, Envelope, Session
from prometheus_client import CollectorRegistry, Counter
from pydantic import ValidationError
from redis.exceptions import RedisError

from services.intake.errors import IdempotencyPending, InvalidField
from services.intake.handlers import Intake
from services.intake.models import IdeaIn, SubmitterIn
from services.intake.settings import IntakeSettings
from services.intake.store import IdempotencyMismatch
from shared.catalogue import Catalogue
from shared.kafka import KafkaUnavailable
from shared.sealing import mask_email

# Why a mail was refused: the label of kiruna_intake_mail_refused_total (all start at 0).
REFUSAL_REASONS = ("recipient", "sender", "domain", "dmarc", "content", "unavailable", "rate-limited")
# Mails read (parsed, HTML made text) at the same time, each in a worker thread, never on the event loop.
PARSING_AT_ONCE = 2
# DMARC results that refuse a mail. permerror too: the sender's DMARC record cannot be used, so the From address
# cannot be authenticated, and as the domains are the group's own, the fix is theirs. temperror (a DNS timeout at
# the receiving server) is accepted: the result in the header will not change if the mail is sent again.
REFUSED_DMARC_RESULTS = frozenset({"fail", "permerror"})


class IdeaMailbox:
    """aiosmtpd handler: accepts MAIL only from the group's mail domains, RCPT only for the idea address, and
    makes each message that passes DMARC an idea."""

    def __init__(self, intake: Intake, settings: IntakeSettings, *, registry: CollectorRegistry) -> None:
        self.intake = intake
        self.address = settings.idea_address.lower()
        # INTAKE_MAIL_AUTHSERV_ID: trust only Authentication-Results added by this server ("" trusts every one)
        self.authserv_id = str(getattr(settings, "mail_authserv_id", "") or "").strip().lower()
        self.refused = Counter(
            "kiruna_intake_mail_refused",
            "Mail refused at SMTP level, by reason (unavailable is the temporary 4xx; the rest are 5xx)",
            ["reason"],
            registry=registry,
        )
        for reason in REFUSAL_REASONS:
            self.refused.labels(reason)
        self.per_sender_per_hour = settings.mail_per_sender_per_hour
        self.per_connection = settings.mail_per_connection
        self.parsing = asyncio.Semaphore(PARSING_AT_ONCE)

    def refuse(self, refusal: Refusal, session: Session) -> str:
        """Count and log a refusal (the sender's domain, not the address; any address in the reply masked) and
        return its SMTP reply."""
        self.refused.labels(refusal.reason).inc()
        peer = session.peer[0] if isinstance(session.peer, tuple) else str(session.peer)
        facts = {
            "reason": refusal.reason,
            "sender_domain": refusal.domain,
            "peer": peer,
            "reply": mask_email(refusal.reply),
        }
        logger = self.intake.logger
        log = logger.info if refusal.reason in ("recipient", "content") else logger.warning  # user's slip vs. guard
        log("mail refused", extra=facts)
        return refusal.reply

    async def handle_MAIL(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        refusal = envelope_sender_refusal(address, mail_domain_owners(self.intake.catalogue))
        if refusal is not None:
            return self.refuse(refusal, session)
        # Rate limits: mails per connection (then 421, and the connection ends), per envelope sender and hour.
        session.kiruna_mails = getattr(session, "kiruna_mails", 0) + 1
        domain = mail_domain(address)
        if session.kiruna_mails > self.per_connection:
            reply = f"421 4.7.0 At most {self.per_connection} mails per connection; closing, connect again to send more"
            asyncio.get_running_loop().call_soon(server.transport.close)  # after the reply is written
            return self.refuse(Refusal("rate-limited", reply, domain), session)
        try:
            sender = self.intake.keyring.pseudonym(address)  # counted by pseudonym: no address in Redis
            wait = await self.intake.store.count(f"mail-sender:{sender}", self.per_sender_per_hour, 3600)
        except (RedisError, TimeoutError):
            reply = "451 4.3.0 Mail cannot be taken just now; please try again later"
            return self.refuse(Refusal("unavailable", reply, domain), session)
        if wait is not None:
            reply = (
                f"451 4.7.1 Too many mails from this sender: at most {self.per_sender_per_hour} per hour; "
                f"try again in {wait} s"
            )
            return self.refuse(Refusal("rate-limited", reply, domain), session)
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if address.lower() != self.address:
            reply = f"550 5.1.1 <{_ascii(address)}>: no such mailbox here; send ideas to <{self.address}>"
            return self.refuse(Refusal("recipient", reply, mail_domain(envelope.mail_from or "")), session)
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        # Parsing a mail is CPU work that grows with the mail (up to the SMTP data limit): it runs in a worker
        # thread, never on the event loop, so the HTTP API and the consumers go on meanwhile.
        content = envelope.original_content or envelope.content or b""
        owners = mail_domain_owners(self.intake.catalogue)
        async with self.parsing:
            read = await asyncio.to_thread(read_mail, bytes(content), owners, self.authserv_id)
        if isinstance(read, Refusal):
            return self.refuse(read, session)
        try:
            accepted = await self.intake.submit(
                read.idea, idempotency_key=f"mail:{read.message_id}" if read.message_id else None
            )
        except InvalidField as exc:
            return self.refuse(Refusal("content", f"550 5.6.0 {_ascii(str(exc))}", read.domain), session)
        except IdempotencyMismatch:
            reply = "550 5.6.0 This Message-ID was already used for a different idea; send the mail as a new one"
            return self.refuse(Refusal("content", reply, read.domain), session)
        except IdempotencyPending as exc:
            reply = f"451 4.3.0 This mail is being stored by an earlier attempt; try again in {exc.retry_after_s} s"
            return self.refuse(Refusal("unavailable", reply, read.domain), session)
        except (KafkaUnavailable, RedisError, TimeoutError):
            reply = "451 4.3.0 The idea could not be stored just now; please try again later"
            return self.refuse(Refusal("unavailable", reply, read.domain), session)
        return f"250 2.0.0 Thank you: your idea is stored as {accepted.idea_id}; follow it at {accepted.status_url}"


@dataclass(frozen=True)
class MailIdea:
    idea: IdeaIn
    message_id: str
    domain: str


def read_mail(content: bytes, owners: Mapping[str, tuple[str, ...]], authserv_id: str = "") -> MailIdea | Refusal:
    """The idea a mail's bytes carry, or why it cannot be one (pure; CPU-bound: callers run it off the loop)."""
    message = email.message_from_bytes(content, _class=EmailMessage, policy=email.policy.default)
    sender = sender_of(message, owners)
    if isinstance(sender, Refusal):
        return sender
    dmarc = dmarc_refusal(message.get_all("authentication-results", []), authserv_id, sender.domain)
    if dmarc is not None:
        return dmarc
    try:
        idea = idea_from_mail(message, sender)
    except ValidationError as exc:
        return Refusal("content", "550 5.6.0 " + _reasons(exc), sender.domain)
    except ValueError as exc:  # a body too large to read as text
        return Refusal("content", f"550 5.6.0 body: {_ascii(str(exc))}", sender.domain)
    return MailIdea(idea, (message.get("message-id") or "").strip(), sender.domain)


# --- who may send (pure) --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Refusal:
    reason: str  # one of REFUSAL_REASONS
    reply: str  # the SMTP reply, ASCII
    domain: str = ""  # the sender's domain, logged instead of the address


@dataclass(frozen=True)
class Sender:
    name: str
    address: str
    domain: str
    organisation: str | None  # set when the domain belongs to one organisation only


def mail_domain(address: str) -> str:
    """The lower-case domain of an e-mail address; '' when it has none."""
    local, at, domain = address.strip().rpartition("@")
    return domain.rstrip(".").lower() if at and local else ""


def mail_domain_owners(catalogue: Catalogue) -> dict[str, tuple[str, ...]]:
    """Each mail domain of the catalogue -> the organisations that use it."""
    owners: dict[str, tuple[str, ...]] = {}
    for organisation in catalogue.organisations:
        for domain in organisation.mail_domains:
            owners[domain] = (*owners.get(domain, ()), organisation.id)
    return owners


def _foreign(domain: str, owners: Mapping[str, tuple[str, ...]]) -> Refusal:
    accepted = ", ".join(sorted(owners)) or "none configured"
    who = f"{_ascii(domain)} is" if domain else "an address without a domain is"
    reply = (
        f"550 5.7.1 Ideas by e-mail are taken only from the addresses of the Kiruna municipal group "
        f"({accepted}); {who} not one of them"
    )
    return Refusal("domain", reply, _ascii(domain)[:100])


def envelope_sender_refusal(address: str, owners: Mapping[str, tuple[str, ...]]) -> Refusal | None:
    """MAIL FROM must be in a domain of the group (any organisation's: a mail may leave through a sister company's
    server or carry a bounce address of its own); the empty sender of bounces and auto-replies is no idea."""
    if address in ("", "<>"):  # aiosmtpd passes MAIL FROM:<> as "<>"
        return Refusal("sender", "550 5.7.1 Mail with an empty sender (a bounce or an auto-reply) is not an idea")
    domain = mail_domain(address)
    return None if domain in owners else _foreign(domain, owners)


def sender_of(message: EmailMessage, owners: Mapping[str, tuple[str, ...]]) -> Sender | Refusal:
    """The one From address, in a domain of the group (exactly, case-insensitive: a subdomain only if listed).
    Two parsers must read the same single address (Python's lenient one reads ``a@kiruna.se <b@evil.com>`` as
    a@kiruna.se, where mail programs show b@evil.com): a From header that can be read two ways is refused."""
    raw = [value for key, value in message.raw_items() if key.lower() == "from"]
    plain = email.utils.getaddresses(raw)
    parsed = [a for header in message.get_all("from", []) for a in getattr(header, "addresses", ())]
    if len(plain) != 1 or not plain[0][1] or len(parsed) != 1 or parsed[0].addr_spec.lower() != plain[0][1].lower():
        count = len([address for _, address in plain if address])
        return Refusal("sender", f"550 5.7.1 The mail must have exactly one readable From address (found {count})")
    address = parsed[0].addr_spec
    domain = mail_domain(address)
    organisations = owners.get(domain)
    if not organisations:
        return _foreign(domain, owners)
    name = parsed[0].display_name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return Sender(
        name=name or address.split("@")[0],
        address=address,
        domain=domain,
        organisation=organisations[0] if len(organisations) == 1 else None,
    )


# --- DMARC, as the receiving server saw it (pure) -------------------------------------------------------------

_METHOD_RESULT = re.compile(r"\s*([A-Za-z0-9][A-Za-z0-9_.-]*)\s*(?:/\s*[0-9]+\s*)?=\s*([A-Za-z0-9][A-Za-z0-9_.-]*)")


@dataclass(frozen=True)
class AuthenticationResults:
    """One Authentication-Results header: who added it and each method's result, lower-case."""

    authserv_id: str
    results: tuple[tuple[str, str], ...]  # (method, result), e.g. ("dmarc", "fail")

    def of(self, method: str) -> tuple[str, ...]:
        return tuple(result for name, result in self.results if name == method)


def _segments(value: str) -> list[str]:
    """The header split at ';', without its (nested) comments; quoted strings are kept, with their quotes."""
    segments, current, depth, quoted, escaped = [], [], 0, False, False
    for char in value:
        if escaped:
            escaped = False
            if depth == 0:
                current.append(char)
        elif char == "\\" and (quoted or depth):
            escaped = True
            if depth == 0:
                current.append(char)
        elif quoted:
            quoted = char != '"'
            current.append(char)
        elif char == "(":
            depth += 1
        elif char == ")" and depth:
            depth -= 1
            if depth == 0:
                current.append(" ")
        elif depth:
            continue
        elif char == '"':
            quoted = True
            current.append(char)
        elif char == ";":
            segments.append("".join(current))
            current = []
        else:
            current.append(char)
    segments.append("".join(current))
    return segments


def parse_authentication_results(value: str) -> AuthenticationResults | None:
    """Parse an Authentication-Results header value (RFC 8601); None when it names no authserv-id."""
    first, *resinfos = _segments(value)
    words = first.split()
    if not words:
        return None
    authserv_id = words[0]
    if len(authserv_id) >= 2 and authserv_id.startswith('"') and authserv_id.endswith('"'):
        authserv_id = authserv_id[1:-1].replace("\\", "")
    results = []
    for resinfo in resinfos:
        match = _METHOD_RESULT.match(resinfo)
        if match:  # "none" (no result) and anything unreadable are skipped
            results.append((match[1].lower(), match[2].lower()))
    return AuthenticationResults(authserv_id.lower(), tuple(results))


def dmarc_results(headers: Iterable[str], trusted_authserv_id: str = "") -> tuple[str, ...]:
    """The DMARC results in these Authentication-Results headers; only the trusted server's when one is named
    (case-insensitive), every header's when ``trusted_authserv_id`` is empty."""
    trusted = trusted_authserv_id.strip().lower()
    found: list[str] = []
    for header in headers:
        parsed = parse_authentication_results(str(header))
        if parsed is not None and (not trusted or parsed.authserv_id == trusted):
            found.extend(parsed.of("dmarc"))
    return tuple(found)


def dmarc_refusal(headers: Iterable[str], trusted_authserv_id: str = "", domain: str = "") -> Refusal | None:
    """A refusal when a (trusted) Authentication-Results header says DMARC failed. No header, or dmarc=none, is
    accepted: a mail server that does not check DMARC (the local sink, internal mail) adds none."""
    failed = next((r for r in dmarc_results(headers, trusted_authserv_id) if r in REFUSED_DMARC_RESULTS), None)
    if failed is None:
        return None
    if failed == "fail":
        reply = (
            f"550 5.7.1 DMARC failed for {domain or 'the From domain'}: the receiving mail server could not confirm "
            "that the mail comes from the domain it names, so it cannot be an idea"
        )
    else:
        reply = (
            f"550 5.7.1 DMARC {failed} for {domain or 'the From domain'}: the domain's DMARC record cannot be used, "
            "so the sender cannot be authenticated; the domain's mail administrators can fix the record"
        )
    return Refusal("dmarc", reply, domain)


# --- the idea (pure) ------------------------------------------------------------------------------------------


def idea_from_mail(message: EmailMessage, sender: Sender) -> IdeaIn:
    body = message.get_body(preferencelist=("plain", "html"))
    text = ""
    if body is not None:
        text = body.get_content()
        if body.get_content_type() == "text/html":
            text = html_to_text(text)
    text = text.replace("\r\n", "\n")
    text = re.sub(r"(^|\n)-- \n.*\Z", "", text, flags=re.S)  # the signature is not part of the idea
    submitter = SubmitterIn(name=sender.name, email=sender.address, organisation=sender.organisation)
    return IdeaIn(
        title=str(message.get("subject", "")).strip(), description=text.strip(), submitter=submitter, channel="email"
    )


# --- HTML to text (pure, linear) -----------------------------------------------------------------------------

# The HTML a mail may carry (more cannot arrive: the SMTP data limit is 4 x INTAKE_MAX_BODY_BYTES, 256 KiB).
HTML_MAX_CHARS = 1024 * 1024
_TAG_OPEN = re.compile(r"<(?=[A-Za-z/!?])")  # a '<' that opens a tag; any other '<' is text
_TAG_NAME = re.compile(r"/?([A-Za-z][A-Za-z0-9-]*)")
_RAW_TEXT_END = {name: re.compile(rf"</{name}(?![A-Za-z0-9-])", re.IGNORECASE) for name in ("script", "style")}
_BLOCKS = frozenset(
    "address article aside blockquote br dd div dl dt footer form h1 h2 h3 h4 h5 h6 header hr li main nav ol p pre "
    "section table td th tr ul".split()
)
_SPACE = re.compile(r"[^\S\n]+")
_AROUND_NEWLINE = re.compile(r" ?\n ?")
_BLANK_LINES = re.compile(r"\n{3,}")


def html_to_text(markup: str, max_chars: int = HTML_MAX_CHARS) -> str:
    """The text of an HTML body: tags dropped (block elements start and end a line), script and style with their
    content, comments, entities decoded, white space collapsed. One pass, linear in the input: every search moves the
    position forward, or finds nothing and ends the scan (a '<' with no '>' after it leaves none for any later
    '<' either), so no input makes it slow; Python 3.11's html.parser takes minutes on 50 KB of ``<a <a ...``.
    Markup over ``max_chars`` is refused with ValueError."""
    if len(markup) > max_chars:
        raise ValueError(f"the HTML is too large to read ({len(markup)} characters; at most {max_chars})")
    parts: list[str] = []
    position, end = 0, len(markup)
    while position < end:
        opener = _TAG_OPEN.search(markup, position)
        start = opener.start() if opener else end
        parts.append(_SPACE.sub(" ", markup[position:start].replace("\n", " ")))
        if opener is None:
            break
        if markup.startswith("<!--", start):
            close = markup.find("-->", start + 4)
            if close < 0:
                break  # an unterminated comment hides the rest
            position = close + 3
            continue
        close = markup.find(">", start + 1)
        if close < 0:
            parts.append(_SPACE.sub(" ", markup[start:].replace("\n", " ")))  # no tag can end: the rest is text
            break
        position = close + 1
        name = _TAG_NAME.match(markup, start + 1, close)
        tag = name[1].lower() if name else ""
        if tag in _BLOCKS:
            parts.append("\n")  # an inline element (b, span, a ...) splits no word
        if tag in _RAW_TEXT_END and markup[start + 1] != "/":
            raw_end = _RAW_TEXT_END[tag].search(markup, position)
            if raw_end is None:
                break  # an unterminated script or style: nothing after it is text
            position = raw_end.start()
    text = html.unescape("".join(parts)).replace("\xa0", " ")
    text = _AROUND_NEWLINE.sub("\n", _SPACE.sub(" ", text))
    return _BLANK_LINES.sub("\n\n", text).strip()


def _reasons(exc: ValidationError) -> str:
    fields = {"title": "subject", "description": "body"}
    parts = []
    for error in exc.errors():
        field = ".".join(str(p) for p in error["loc"]) or "message"
        parts.append(f"{fields.get(field, field)}: {error['msg']}")
    return _ascii("; ".join(parts))


def _ascii(text: str) -> str:
    return text.encode("ascii", "replace").decode()[:400]


@contextlib.asynccontextmanager
async def smtp_listener(
    intake: Intake, settings: IntakeSettings, *, registry: CollectorRegistry
) -> AsyncIterator[asyncio.Server | None]:
    """Listen for mail in the service's own event loop (so ideas go out through its broker); refusals are counted
    in ``registry``.

    With several worker processes (``INTAKE_WORKERS``) every worker listens on the one SMTP port with SO_REUSEPORT
    and the kernel spreads the connections over them: no worker is special, so a worker that dies takes no door
    with it (the others keep answering while it is replaced), and a mail is safe in any worker (its Message-ID
    and the per-sender counters are in Redis, shared by all). A single process binds the port alone as before, so a
    port already taken still fails its start. (Another program can never share the port: SO_REUSEPORT needs it set
    on every socket, by the same user.)"""
    if not settings.smtp_enabled:
        yield None
        return
    handler = IdeaMailbox(intake, settings, registry=registry)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(
            handler,
            hostname="kiruna-innovation",
            ident="Kiruna innovation platform intake",
            data_size_limit=settings.max_body_bytes * 4,
        ),
        host=settings.smtp_host,
        port=settings.smtp_port,
        reuse_port=settings.workers > 1 or None,
    )
    intake.logger.info(
        "listening for ideas by e-mail",
        extra={
            "host": settings.smtp_host,
            "port": server.sockets[0].getsockname()[1],
            "address": settings.idea_address,
            "pid": os.getpid(),
            "shared_with_workers": settings.workers > 1,
        },
    )
    try:
        yield server
    finally:
        server.close()
        await server.wait_closed()
