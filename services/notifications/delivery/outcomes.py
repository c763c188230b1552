"""How outcomes are told: every notification's outcome (delivered, failed, skipped) per recipient (a pseudonym,
or ``webhook:<organisation>``) and channel is published as ``NotificationSent`` (its id is the notification id)
and counted; a delivery given up is also put on ``notifications.dlq`` with why, under the platform's dead-letter
headers (``shared.deadletter``). Neither carries an address: error texts are masked (``a***@kiruna.se``), and the
dead letter holds what is needed to retry or look into the delivery, not the rendered mail."""

from __future__ import annotations

import asyncio
import json
from typing import Protocol

from services.notifications.delivery.model import Delivery, DeliveryMetrics
from shared.deadletter import DeadLetters
from shared.events import DeliveryOutcome, Envelope, NotificationSent
from shared.publishing import Publisher
from shared.sealing import mask_email

SOURCE = "/services/notifications"
MAX_ERROR = 500


class DeliveryFailed(Exception):
    """Why a delivery was given up, its addresses masked: what the dead letter's headers and the logs carry."""


def describe(error: BaseException) -> str:
    """An error as logs, dead letters and outcomes may carry it: its type and text, every address masked."""
    return mask_email(f"{type(error).__name__}: {error}")[:MAX_ERROR]


class Outcomes(Protocol):
    """What the handlers tell of each notification they decided (the ``Reporter``; the rebuild tells nobody)."""

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
        """``count=False``: published (again), but not counted (it had been delivered before)."""
        ...


class Reporter:
    """Publishes every outcome as NotificationSent and counts it; dead-letters the deliveries given up."""

    def __init__(
        self,
        publisher: Publisher,
        *,
        sent_topic: str,
        dead_letter_topic: str,
        dead_letters: DeadLetters,
        metrics: DeliveryMetrics,
        publish_timeout_s: float,
    ) -> None:
        self.publisher = publisher
        self.sent_topic = sent_topic
        self.dead_letter_topic = dead_letter_topic
        self.dead_letters = dead_letters
        self.metrics = metrics
        self.publish_timeout_s = publish_timeout_s

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
            detail=mask_email(detail) if detail else detail,
        )
        await self.publisher.publish(self.sent_topic, Envelope.wrap(sent, source=SOURCE, event_id=notification_id))
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

    async def dead_letter(self, delivery: Delivery, error: BaseException) -> None:
        """A record on notifications.dlq: what identifies the delivery (cause, idea, recipient's pseudonym,
        template, channel) and why it was given up, masked; never the rendered mail. The headers are the
        platform's (reason ``delivery-failed``, the error, the service ...) plus the delivery's own."""
        why = describe(error)
        own = {
            "content-type": "application/json",
            "x-dlq-attempts": str(delivery.attempts),
            "x-dlq-channel": delivery.channel,
            "x-dlq-kind": delivery.kind,
            "x-dlq-notification-id": delivery.id,
            "x-dlq-cause-event-id": delivery.cause_event_id,
            "x-dlq-recipient": delivery.recipient,
        }
        # DeadLetters writes to ``<source>.dlq``: the source of a delivery is notifications itself.
        await asyncio.wait_for(
            self.dead_letters.dead_letter_value(
                self.dead_letter_topic.removesuffix(".dlq"),
                json.dumps(delivery.investigation(why), ensure_ascii=False).encode(),
                delivery.idea_id.encode(),
                DeliveryFailed(why),
                reason="delivery-failed",
                headers=own,
            ),
            timeout=self.publish_timeout_s,
        )
