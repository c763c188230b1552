"""E-mail and webhook deliveries: a retry queue in Redis, worked by a background task.

The consumer only *enqueues* a delivery (idempotently, keyed by its notification id) and commits; so a slow or
unreachable mail server or webhook never holds up a partition, and a delivery that is pending when the process
stops is still in Redis when it starts again. The worker claims due deliveries with a lease (a crashed worker's
claims come back), sends them, and on success writes the ``delivered`` key: the exactly-once mark, written only
when the delivery succeeded. A failed try is rescheduled with exponential backoff and jitter; after the last try
the delivery is recorded on ``notifications.dlq`` with the reason and reported as failed. Every outcome is
published as ``NotificationSent``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from dataclasses import asdict, dataclass, field
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime, parseaddr
from typing import Any, Protocol

import aiosmtplib
import httpx
from prometheus_client import CollectorRegistry, Counter, Gauge
from redis.asyncio import Redis

from services.notifications.domain import message_id, webhook_signature
from services.notifications.settings import NotificationsSettings
from shared.events import DeliveryOutcome, Envelope, NotificationSent, utc_now
from shared.kafka import publish_event
from shared.service import Runtime

SOURCE = "/services/notifications"

# Long ASCII headers (the List-Unsubscribe URL) are folded, never turned into encoded words that clients cannot
# read; RFC 5322 allows 998 characters per line.
MAIL_POLICY = SMTP_POLICY.clone(max_line_length=998)


class DeliveryRejected(Exception):
    """The receiving side refused for good (5xx from SMTP, 4xx from a webhook): no retry can help."""


@dataclass
class Delivery:
    """One e-mail or webhook call to make, fully rendered, with its tries so far."""

    id: str  # the notification id: one per (event, recipient, channel)
    channel: str  # email | webhook
    recipient: str  # a person id, or the organisation of a webhook
    idea_id: str
    cause_event_id: str
    kind: str
    message: dict[str, Any]
    attempts: int = 0
    last_error: str | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)

    @classmethod
    def from_json(cls, raw: str) -> Delivery:
        return cls(**json.loads(raw))


@dataclass(frozen=True)
class NotificationMetrics:
    sent: Counter
    retries: Counter
    pending: Gauge
    waiting_ideas: Gauge
    oldest_wait: Gauge

    @classmethod
    def create(cls, registry: CollectorRegistry) -> NotificationMetrics:
        return cls(
            sent=Counter(
                "kiruna_notifications",
                "Notifications by channel and outcome (delivered, failed, skipped)",
                ["channel", "outcome"],
                registry=registry,
            ),
            retries=Counter(
                "kiruna_notification_retries",
                "E-mail and webhook deliveries that failed and were rescheduled",
                ["channel"],
                registry=registry,
            ),
            pending=Gauge(
                "kiruna_notification_pending_deliveries",
                "E-mail and webhook deliveries waiting in the retry queue",
                registry=registry,
            ),
            waiting_ideas=Gauge(
                "kiruna_notification_waiting_ideas",
                "Ideas whose events wait for the idea's submission to reach notifications",
                registry=registry,
            ),
            oldest_wait=Gauge(
                "kiruna_notification_oldest_wait_seconds",
                "How long the longest-waiting idea's events have waited for its submission (0: none waits)",
                registry=registry,
            ),
        )


# --- the queue ------------------------------------------------------------------------------------

_ENQUEUE = """
if redis.call('EXISTS', KEYS[1]) == 1 or redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
if redis.call('HSETNX', KEYS[3], ARGV[1], ARGV[2]) == 1 then
  redis.call('ZADD', KEYS[4], ARGV[3], ARGV[1])
  return 1
end
return 0
"""

_CLAIM = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
local jobs = {}
for _, id in ipairs(ids) do
  redis.call('ZADD', KEYS[1], ARGV[3], id)
  local job = redis.call('HGET', KEYS[2], id)
  if job then table.insert(jobs, job) else redis.call('ZREM', KEYS[1], id) end
end
return jobs
"""


