"""E-mail in: an SMTP listener (aiosmtpd) that turns a mail to the idea address into an idea.
Subject -> title, text body -> description, sender -> submitter. Mail that cannot become an idea is refused
with an SMTP reply that says why; when Kafka is unavailable the reply is temporary (4xx), so the sending
server tries again, and the Message-ID makes that retry land on the same idea."""

from __future__ import annotations

import asyncio
import contextlib
import email.policy
import email.utils
import html
import re
from collections.abc import AsyncIterator
from email.message import EmailMessage

from aiosmtpd.smtp import SMTP, Envelope, Session
from pydantic import ValidationError
from redis.exceptions import RedisError

from services.intake.errors import InvalidField
from services.intake.handlers import Intake
from services.intake.models import IdeaIn, SubmitterIn
from services.intake.settings import IntakeSettings
from shared.kafka import KafkaUnavailable

_TAGS = re.compile(r"<[^>]+>")


class IdeaMailbox:
    """aiosmtpd handler: accepts RCPT only for the idea address and makes each message an idea."""

    def __init__(self, intake: Intake, settings: IntakeSettings) -> None:
        self.intake = intake
        self.address = settings.idea_address.lower()

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if address.lower() != self.address:
            return f"550 5.1.1 <{address}>: no such mailbox here; send ideas to <{self.address}>"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        message = email.message_from_bytes(
            envelope.original_content or envelope.content, _class=EmailMessage, policy=email.policy.default
        )
        try:
            idea = idea_from_mail(message, envelope.mail_from)
        except ValidationError as exc:
            return "550 5.6.0 " + _reasons(exc)
        message_id = (message.get("message-id") or "").strip()
        try:
            accepted = await self.intake.submit(idea, idempotency_key=f"mail:{message_id}" if message_id else None)
        except InvalidField as exc:
            return f"550 5.6.0 {_ascii(str(exc))}"
        except (KafkaUnavailable, RedisError, TimeoutError):
            return "451 4.3.0 The idea could not be stored just now; please try again later"
        return f"250 2.0.0 Thank you: your idea is stored as {accepted.idea_id}; follow it at {accepted.status_url}"


def idea_from_mail(message: EmailMessage, envelope_sender: str | None) -> IdeaIn:
    name, address = email.utils.parseaddr(str(message.get("from", "")) or envelope_sender or "")
    address = address or envelope_sender or ""
    body = message.get_body(preferencelist=("plain", "html"))
    text = ""
    if body is not None:
        text = body.get_content()
        if body.get_content_type() == "text/html":
            text = html.unescape(_TAGS.sub(" ", text))
    text = text.replace("\r\n", "\n")
    text = re.sub(r"(^|\n)-- \n.*\Z", "", text, flags=re.S)  # the signature is not part of the idea
    submitter = SubmitterIn(name=name or address.split("@")[0], email=address or None)
    return IdeaIn(
        title=str(message.get("subject", "")).strip(), description=text.strip(), submitter=submitter, channel="email"
    )


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
async def smtp_listener(intake: Intake, settings: IntakeSettings) -> AsyncIterator[asyncio.Server | None]:
    """Listen for mail in the service's own event loop (so ideas go out through its broker)."""
    if not settings.smtp_enabled:
        yield None
        return
    handler = IdeaMailbox(intake, settings)
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
    )
    intake.runtime.logger.info(
        "listening for ideas by e-mail",
        extra={
            "host": settings.smtp_host,
            "port": server.sockets[0].getsockname()[1],
            "address": settings.idea_address,
        },
    )
    try:
        yield server
    finally:
        server.close()
        await server.wait_closed()
