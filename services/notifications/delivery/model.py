"""One delivery: an e-mail or webhook call to make, fully rendered, with its tries so far. It names its recipient
by pseudonym (or ``webhook:<organisation>``): the address is looked up (and unsealed) only when it is sent."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge


class DeliveryRejected(Exception):
    """The receiving side refused for good (5xx from SMTP, 4xx from a webhook): no retry can help."""


class RecipientErased(Exception):
    """The recipient was erased (their key is gone, or they were erased since): the delivery is skipped."""


WEBHOOK = "webhook:"
"""A webhook's recipient is ``webhook:<organisation>``, as NotificationSent names it."""


@dataclass(frozen=True)
class Address:
    """Where an e-mail goes, opened from the recipient's sealed contact (or the catalogue) just before sending."""

    email: str
    name: str | None = None


@dataclass
class Delivery:
    """One e-mail or webhook call to make, fully rendered, with its tries so far."""

    id: str  # the notification id: one per (event, recipient, channel)
    channel: str  # email | webhook
    recipient: str  # the person's pseudonym, or webhook:<organisation>
    idea_id: str
    cause_event_id: str
    kind: str
    message: dict[str, Any]  # e-mail: subject, text, html, language, unsubscribe_url (no address); webhook: body
    attempts: int = 0
    last_error: str | None = None  # masked (shared.sealing.mask_email)

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)

    @classmethod
    def from_json(cls, raw: str) -> Delivery:
        return cls(**json.loads(raw))

    @property
    def organisation(self) -> str:
        """The organisation of a webhook delivery."""
        return self.recipient.removeprefix(WEBHOOK)

    def investigation(self, error: str) -> dict[str, Any]:
        """What ``notifications.dlq`` keeps of a delivery given up: enough to retry or look into it (the cause,
        the idea, the recipient's pseudonym, the template), never the rendered mail nor an address."""
        return {
            "notification_id": self.id,
            "cause_event_id": self.cause_event_id,
            "idea_id": self.idea_id,
            "recipient": self.recipient,
            "channel": self.channel,
            "kind": self.kind,
            "language": self.message.get("language"),
            "attempts": self.attempts,
            "error": error,
        }


@dataclass(frozen=True)
class DeliveryMetrics:
    sent: Counter
    retries: Counter
    pending: Gauge

    @classmethod
    def create(cls, registry: CollectorRegistry) -> DeliveryMetrics:
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
        )
