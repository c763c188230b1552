"""One delivery: an e-mail or webhook call to make, fully rendered, with its tries so far. It names its recipient
by pseudonym (or ``webhook:<organisation>``): the address is looked up (and unsealed) only when it is sent."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime
from typing import Any, get_args

from prometheus_client import CollectorRegistry, Counter, Gauge

from services.notifications.domain import unsubscribe_token
from shared.events import DeliveryOutcome, NotificationSent
from shared.sealing import mask_email


class DeliveryRejected(Exception):
    """The receiving side refused for good (5xx from SMTP, 4xx from a webhook): no retry can help."""


class ServerAway(Exception):
    """The mail server could not be reached (refused, timed out, gone, 421 closing): not the mail's fault. The
    delivery waits for the server, for as long as the outage lasts, without using up its tries."""


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
    waits: int = 0  # tries that found the mail server away (not counted in attempts)
    by: str | None = None  # the pseudonym of the person whose words the message quotes (a comment), if any
    removed: dict[str, Any] | None = None  # the message without their words: what is sent once they are erased

    def redacted(self) -> Delivery:
        """The delivery as it goes once the person it quotes was erased."""
        if self.removed is None:
            return self
        return replace(self, message=self.removed, by=None, removed=None)

    def to_json(self) -> str:
        # the fields as they are: ``asdict`` would deep-copy the message first
        return json.dumps({name: getattr(self, name) for name in _DELIVERY_FIELDS}, ensure_ascii=False)

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


_DELIVERY_FIELDS = tuple(f.name for f in fields(Delivery))


def without_address(delivery: Delivery, pseudonym: Callable[[str], str], unsubscribe_secret: str) -> Delivery | None:
    """A delivery queued before people were pseudonyms (its recipient an address, its mail's ``to`` too, its
    unsubscribe link naming the address; a webhook's recipient the bare organisation), made as one queued now:
    the recipient's pseudonym, no address, a link for the pseudonym with the same expiry. None when it is not such
    a one."""
    if delivery.channel == "webhook":
        if delivery.recipient.startswith(WEBHOOK):
            return None
        return replace(delivery, recipient=f"{WEBHOOK}{delivery.recipient}")
    if "@" not in delivery.recipient and "to" not in delivery.message:
        return None
    person = pseudonym(delivery.recipient) if "@" in delivery.recipient else delivery.recipient
    message = {name: value for name, value in delivery.message.items() if name != "to"}
    old_url = str(message.get("unsubscribe_url") or "")
    if "token=" in old_url:
        try:
            expires = datetime.fromtimestamp(int(old_url.rsplit("token=", 1)[1].split(".")[1]), UTC)
        except (IndexError, ValueError):
            expires = None
        if expires is not None:
            new_url = old_url.rsplit("token=", 1)[0] + "token=" + unsubscribe_token(person, unsubscribe_secret, expires)
            for part in ("text", "html", "unsubscribe_url"):
                if isinstance(message.get(part), str):
                    message[part] = message[part].replace(old_url, new_url)
    error = mask_email(delivery.last_error) if delivery.last_error else None
    return replace(delivery, recipient=person, message=message, last_error=error)


@dataclass(frozen=True)
class DeliveryMetrics:
    sent: Counter
    retries: Counter
    pending: Gauge

    @classmethod
    def create(cls, registry: CollectorRegistry) -> DeliveryMetrics:
        metrics = cls(
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
        # at 0 from the first scrape, so the first failure after a restart is an increase (KirunaNotificationsFailing)
        for channel in get_args(NotificationSent.model_fields["channel"].annotation):
            for outcome in DeliveryOutcome:
                metrics.sent.labels(channel, outcome.value)
            if channel != "in-app":
                metrics.retries.labels(channel)
        return metrics