class DeliveryQueue:
    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = f"{prefix}:notifications"
        self.jobs = f"{self.prefix}:deliveries"
        self.due = f"{self.prefix}:deliveries:due"
        self.wakeup = asyncio.Event()
        self._enqueue = redis.register_script(_ENQUEUE)
        self._claim = redis.register_script(_CLAIM)

    def delivered_key(self, delivery_id: str) -> str:
        return f"{self.prefix}:delivered:{delivery_id}"

    def settled_key(self, delivery_id: str) -> str:
        return f"{self.prefix}:failed:{delivery_id}"

    async def enqueue(self, delivery: Delivery, *, at: float | None = None) -> bool:
        """Queue the delivery unless it was delivered, given up, or queued before. True when queued now."""
        keys = [self.delivered_key(delivery.id), self.settled_key(delivery.id), self.jobs, self.due]
        queued = bool(await self._enqueue(keys=keys, args=[delivery.id, delivery.to_json(), at or time.time()]))
        if queued:
            self.wakeup.set()
        return queued

    async def claim(self, now: float, limit: int, lease_s: float) -> list[Delivery]:
        raw = await self._claim(keys=[self.due, self.jobs], args=[now, limit, now + lease_s])
        return [Delivery.from_json(item) for item in raw]

    async def reschedule(self, delivery: Delivery, at: float) -> None:
        # In this order (one pipeline): a due entry always has its job.
        await asyncio.gather(
            self.redis.hset(self.jobs, delivery.id, delivery.to_json()), self.redis.zadd(self.due, {delivery.id: at})
        )

    async def is_delivered(self, delivery_id: str) -> bool:
        return bool(await self.redis.exists(self.delivered_key(delivery_id)))

    async def mark_delivered(self, delivery_id: str) -> None:
        await self.redis.set(self.delivered_key(delivery_id), 1)

    async def mark_given_up(self, delivery_id: str) -> None:
        await self.redis.set(self.settled_key(delivery_id), 1)

    async def complete(self, delivery_id: str) -> None:
        await asyncio.gather(self.redis.zrem(self.due, delivery_id), self.redis.hdel(self.jobs, delivery_id))

    async def size(self) -> int:
        return int(await self.redis.zcard(self.due))


# --- the senders ----------------------------------------------------------------------------------


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


# --- outcomes -------------------------------------------------------------------------------------


class Reporter:
    """Publishes every outcome as NotificationSent (its id is the notification id) and counts it."""

    def __init__(self, runtime: Runtime, metrics: NotificationMetrics) -> None:
        self.runtime = runtime
        self.metrics = metrics

    async def outcome(
        self,
        *,
        notification_id: str,
        idea_id: str,
        cause_event_id: str,
        recipient: str,
        channel: str,
        outcome: DeliveryOutcome,
        detail: str | None = None,
        count: bool = True,
    ) -> None:
        sent = NotificationSent(
            idea_id=idea_id,
            cause_event_id=cause_event_id,
            recipient=recipient,
            channel=channel,  # type: ignore[arg-type]
            outcome=outcome,
            detail=detail,
        )
        envelope = Envelope.wrap(sent, source=SOURCE, event_id=notification_id)
        settings = self.runtime.settings
        await publish_event(
            self.runtime.broker,
            self.runtime.topics.notifications_sent,
            envelope,
            timeout_s=settings.kafka.publish_timeout_s,
        )
        if count:
            self.metrics.sent.labels(channel, outcome.value).inc()

    async def delivery(self, delivery: Delivery, outcome: DeliveryOutcome, detail: str | None = None) -> None:
        await self.outcome(
            notification_id=delivery.id,
            idea_id=delivery.idea_id,
            cause_event_id=delivery.cause_event_id,
            recipient=delivery.recipient,
            channel=delivery.channel,
            outcome=outcome,
            detail=detail,
        )

    async def dead_letter(self, delivery: Delivery, reason: str) -> None:
        """A record on notifications.dlq: the delivery as it was, with why it was given up."""
        headers = {
            "content-type": "application/json",
            "x-dlq-reason": "delivery-failed",
            "x-dlq-error": reason[:2000],
            "x-dlq-service": self.runtime.service,
            "x-dlq-attempts": str(delivery.attempts),
            "x-dlq-channel": delivery.channel,
            "x-dlq-notification-id": delivery.id,
            "x-dlq-cause-event-id": delivery.cause_event_id,
        }
        await asyncio.wait_for(
            self.runtime.broker.publish(
                delivery.to_json().encode(),
                topic=self.runtime.topics.notifications_dlq,
                key=delivery.idea_id.encode(),
                headers=headers,
            ),
            timeout=self.runtime.settings.kafka.publish_timeout_s,
        )
        self.runtime.metrics.dead_letters.labels(self.runtime.service, "notifications.deliveries", "failed").inc()


# --- the worker -----------------------------------------------------------------------------------


