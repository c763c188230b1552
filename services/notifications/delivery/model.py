"""One delivery: an e-mail or webhook call to make, fully rendered, with its tries so far."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge


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
