"""How a delivery leaves: e-mail over SMTP (``Mailer``), JSON over HTTP to an organisation's system
(``WebhookPoster``). A sender raises ``DeliveryRejected`` when no retry can help, anything else when one may."""

from __future__ import annotations

import contextlib
import json
import time
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime, parseaddr
from typing import Protocol

import aiosmtplib
import httpx

from services.notifications.delivery.model import Delivery, DeliveryRejected
from services.notifications.domain import message_id, webhook_signature
from services.notifications.settings import NotificationsSettings
from shared.events import utc_now

# Long ASCII headers (the List-Unsubscribe URL) are folded, never turned into encoded words that clients cannot
# read; RFC 5322 allows 998 characters per line.
MAIL_POLICY = SMTP_POLICY.clone(max_line_length=998)


class Sender(Protocol):
    async def send(self, delivery: Delivery) -> None: ...


def _rejection(exc: BaseException) -> DeliveryRejected | None:
    """A permanent refusal by the mail server (5xx): retrying cannot help."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused) and all(error.code >= 500 for error in exc.recipients):
        return DeliveryRejected(f"SMTP refused the recipient: {exc.recipients[0].message}")
    if isinstance(exc, aiosmtplib.SMTPResponseException) and exc.code >= 500:
        return DeliveryRejected(f"SMTP {exc.code}: {exc.message}")
    return None


class Mailer:
    """E-mail over SMTP (aiosmtplib), plain text and HTML, with a Message-ID derived from (event, recipient)."""

    def __init__(self, settings: NotificationsSettings) -> None:
        self.settings = settings
        self._idle: list[aiosmtplib.SMTP] = []
        """Connections kept open between mails (at most one per delivery in flight): one TCP/TLS handshake and
        login per connection, not per mail."""

    def build(self, delivery: Delivery) -> EmailMessage:
        mail = delivery.message
        message = EmailMessage(policy=MAIL_POLICY)
        message["From"] = self.settings.smtp_from
        message["To"] = mail["to"]
        message["Subject"] = mail["subject"]
        message["Date"] = format_datetime(utc_now())
        message["Message-ID"] = message_id(delivery.id, parseaddr(self.settings.smtp_from)[1])
        message["Content-Language"] = mail.get("language", "sv")
        message["Auto-Submitted"] = "auto-generated"
        message["List-Unsubscribe"] = f"<{mail['unsubscribe_url']}>"
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        message["X-Kiruna-Idea"] = delivery.idea_id
        message["X-Kiruna-Event"] = delivery.cause_event_id
        message["X-Kiruna-Kind"] = delivery.kind
        message.set_content(mail["text"])
        message.add_alternative(mail["html"], subtype="html")
        return message

    async def send(self, delivery: Delivery) -> None:
        message = self.build(delivery)
        client: aiosmtplib.SMTP | None = None
        try:
            client, reused = await self._connection()
            try:
                await client.send_message(message)
            except aiosmtplib.SMTPServerDisconnected:
                if not reused:
                    raise
                self._discard(client)  # the server had closed the idle connection: once more on a new one
                client, _ = await self._connection(fresh=True)
                await client.send_message(message)
        except BaseException as exc:
            if client is not None:
                self._discard(client)
            if (rejected := _rejection(exc)) is not None:
                raise rejected from exc
            raise
        self._release(client)

    async def _connection(self, *, fresh: bool = False) -> tuple[aiosmtplib.SMTP, bool]:
        """An open connection: an idle one (reused=True) or a new one, connected and logged in."""
        while self._idle and not fresh:
            client = self._idle.pop()
            if client.is_connected:
                return client, True
        s = self.settings
        client = aiosmtplib.SMTP(
            hostname=s.smtp_host,
            port=s.smtp_port,
            username=s.smtp_username,
            password=s.smtp_password.get_secret_value() if s.smtp_password else None,
            use_tls=s.smtp_tls,
            start_tls=False if s.smtp_tls else s.smtp_starttls,
            timeout=s.smtp_timeout_s,
        )
        await client.connect()
        return client, False

    def _release(self, client: aiosmtplib.SMTP) -> None:
        if client.is_connected and len(self._idle) < self.settings.delivery_concurrency:
            self._idle.append(client)
        else:
            self._discard(client)

    @staticmethod
    def _discard(client: aiosmtplib.SMTP) -> None:
        with contextlib.suppress(Exception):
            client.close()

    async def aclose(self) -> None:
        while self._idle:
            client = self._idle.pop()
            with contextlib.suppress(Exception):
                await client.quit()


class WebhookPoster:
    """HTTP POST of JSON, signed: ``X-Kiruna-Signature: sha256=<hex HMAC-SHA256 of '<timestamp>.<body>'>``."""

    def __init__(self, settings: NotificationsSettings) -> None:
        self.settings = settings
        self.client = httpx.AsyncClient(timeout=settings.webhook_timeout_s, follow_redirects=False)

    async def send(self, delivery: Delivery) -> None:
        target = self.settings.webhooks.get(delivery.recipient)
        if target is None:
            raise DeliveryRejected(f"no webhook is configured for organisation {delivery.recipient!r}")
        body = json.dumps(delivery.message, ensure_ascii=False, separators=(",", ":")).encode()
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "kiruna-innovation-notifications/1",
            "X-Kiruna-Delivery": delivery.id,
            "X-Kiruna-Event": delivery.kind,
            "X-Kiruna-Timestamp": timestamp,
            "X-Kiruna-Signature": webhook_signature(target.secret.get_secret_value(), timestamp, body),
        }
        response = await self.client.post(target.url, content=body, headers=headers)
        if response.is_success:
            return
        if response.status_code in (408, 425, 429) or response.status_code >= 500:
            raise RuntimeError(f"webhook answered HTTP {response.status_code}")
        raise DeliveryRejected(f"webhook answered HTTP {response.status_code}")

    async def aclose(self) -> None:
        await self.client.aclose()