@dataclass
class DeliveryWorker:
    queue: DeliveryQueue
    senders: dict[str, Sender]
    reporter: Reporter
    settings: NotificationsSettings
    metrics: NotificationMetrics
    logger: logging.Logger
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    _in_flight: set[asyncio.Task] = field(default_factory=set)

    def backoff(self, attempts: int) -> float:
        """Exponential backoff with jitter: base * 2^(tries-1), at most retry_max_s, times 0.5-1.5."""
        delay = min(self.settings.retry_base_s * 2 ** (attempts - 1), self.settings.retry_max_s)
        return delay * (0.5 + random.random())

    async def run(self, ready: asyncio.Event) -> None:
        """Work the queue until cancelled: up to ``delivery_concurrency`` deliveries at once."""
        await ready.wait()  # outcomes go to Kafka: wait until it is there
        try:
            while not self.stopping.is_set():
                try:
                    await self.fill()
                except Exception as exc:  # Redis away for a moment: say so, and try again
                    self.logger.warning("delivery queue unavailable", extra={"error": repr(exc)})
                waiters: set[asyncio.Future] = {
                    asyncio.ensure_future(self.queue.wakeup.wait()),
                    asyncio.ensure_future(self.stopping.wait()),
                    *self._in_flight,
                }
                await asyncio.wait(waiters, timeout=self.settings.delivery_poll_s, return_when=asyncio.FIRST_COMPLETED)
                self.queue.wakeup.clear()
                for waiter in waiters - self._in_flight:
                    waiter.cancel()
        finally:
            for task in list(self._in_flight):
                task.cancel()
            if self._in_flight:
                await asyncio.wait(list(self._in_flight), timeout=5)

    async def fill(self) -> int:
        free = self.settings.delivery_concurrency - len(self._in_flight)
        claimed = await self.queue.claim(time.time(), free, self.settings.delivery_lease_s) if free > 0 else []
        for delivery in claimed:
            task = asyncio.create_task(self.attempt(delivery), name=f"deliver-{delivery.id}")
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)
        self.metrics.pending.set(await self.queue.size())
        return len(claimed)

    async def attempt(self, delivery: Delivery) -> None:
        """One try of one delivery. Whatever goes wrong here, the delivery stays in Redis until settled."""
        try:
            if not await self.queue.is_delivered(delivery.id):  # else: sent before a crash, only its report is missing
                try:
                    await self.senders[delivery.channel].send(delivery)
                except DeliveryRejected as exc:
                    delivery.attempts += 1
                    await self.give_up(delivery, str(exc))
                    return
                except Exception as exc:
                    await self.failed_try(delivery, exc)
                    return
                await self.queue.mark_delivered(delivery.id)
            await self.reporter.delivery(delivery, DeliveryOutcome.DELIVERED)
            await self.queue.complete(delivery.id)
            self.logger.info(
                "notification delivered",
                extra={"idea_id": delivery.idea_id, "event_id": delivery.cause_event_id, "channel": delivery.channel},
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # Kafka or Redis failed mid-way: the lease expires and the delivery comes back
            self.logger.warning("delivery not settled, will come back", extra={"error": repr(exc)})

    async def failed_try(self, delivery: Delivery, exc: Exception) -> None:
        delivery.attempts += 1
        delivery.last_error = f"{type(exc).__name__}: {exc}"[:500]
        if delivery.attempts >= self.settings.delivery_attempts:
            await self.give_up(delivery, delivery.last_error)
            return
        delay = self.backoff(delivery.attempts)
        await self.queue.reschedule(delivery, time.time() + delay)
        self.metrics.retries.labels(delivery.channel).inc()
        self.logger.warning(
            "delivery failed, retrying",
            extra={
                "idea_id": delivery.idea_id,
                "event_id": delivery.cause_event_id,
                "channel": delivery.channel,
                "attempt": delivery.attempts,
                "retry_in_s": round(delay, 2),
                "error": delivery.last_error,
            },
        )

    async def give_up(self, delivery: Delivery, reason: str) -> None:
        await self.reporter.dead_letter(delivery, reason)
        await self.queue.mark_given_up(delivery.id)
        await self.reporter.delivery(delivery, DeliveryOutcome.FAILED, reason[:500])
        await self.queue.complete(delivery.id)
        self.logger.error(
            "delivery given up",
            extra={"idea_id": delivery.idea_id, "event_id": delivery.cause_event_id, "channel": delivery.channel},
        )

    async def stop(self) -> None:
        for sender in self.senders.values():
            if close := getattr(sender, "aclose", None):
                with contextlib.suppress(Exception):
                    await close()
