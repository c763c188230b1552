"""Notifications' effects: decide who hears what (domain), render it (templates), and deliver each
(event, recipient, channel) once: in-app at once, e-mail and webhooks through the retry queue.

An event about an idea whose submission has not been seen yet waits until it has (services/notifications/
waiting.py). A redelivered event is skipped by its id; and should a crash fall between the effects and that mark,
every effect is keyed by its notification id anyway.

The handlers get the narrow things they use: their store, the waiting room, the delivery queue, where outcomes
are told, the catalogue, a clock and the idempotency marks; the app wires the real ones, the unit tests fakes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from prometheus_client import Counter

from services.notifications import domain
from services.notifications.delivery.model import Delivery
from services.notifications.delivery.outcomes import Outcomes
from services.notifications.delivery.queue import Deliveries
from services.notifications.domain import Audience, Contact, FeedItem, News, Recipient, Rendered, UnknownPerson
from services.notifications.rendering import Renderer, TemplateFailure
from services.notifications.settings import NotificationsSettings
from services.notifications.store import NotificationStore
from services.notifications.waiting import Waiting
from shared.catalogue import Catalogue
from shared.deadletter import PermanentError
from shared.events import (
    DeliveryOutcome,
    EngagementEvent,
    EngagementKind,
    Envelope,
    IdeaEngagement,
    IdeaRouted,
    IdeaStatusChanged,
    PreferencesChangedEvent,
    RoutedEvent,
    StatusChangedEvent,
    SubmittedEvent,
    derived_event_id,
)
from shared.lifecycle import target_days
from shared.workdays import add_working_days

SERVICE = "notifications"

Clock = Callable[[], datetime]
"""The time now, aware (``shared.events.utc_now``; a fixed one in tests)."""


class Done(Protocol):
    """Events (and derived causes) already handled: ``shared.idempotency.Idempotency`` in Redis."""

    async def seen(self, event_id: str) -> bool: ...

    async def mark(self, event_id: str) -> None: ...


class NotificationHandlers:
    def __init__(
        self,
        *,
        store: NotificationStore,
        waiting: Waiting,
        deliveries: Deliveries,
        outcomes: Outcomes,
        renderer: Renderer,
        catalogue: Catalogue,
        settings: NotificationsSettings,
        done: Done,
        clock: Clock,
        repeats: Counter,
    ) -> None:
        self.store = store
        self.waiting = waiting
        self.queue = deliveries
        self.outcomes = outcomes
        self.renderer = renderer
        self.catalogue = catalogue  # kept current by the live catalogue
        self.settings = settings
        self.done = done
        self.clock = clock
        self.repeats = repeats
        """``kiruna_idempotent_skips``: redelivered events skipped, by topic."""
        self.zone = ZoneInfo(settings.timezone)

    # --- events -----------------------------------------------------------------------------------

    async def submitted(self, event: SubmittedEvent) -> None:
        idea = event.data
        contact = Contact.of_submitter(idea.submitter, idea.language)
        await self.store.remember_submission(idea.idea_id, contact, title=idea.title, language=idea.language)
        await self.waiting.submission_seen(idea.idea_id, owner=event.id, handle=self._released)

    async def routed(self, event: RoutedEvent) -> None:
        if await self.waiting.admitted(event, self._released):
            await self._routed(event)

    async def status_changed(self, event: StatusChangedEvent) -> None:
        if await self.waiting.admitted(event, self._released):
            await self._status_changed(event)

    async def engagement(self, event: EngagementEvent) -> None:
        self._person(event.data)  # an unknown person is dead-lettered at once rather than kept waiting
        if await self.waiting.admitted(event, self._released):
            await self._engagement(event)

    async def _routed(self, event: RoutedEvent) -> None:
        if await self._seen(event, "routed"):
            return
        routed: IdeaRouted = event.data
        await self.store.record_routing(routed.idea_id, routed, event.id, event.time)
        areas = tuple(a.area for a in routed.areas)
        facts, subscribers = await asyncio.gather(
            self.store.facts(routed.idea_id),
            self.store.subscribers(areas, tuple(t.organisation for t in routed.organisations)),
        )
        news = News(
            kind="routed",
            cause_event_id=event.id,
            idea_id=routed.idea_id,
            time=event.time,
            title=routed.title or facts.title,
            organisations=routed.organisations,
            areas=areas,
            rerouted=routed.rerouted_by is not None,
        )
        await self.notify(news, domain.routed_audience(facts, news, self.catalogue, subscribers))
        await self._finish(event)

    async def _status_changed(self, event: StatusChangedEvent) -> None:
        if await self._seen(event, "status-changed"):
            return
        change: IdeaStatusChanged = event.data
        await self.store.record_state(change.idea_id, change.to_state.value)
        facts = await self.store.facts(change.idea_id)
        news = News(
            kind="status-changed",
            cause_event_id=event.id,
            idea_id=change.idea_id,
            time=event.time,
            title=facts.title,
            organisations=facts.organisations,
            areas=facts.areas,
            to_state=change.to_state.value,
            reason=change.reason,
            actor=domain.officer_name(change.changed_by, self.catalogue),
            merged_into=change.merged_into,
        )
        subscribers = await self.store.subscribers(facts.areas, tuple(t.organisation for t in facts.organisations))
        audience = domain.status_audience(facts, news, change.changed_by, self.catalogue, subscribers)
        await self.notify(news, audience)
        await self._finish(event)

    def _person(self, engagement: IdeaEngagement) -> str:
        try:
            return domain.person_id(engagement.person, self.catalogue)
        except UnknownPerson as exc:
            raise PermanentError(str(exc)) from exc

    async def _engagement(self, event: EngagementEvent) -> None:
        engagement: IdeaEngagement = event.data
        person = self._person(engagement)
        if await self._seen(event, "engagement"):
            return
        if engagement.kind == EngagementKind.COMMENT:
            facts = await self.store.facts(engagement.idea_id)
            news = News(
                kind="comment",
                cause_event_id=event.id,
                idea_id=engagement.idea_id,
                time=event.time,
                title=facts.title,
                organisations=facts.organisations,
                areas=facts.areas,
                actor=domain.officer_name(engagement.person, self.catalogue),
                comment=engagement.text or "",
            )
            await self.notify(news, domain.comment_audience(facts, person))
        # supporters, commenters and whoever clicked follow hear what happens to the idea from now on
        await self.store.add_follower(engagement.idea_id, person)
        await self._finish(event)

    async def preferences_changed(self, event: PreferencesChangedEvent) -> None:
        await self.store.apply_preferences(event.data, event.time)

    # --- periodic tasks ---------------------------------------------------------------------------

    async def check_deadlines(self, now: datetime | None = None) -> int:
        """Warn the responsible officers when an idea's acknowledgement target is about to be missed, and the
        innovation office once it is missed. Each notice is sent once per idea (its id derives from the idea's
        first routing), however often this runs."""
        now = now or self.clock()
        target = target_days(self.catalogue.targets, "acknowledged")
        notices = 0
        for idea_id in await self.store.open_ideas():
            clock = await self.store.routing_clock(idea_id)
            if clock is None:
                continue
            routed_at = datetime.fromtimestamp(clock[0], UTC)
            state = domain.deadline_state(
                routed_at, now, target, self.settings.deadline_warning_working_days, self.zone
            )
            if state == "ok":
                continue
            cause = derived_event_id(clock[1], f"notifications.deadline-{state}.acknowledged")
            if await self.done.seen(cause):
                continue
            facts = await self.store.facts(idea_id)
            news = News(
                kind=f"deadline-{state}",
                cause_event_id=cause,
                idea_id=idea_id,
                time=now,
                title=facts.title,
                organisations=facts.organisations,
                areas=facts.areas,
                due=add_working_days(routed_at.astimezone(self.zone), target),
            )
            if state == "warning":
                audience = domain.deadline_warning_audience(facts, self.catalogue)
            else:
                audience = domain.deadline_missed_audience(self.catalogue)
            await self.notify(news, audience)
            await self.done.mark(cause)
            notices += 1
        return notices

    async def send_digest(self, day: date) -> int:
        """One e-mail per person who chose the daily digest, with everything that happened on ``day``
        (local time). Safe to run again: each digest's id derives from (day, person)."""
        sent = 0
        for person in await self.store.digest_people(day):
            items = await self.store.digest_items(day, person)
            preferences = await self.store.preferences(person)
            if not items or "email" not in preferences.channels:
                continue
            language = preferences.language or items[-1].get("language") or "sv"
            digest_id = domain.digest_id(day, person)
            context = {"day": day.isoformat(), "items": items, "lang": language, "link": None}
            rendered = self._render("digest", language, context, person)
            delivery = self._email(
                digest_id, person, domain.digest_subject(day), digest_id, "digest", language, rendered
            )
            sent += await self.queue.enqueue(delivery)
        await self.store.mark_digest_done(day)
        return sent

    async def send_due_digest(self, now: datetime | None = None) -> int:
        """Yesterday's digest, once the local clock has passed ``digest_hour``."""
        local = (now or self.clock()).astimezone(self.zone)
        yesterday = local.date() - timedelta(days=1)
        if local.hour < self.settings.digest_hour or await self.store.digest_done(yesterday):
            return 0
        return await self.send_digest(yesterday)

    # --- who hears what, and how ------------------------------------------------------------------

    async def notify(self, news: News, audience: Audience) -> None:
        """Render everything first (a template error dead-letters the event before any effect), then deliver."""
        people = [r.person for r in audience.recipients]
        preferences = await self.store.preferences_of(people)
        rendered: list[tuple[Recipient, str, Rendered]] = []
        for recipient in audience.recipients:
            language = domain.language_of(recipient, preferences[recipient.person])
            context = domain.template_context(news, recipient, language, self.catalogue, self.settings.public_base_url)
            rendered.append((recipient, language, self._render(news.kind, language, context, recipient.person)))
        webhooks = [org for org in audience.organisations if org in self.settings.webhooks]
        webhook_text = {}
        if webhooks:
            for language in ("sv", "en"):
                context = domain.template_context(
                    news, Recipient("", "officer"), language, self.catalogue, self.settings.public_base_url
                )
                webhook_text[language] = self._render(news.kind, language, context, "").summary

        # Every recipient's and organisation's delivery at once: each is keyed by its own notification id, so
        # their order does not matter, and their Redis commands share round trips.
        reports = await asyncio.gather(
            *(
                self._carry_out(news, recipient, language, message, plan)
                for recipient, language, message in rendered
                for plan in domain.plan(preferences[recipient.person])
            ),
            *(self.queue.enqueue(self._webhook(news, org, webhook_text)) for org in webhooks),
        )
        await asyncio.gather(*(self.outcomes.outcome(**r) for r in reports if isinstance(r, dict)))

    async def _carry_out(
        self, news: News, recipient: Recipient, language: str, message: Rendered, plan: domain.Plan
    ) -> dict[str, Any] | None:
        person = recipient.person
        nid = domain.notification_id(news.cause_event_id, news.kind, person, plan.channel)
        report = {
            "notification_id": nid,
            "idea_id": news.idea_id,
            "cause_event_id": news.cause_event_id,
            "recipient": person,
            "channel": plan.channel,
        }
        item = FeedItem(
            notification_id=nid,
            cause_event_id=news.cause_event_id,
            idea_id=news.idea_id,
            recipient=person,
            kind=news.kind,
            text=message.summary,
            link=f"{self.settings.public_base_url}/ideas/{news.idea_id}",
            time=news.time.astimezone(UTC).isoformat(),
        )
        if plan.action == "skip":
            return {**report, "outcome": DeliveryOutcome.SKIPPED, "detail": plan.detail}
        if plan.channel == "in-app":
            first_time = await self.store.deliver_in_app(item)
            if not first_time:
                self.repeats.labels(SERVICE, "in-app").inc()
            return {**report, "outcome": DeliveryOutcome.DELIVERED, "count": first_time}
        if plan.action == "digest":
            await self.store.add_to_digest(domain.local_day(news.time, self.zone), item, language)
            return {**report, "outcome": DeliveryOutcome.SKIPPED, "detail": plan.detail}
        await self.queue.enqueue(
            self._email(nid, person, news.idea_id, news.cause_event_id, news.kind, language, message)
        )
        return None  # reported by the delivery worker once it is delivered (or given up)

    def _unsubscribe_url(self, person: str) -> str:
        """The signed link that turns e-mail off for ``person``, for ``NOTIFICATIONS_UNSUBSCRIBE_TOKEN_DAYS``."""
        expires = self.clock() + timedelta(days=self.settings.unsubscribe_token_days)
        token = domain.unsubscribe_token(person, self.settings.unsubscribe_secret.get_secret_value(), expires)
        return f"{self.settings.public_url}/api/v1/unsubscribe?token={token}"

    def _render(self, kind: str, language: str, context: dict, person: str) -> Rendered:
        unsubscribe_url = self._unsubscribe_url(person)
        try:
            return self.renderer.render(kind, language, context, unsubscribe_url=unsubscribe_url)
        except TemplateFailure as exc:
            raise PermanentError(str(exc)) from exc

    def _email(
        self, nid: str, person: str, idea_id: str, cause: str, kind: str, language: str, message: Rendered
    ) -> Delivery:
        return Delivery(
            id=nid,
            channel="email",
            recipient=person,
            idea_id=idea_id,
            cause_event_id=cause,
            kind=kind,
            message={
                "to": person,
                "subject": message.subject,
                "text": message.text,
                "html": message.html,
                "language": language,
                "unsubscribe_url": self._unsubscribe_url(person),
            },
        )

    def _webhook(self, news: News, org: str, text: dict[str, str]) -> Delivery:
        return Delivery(
            id=domain.notification_id(news.cause_event_id, news.kind, f"webhook:{org}", "webhook"),
            channel="webhook",
            recipient=org,
            idea_id=news.idea_id,
            cause_event_id=news.cause_event_id,
            kind=news.kind,
            message=self._webhook_body(news, org, text),
        )

    def _webhook_body(self, news: News, org: str, text: dict[str, str]) -> dict[str, Any]:
        body = {
            "id": domain.notification_id(news.cause_event_id, news.kind, f"webhook:{org}", "webhook"),
            "type": f"se.kiruna.innovation.notification.{news.kind}.v1",
            "time": news.time.astimezone(UTC).isoformat(),
            "organisation": org,
            "idea_id": news.idea_id,
            "cause_event_id": news.cause_event_id,
            "kind": news.kind,
            "title": news.title,
            "text": text["sv"],
            "text_en": text["en"],
            "link": f"{self.settings.public_base_url}/ideas/{news.idea_id}",
        }
        if news.to_state:
            body.update(state=news.to_state, reason=news.reason)
        return body

    # --- plumbing ---------------------------------------------------------------------------------

    async def _released(self, event: Envelope[Any]) -> None:
        """Handle an event that waited for its submission (the waiting room lets it in)."""
        handle = {IdeaRouted: self._routed, IdeaStatusChanged: self._status_changed, IdeaEngagement: self._engagement}
        await handle[type(event.data)](event)

    async def _seen(self, event: Envelope[Any], topic: str) -> bool:
        if await self.done.seen(event.id):
            self.repeats.labels(SERVICE, topic).inc()
            return True
        return False

    async def _finish(self, event: Envelope[Any]) -> None:
        await self.done.mark(event.id)


async def periodically(
    handlers: NotificationHandlers, ready: asyncio.Event, interval_s: float, logger: logging.Logger
) -> None:
    """Response-time targets and daily digests, checked on a timer once ``ready`` (Kafka connected). Both are
    idempotent: running them twice, or in two replicas at once, sends nothing twice."""
    await ready.wait()
    while True:
        for name, task in (("deadlines", handlers.check_deadlines), ("digest", handlers.send_due_digest)):
            try:
                await task()
            except Exception as exc:  # Redis or Kafka away for a moment: try again next round
                logger.warning("periodic task failed", extra={"task": name, "error": repr(exc)})
        await asyncio.sleep(interval_s)
