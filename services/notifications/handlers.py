"""Notifications' effects: decide who hears what (domain), deliver once (store), record the outcome."""

from __future__ import annotations

from services.notifications.domain import Contact, FeedItem, routed_to_submitter
from services.notifications.store import NotificationStore
from shared.catalogue import Catalogue
from shared.events import (
    DeliveryOutcome,
    Envelope,
    NotificationSent,
    RoutedEvent,
    SubmittedEvent,
)
from shared.kafka import publish_event
from shared.service import Runtime

SOURCE = "/services/notifications"


class NotificationHandlers:
    def __init__(self, runtime: Runtime, store: NotificationStore, catalogue: Catalogue) -> None:
        self.runtime = runtime
        self.store = store
        self.catalogue = catalogue

    async def submitted(self, event: SubmittedEvent) -> None:
        idea = event.data
        await self.store.remember_submission(idea.idea_id, Contact.of_submitter(idea.submitter, idea.language))
        # A routed event may have overtaken its submission (they travel on different topics).
        for raw in (await self.store.held(idea.idea_id)).values():
            await self.routed(RoutedEvent.parse(raw))

    async def routed(self, event: RoutedEvent) -> None:
        known, contact = await self.store.submission(event.subject)
        if not known:
            await self.store.hold(event.subject, event.id, event.model_dump_json())
            known, contact = await self.store.submission(event.subject)  # the submission may just have landed
            if not known:
                return
        if contact is not None:
            item = routed_to_submitter(
                event.data, event.id, contact, self.catalogue, self.runtime.settings.public_base_url
            )
            await self._deliver(item)
        await self.store.release(event.subject, event.id)

    async def _deliver(self, item: FeedItem) -> None:
        first_time = await self.store.deliver_in_app(item)
        if not first_time:
            self.runtime.metrics.idempotent_skips.labels(self.runtime.service, "in-app").inc()
        outcome = NotificationSent(
            idea_id=item.idea_id,
            cause_event_id=item.cause_event_id,
            recipient=item.recipient,
            channel="in-app",
            outcome=DeliveryOutcome.DELIVERED,
        )
        envelope = Envelope.wrap(outcome, source=SOURCE, event_id=item.notification_id)
        await publish_event(
            self.runtime.broker,
            self.runtime.topics.notifications_sent,
            envelope,
            timeout_s=self.runtime.settings.kafka.publish_timeout_s,
        )
        self.runtime.logger.info(
            "notification delivered",
            extra={
                "idea_id": item.idea_id,
                "event_id": item.cause_event_id,
                "channel": "in-app",
                "kind": item.kind,
                "first_time": first_time,
            },
        )
