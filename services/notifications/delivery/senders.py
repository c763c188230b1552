"""How a delivery leaves: e-mail over SMTP (``Mailer``), JSON over HTTP to an organisation's system
(``WebhookPoster``). A sender raises ``DeliveryRejected`` when no retry can help, ``RecipientErased`` when the
person is gone (the delivery is skipped), ``ServerAway`` when the mail server cannot be reached (the delivery waits
for it without using up its tries), anything else when a retry may help.

The mailer learns the recipient's address only here, at the moment of sending (``Addresses``: the catalogue for
officers, the person's sealed contact opened with the keyring for everyone else), and keeps it nowhere; a mail
server's error that names it is masked before it goes on (``shared.sealing.mask_email``)."""

from __future__ import annotations

import contextlib
import io
import json
import time
from email.generator import BytesGenerator
from email.headerregistry import HeaderRegistry
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime, formataddr, getaddresses, parseaddr
from typing import Protocol

import aiosmtplib
import httpx

from services.notifications.delivery.model import Address, Delivery, DeliveryRejected, RecipientErased, ServerAway
from services.notifications.domain import message_id, webhook_signature
from services.notifications.settings import NotificationsSettings
from shared.events import utc_now
from shared.sealing import mask_email


class KeptHeaderClasses(HeaderRegistry):
    """The email package's header registry, keeping the class it makes for each header name: the plain one makes
    a new class (``type(...)``) for every header of every mail: about a third of the CPU of making and flattening
    a mail (measured on a routing notice)."""

    def __init__(self) -> None:
        super().__init__()
        self._kept: dict[str, type] = {}

    def __getitem__(self, name: str) -> type:
        made = self._kept.get(name)
        if made is None:
            made = self._kept[name] = super().__getitem__(name)
        return made


# Long ASCII headers (the List-Unsubscribe URL) are folded, never turned into encoded words that clients cannot
# read; RFC 5322 allows 998 characters per line.
MAIL_POLICY = SMTP_POLICY.clone(max_line_length=998, header_factory=KeptHeaderClasses())


class Sender(Protocol):
    async def send(self, delivery: Delivery) -> None: ...


class Addresses(Protocol):
    """Where a person's mail goes (``services.notifications.contacts.Contacts``): None when they were erased."""

    async def address(self, person: str) -> Address | None: ...


class SMTPFailure(Exception):
    """A mail server's error that may be retried, its addresses masked."""


def _rejection(exc: BaseException) -> DeliveryRejected | None:
    """A permanent refusal by the mail server (5xx): retrying cannot help. Addresses in its text are masked."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused) and all(error.code >= 500 for error in exc.recipients):
        refused = exc.recipients[0]
        return DeliveryRejected(mask_email(f"SMTP refused the recipient: {refused.code} {refused.message}"))
    if isinstance(exc, aiosmtplib.SMTPResponseException) and exc.code >= 500:
        return DeliveryRejected(mask_email(f"SMTP {exc.code}: {exc.message}"))
    return None


SERVER_AWAY = (
    aiosmtplib.SMTPConnectError,
    aiosmtplib.SMTPConnectTimeoutError,
    aiosmtplib.SMTPServerDisconnected,
    aiosmtplib.SMTPTimeoutError,
    OSError,
    TimeoutError,
)


def _server_away(exc: BaseException) -> ServerAway | None:
    """The mail server unreachable (refused, timed out, hung up, or 421: it is closing): not the mail's fault."""
    if isinstance(exc, SERVER_AWAY) or (isinstance(exc, aiosmtplib.SMTPResponseException) and exc.code == 421):
        return ServerAway(mask_email(f"mail server away: {type(exc).__name__}: {exc}"))
    return None


def _masked(exc: BaseException) -> BaseException:
    """A mail server's error as it may be retried, logged and reported: its addresses masked."""
    text = f"{type(exc).__name__}: {exc}"
    masked = mask_email(text)
    return exc if masked == text else SMTPFailure(masked)


async def transmit(client: aiosmtplib.SMTP, message: EmailMessage) -> None:
    """Send ``message`` flattened with its own policy (:data:`MAIL_POLICY`). aiosmtplib's ``send_message`` flattens
    with ``email.policy.SMTP`` whatever the message's policy, 78 columns, which turns the long List-Unsubscribe URL
    into RFC 2047 encoded words that mail clients cannot use. Addresses that are not ASCII need SMTPUTF8: those go
    through ``send_message``, which negotiates it."""
    sender = parseaddr(message["From"])[1]
    recipients = [address for _, address in getaddresses(message.get_all("To", []))]
    if not (sender.isascii() and all(address.isascii() for address in recipients)):
        await client.send_message(message)
        return
    if client.is_ehlo_or_helo_needed:
        await client.ehlo()
    eight_bit = client.supports_extension("8bitmime")
    policy = MAIL_POLICY if eight_bit else MAIL_POLICY.clone(cte_type="7bit")
    with io.BytesIO() as flat:
        BytesGenerator(flat, policy=policy).flatten(message)
        await client.sendmail(sender, recipients, flat.getvalue(), mail_options=["BODY=8BITMIME"] if eight_bit else [])


class Mailer:
    """E-mail over SMTP (aiosmtplib), plain text and HTML, with a Message-ID derived from (event, recipient)."""

    def __init__(self, settings: NotificationsSettings, addresses: Addresses) -> None:
        self.settings = settings
        self.addresses = addresses
        self._idle: list[aiosmtplib.SMTP] = []
        """Connections kept open between mails (at most one per delivery in flight): one TCP/TLS handshake and
        login per connection, not per mail."""

    def build(self, delivery: Delivery, to: Address) -> EmailMessage:
        mail = delivery.message
        message = EmailMessage(policy=MAIL_POLICY)
        message["From"] = self.settings.smtp_from
        name = " ".join((to.name or "").split())  # one line, whatever the name holds
        message["To"] = formataddr((name, to.email)) if name else to.email
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
        to = await self.addresses.address(delivery.recipient)
        if to is None:
            raise RecipientErased(f"recipient {delivery.recipient} was erased")
        message = self.build(delivery, to)
        client: aiosmtplib.SMTP | None = None
        try:
            client, reused = await self._connection()
            try:
                await transmit(client, message)
            except aiosmtplib.SMTPServerDisconnected:
                if not reused:
                    raise
                self._discard(client)  # the server had closed the idle connection: once more on a new one
                client, _ = await self._connection(fresh=True)
                await transmit(client, message)
        except BaseException as exc:
            if client is not None:
                self._discard(client)
            if (rejected := _rejection(exc)) is not None:
                raise rejected from None
            if (away := _server_away(exc)) is not None:
                raise away from None
            if isinstance(exc, Exception) and (masked := _masked(exc)) is not exc:
                raise masked from None
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
        target = self.settings.webhooks.get(delivery.organisation)
        if target is None:
            raise DeliveryRejected(f"no webhook is configured for organisation {delivery.organisation!r}")
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
