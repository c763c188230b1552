"""Notifications' effects: decide who hears what (domain), render it (templates), and deliver each
(event, recipient, channel) once: in-app at once, e-mail and webhooks through the retry queue.

A person is their pseudonym throughout. Person-state (a submitter's or follower's contact, a follow, preferences)
is made only from a value sealed under a live key (``contacts.py``): an event of someone erased is handled all the
same (an idea stays, a comment is told as removed), it only makes nothing of that person. An erasure
(``people.erasures.v1``) forgets what is kept about the person, and nothing more is sent to them.

Besides the news of ideas: an edit changes what later news calls the idea (and tells nobody: routing places the
edited idea anew, and that routing is told as any); an assignment tells the officer given the idea; a withdrawal
tells the idea's officers and assignees; a merge carries the merged idea's followers over to the idea it went
into; the response-time targets (acknowledged, assessed, decided) are warned of and told when missed, by a
periodic check; a challenge is told to its audience when it opens and a week before it closes
(services/notifications/challenges.py).

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
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from prometheus_client import Counter

from services.notifications import challenges, domain
from services.notifications.contacts import Contacts
from services.notifications.delivery.model import WEBHOOK, Delivery
from services.notifications.delivery.outcomes import Outcomes
from services.notifications.delivery.queue import Deliveries
from services.notifications.domain import ERASED_DETAIL, Audience, Contact, FeedItem, News, Recipient, Rendered
from services.notifications.rendering import Renderer, TemplateFailure
from services.notifications.settings import NotificationsSettings
from services.notifications.store import NotificationStore
from services.notifications.waiting import Waiting
from shared.catalogue import Catalogue
from shared.deadletter import PermanentError
from shared.events import (
    AssignedEvent,
    ChallengeOpenedEvent,
    DeliveryOutcome,
    EditedEvent,
    EngagementEvent,
    EngagementKind,
    Envelope,
    ErasureRequestedEvent,
    IdeaAssigned,
    IdeaEdited,
    IdeaEngagement,
    IdeaRouted,
    IdeaState,
    IdeaStatusChanged,
    PersonRef,
    PreferencesChangedEvent,
    RoutedEvent,
    RoutingTarget,
    Sealed,
    StatusChangedEvent,
    SubmittedEvent,
)
from shared.lifecycle import target_days
from shared.sealing import is_pseudonym, mask_email

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
        contacts: Contacts,
        settings: NotificationsSettings,
        done: Done,
        clock: Clock,
        repeats: Counter,
    ) -> None:
        self.store = store
        self.contacts = contacts
        """Who is there (live keys, erasures), officers by pseudonym, opening comments."""
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
        contact = None
        ref = idea.submitter
        if ref is not None and await self._live(ref.pseudonym, ref.sealed):
            await self.store.remember_contact(ref.pseudonym, ref.sealed)
            await self._remember_where(ref, event.time)
            contact = Contact(person=ref.pseudonym, language=idea.language)
        # an erased submitter's idea is remembered all the same, with nobody to tell
        await self.store.remember_submission(
            idea.idea_id, contact, title=idea.title, language=idea.language, at=event.time
        )
        await self.waiting.submission_seen(idea.idea_id, owner=event.id, handle=self._released)

    async def routed(self, event: RoutedEvent) -> None:
        if await self.waiting.admitted(event, self._released):
            await self._routed(event)

    async def status_changed(self, event: StatusChangedEvent) -> None:
        if await self.waiting.admitted(event, self._released):
            await self._status_changed(event)

    async def engagement(self, event: EngagementEvent) -> None:
        if await self.waiting.admitted(event, self._released):
            await self._engagement(event)

    async def edited(self, event: EditedEvent) -> None:
        if await self.waiting.admitted(event, self._released):
            await self._edited(event)

    async def assigned(self, event: AssignedEvent) -> None:
        if await self.waiting.admitted(event, self._released):
            await self._assigned(event)

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
        await self.notify(news, domain.routed_audience(facts, news, self.contacts.directory(), subscribers))
        await self._finish(event)

    async def _status_changed(self, event: StatusChangedEvent) -> None:
        if await self._seen(event, "status-changed"):
            return
        change: IdeaStatusChanged = event.data
        await self.store.record_state(change.idea_id, change.to_state.value)
        facts = await self.store.facts(change.idea_id)
        if change.to_state == IdeaState.MERGED and change.merged_into and change.merged_into != change.idea_id:
            # its followers and submitter follow the idea it went into from now on (before they are told so)
            await asyncio.gather(
                *(self.store.add_follower(change.merged_into, person) for person in domain.carried_over(facts))
            )
        withdrawn = change.to_state == IdeaState.WITHDRAWN
        news = News(
            kind="withdrawn" if withdrawn else "status-changed",
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
        directory = self.contacts.directory()
        if withdrawn:
            audience = domain.withdrawn_audience(facts, change.changed_by, directory, subscribers)
        else:
            audience = domain.status_audience(facts, news, change.changed_by, directory, subscribers)
        await self.notify(news, audience)
        await self._finish(event)

    async def _engagement(self, event: EngagementEvent) -> None:
        engagement: IdeaEngagement = event.data
        person = engagement.person.pseudonym
        if await self._seen(event, "engagement"):
            return
        live = await self._live(person, engagement.person.sealed)
        if live:
            # supporters, commenters and whoever clicked follow hear what happens to the idea from now on (first:
            # an erasure must find the idea among theirs before anyone is told their words)
            await self.store.remember_contact(person, engagement.person.sealed)
            await self.store.add_follower(engagement.idea_id, person)
            await self._remember_where(engagement.person, event.time)
        if engagement.kind == EngagementKind.COMMENT:
            facts = await self.store.facts(engagement.idea_id)
            # a comment is never told with the name of a writer who chose 'anonym'; an officer's is named, and
            # one written as an organisation's answer is told as that organisation's
            officer = None if engagement.anonymous else self.contacts.directory().officer(person)
            news = News(
                kind="comment",
                cause_event_id=event.id,
                idea_id=engagement.idea_id,
                time=event.time,
                title=facts.title,
                organisations=facts.organisations,
                areas=facts.areas,
                actor=officer.name if officer else None,
                comment=(await self.contacts.open(engagement.text)) if live else None,  # None: told as removed
                by=person,
                anonymous=engagement.anonymous,
                official=engagement.official,
            )
            await self.notify(news, domain.comment_audience(facts, person))
            if news.comment is not None and not await self._live(person, engagement.person.sealed):
                # erased while their words were being told: what was told reads as removed after all
                at = (await self.store.erased_at([person])).get(person, self.clock().timestamp())
                await self.store.forget_person(person, at)
                await self.queue.redact_by(person)
        await self._finish(event)

    async def _edited(self, event: EditedEvent) -> None:
        """The submitter corrected their idea: later news calls it by its new title. Nobody is told of the edit
        itself: routing places the edited idea anew, and its routing is told as any is."""
        if await self._seen(event, "edited"):
            return
        edit: IdeaEdited = event.data
        await self.store.record_edit(edit.idea_id, edit.title, edit.language)
        await self._finish(event)

    async def _assigned(self, event: AssignedEvent) -> None:
        """An organisation gave the idea to one of its officers: they hear it (a reassignment: the new one), and
        from now on the idea's deadline warnings go to them instead of the organisation's officers."""
        if await self._seen(event, "assignments"):
            return
        assignment: IdeaAssigned = event.data
        await self.store.record_assignment(assignment.idea_id, assignment.organisation, assignment.assignee)
        facts = await self.store.facts(assignment.idea_id)
        news = News(
            kind="assigned",
            cause_event_id=event.id,
            idea_id=assignment.idea_id,
            time=event.time,
            title=facts.title,
            organisations=(RoutingTarget(organisation=assignment.organisation),),
            areas=facts.areas,
            actor=domain.officer_name(assignment.assigned_by, self.catalogue),
        )
        directory = self.contacts.directory()
        await self.notify(news, domain.assigned_audience(assignment.assignee, assignment.assigned_by, directory))
        await self._finish(event)

    async def challenge_opened(self, event: ChallengeOpenedEvent) -> None:
        """Tell a new challenge's audience (services/notifications/challenges.py), and keep it until it closes for
        its closing reminder."""
        if await self._seen(event, "challenges"):
            return
        challenge = event.data
        await self.store.remember_challenge(challenge, event.id)
        directory = self.contacts.directory()
        where = challenges.places(challenge, self.catalogue.organisation_ids)
        known = await self.store.known_people(where, until=event.time)  # a rebuild finds the same people again
        news = challenges.news(
            challenge,
            "challenge-opened",
            event.id,
            event.time,
            self.zone,
            opener=domain.officer_name(challenge.opened_by, self.catalogue),
        )
        await self._notify_many(news, challenges.audience(challenge, known, directory))
        await self._finish(event)

    async def preferences_changed(self, event: PreferencesChangedEvent) -> None:
        """Keep a person's new preferences (and their sealed contact), unless they were erased since."""
        changed = event.data
        if await self._live(changed.person, changed.contact):
            await self.store.apply_preferences(changed, event.time)

    async def person_erased(self, event: ErasureRequestedEvent) -> None:
        """Forget everything kept about the person: their feed, contact, preferences and subscriptions, their place
        among followers and as submitter (the ideas stay), their queued digests and deliveries, their open live
        streams and the keyring's cached key. Idempotent: a repeat forgets nothing more."""
        person = event.data.pseudonym
        await self.store.forget_person(person, event.time.timestamp())
        await self.queue.drop_to(person)
        await self.queue.redact_by(person)  # mails and webhook calls still to make that quote their words
        self.contacts.keyring.forget_cached(person)

    async def _live(self, person: str, sealed: Sealed) -> bool:
        """Whether person-state may be made from a value of ``person``'s sealed under their live key."""
        key = await self.contacts.live_key(sealed)
        return key is not None and key.pseudonym == person

    async def _remember_where(self, ref: PersonRef, at: datetime) -> None:
        """Where a person (live) works, when their event says: who a challenge asks."""
        if ref.organisation and self.catalogue.organisation(ref.organisation) is not None:
            await self.store.remember_where(ref.pseudonym, ref.organisation, ref.unit, at)

    # --- periodic tasks ---------------------------------------------------------------------------

    async def check_deadlines(self, now: datetime | None = None) -> int:
        """For every response-time target of the catalogue (acknowledged, assessed, decided) whose clock still
        runs for an idea (``lifecycle.STAGE_STATES``): warn who has the idea (per organisation its assignee, else
        its officers) when the target is about to be missed, and tell the innovation office (and the assignees)
        once it is missed. A final idea (withdrawn, merged, declined) gets none. The clock starts at the
        submission, as analytics measures (``domain.deadline_state``). Each notice is sent once per idea and target
        (its id derives from the idea's first routing), however often this runs."""
        now = now or self.clock()
        notices = 0
        for idea_id in await self.store.open_ideas():
            clock = await self.store.deadline_clock(idea_id)
            if clock is None:
                continue
            start = datetime.fromtimestamp(clock.start, UTC)
            facts: domain.IdeaFacts | None = None
            for target in domain.running_targets(clock.state):  # none for a final idea
                days = target_days(self.catalogue.targets, target)
                state = domain.deadline_state(start, now, days, self.settings.deadline_warning_working_days, self.zone)
                if state == "ok":
                    continue
                cause = domain.deadline_cause(clock.event_id, state, target)
                if await self.done.seen(cause):
                    continue
                facts = facts or await self.store.facts(idea_id)
                news = News(
                    kind=f"deadline-{state}",
                    cause_event_id=cause,
                    idea_id=idea_id,
                    time=now,
                    title=facts.title,
                    organisations=facts.organisations,
                    areas=facts.areas,
                    due=domain.due_date(start, days, self.zone),
                    target=target,
                )
                directory = self.contacts.directory()
                if state == "warning":
                    audience = domain.deadline_warning_audience(facts, directory)
                else:
                    audience = domain.deadline_missed_audience(directory, facts)
                await self.notify(news, audience)
                await self.done.mark(cause)
                notices += 1
        return notices

    async def remind_closing_challenges(self, now: datetime | None = None) -> int:
        """Remind a challenge's audience ``challenge_reminder_days`` before it closes, once per challenge (the
        reminder's id derives from its opening event), however often this runs; forget the closed ones."""
        now = now or self.clock()
        days = self.settings.challenge_reminder_days
        reminded = 0
        for challenge, opened_event_id in await self.store.open_challenges():
            state = challenges.closing_state(challenge, now, days)
            if state == "closed":
                await self.store.challenge_closed(challenge.challenge_id)
                continue
            if state == "open":
                continue
            cause = challenges.closing_cause(opened_event_id)
            if await self.done.seen(cause):
                continue
            where = challenges.places(challenge, self.catalogue.organisation_ids)
            known = await self.store.known_people(where, until=now)
            opener = domain.officer_name(challenge.opened_by, self.catalogue)
            news = challenges.news(challenge, "challenge-closing", cause, now, self.zone, opener=opener)
            await self._notify_many(news, challenges.audience(challenge, known, self.contacts.directory()))
            await self.done.mark(cause)
            reminded += 1
        return reminded

    async def send_digest(self, day: date) -> int:
        """One e-mail per person who chose the daily digest, with everything that happened on ``day``
        (local time). Safe to run again: each digest's id derives from (day, person)."""
        sent = 0
        people = await self.store.digest_people(day)
        erased = await self.contacts.erased(people)
        for person in people:
            items = await self.store.digest_items(day, person)
            preferences = await self.store.preferences(person)
            if not items or "email" not in preferences.channels or person in erased:
                continue
            language = preferences.language or items[-1].get("language") or "sv"
            digest_id = domain.digest_id(day, person)
            context = {"day": day.isoformat(), "items": items, "lang": language, "link": None}
            link = self._unsubscribe_url(person)
            rendered = self._render("digest", language, context, link)
            delivery = self._email(
                digest_id, person, domain.digest_subject(day), digest_id, "digest", language, rendered, link
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
        """Render everything first (a template error dead-letters the event before any effect), then deliver.
        Someone erased hears nothing (reported skipped, "erased")."""
        # a person is a pseudonym; anything else is a leftover of the state before pseudonyms (the rebuild forgets
        # it) and hears nothing
        audience = replace(audience, recipients=tuple(r for r in audience.recipients if is_pseudonym(r.person)))
        people = [r.person for r in audience.recipients]
        preferences, erased = await asyncio.gather(self.store.preferences_of(people), self.contacts.erased(people))
        rendered: list[tuple[Recipient, str, Rendered, Rendered | None, str]] = []
        skipped = [told for r in audience.recipients if r.person in erased for told in self._skipped_erased(news, r)]
        for recipient in audience.recipients:
            if recipient.person in erased:
                continue
            language = domain.language_of(recipient, preferences[recipient.person])
            context = domain.template_context(news, recipient, language, self.catalogue, self.settings.public_base_url)
            link = self._unsubscribe_url(recipient.person)
            message = self._render(news.kind, language, context, link)
            removed = None  # a comment's words are shown until its writer is erased, then this
            if news.by is not None and news.comment is not None:
                removed = self._render(news.kind, language, {**context, "comment": None}, link)
            rendered.append((recipient, language, message, removed, link))
        webhooks = [org for org in audience.organisations if org in self.settings.webhooks]
        webhook_text: dict[str, str] = {}
        webhook_removed: dict[str, str] = {}
        if webhooks:
            link = self._unsubscribe_url("")
            for language in ("sv", "en"):
                context = domain.template_context(
                    news, Recipient("", "officer"), language, self.catalogue, self.settings.public_base_url
                )
                webhook_text[language] = self._render(news.kind, language, context, link).summary
                if news.by is not None and news.comment is not None:
                    without = {**context, "comment": None}
                    webhook_removed[language] = self._render(news.kind, language, without, link).summary

        # Every recipient's and organisation's delivery at once: each is keyed by its own notification id, so
        # their order does not matter, and their Redis commands share round trips.
        reports = await asyncio.gather(
            *(
                self._carry_out(news, recipient, language, message, removed, link, plan)
                for recipient, language, message, removed, link in rendered
                for plan in domain.plan(preferences[recipient.person])
            ),
            *(self.queue.enqueue(self._webhook(news, org, webhook_text, webhook_removed)) for org in webhooks),
        )
        await asyncio.gather(*(self.outcomes.outcome(**r) for r in [*skipped, *reports] if isinstance(r, dict)))

    async def _notify_many(self, news: News, audience: Audience, chunk: int = 500) -> None:
        """:meth:`notify` a large audience (a group-wide challenge) ``chunk`` people at a time, so that one event
        does not hold thousands of renderings and Redis commands at once. Each notice is keyed by its notification
        id: a chunk done again (a retry) changes nothing."""
        for start in range(0, max(len(audience.recipients), 1), chunk):
            await self.notify(news, replace(audience, recipients=audience.recipients[start : start + chunk]))

    def _skipped_erased(self, news: News, recipient: Recipient) -> list[dict[str, Any]]:
        person = recipient.person
        return [
            {
                "notification_id": domain.notification_id(news.cause_event_id, news.kind, person, channel),
                "idea_id": news.idea_id,
                "cause_event_id": news.cause_event_id,
                "recipient": person,
                "channel": channel,
                "outcome": DeliveryOutcome.SKIPPED,
                "detail": ERASED_DETAIL,
            }
            for channel in domain.CHANNELS
        ]

    async def _carry_out(
        self,
        news: News,
        recipient: Recipient,
        language: str,
        message: Rendered,
        removed: Rendered | None,
        unsubscribe_url: str,
        plan: domain.Plan,
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
            link=f"{self.settings.public_base_url}{news.page}",
            time=news.time.astimezone(UTC).isoformat(),
            by=news.by if removed is not None else None,
            removed=removed.summary if removed is not None else None,
            path=news.path or "",
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
        email = self._email(
            nid, person, news.idea_id, news.cause_event_id, news.kind, language, message, unsubscribe_url
        )
        if removed is not None:  # the same mail without the words, should their writer be erased before it goes
            email.by = news.by
            email.removed = self._email(
                nid, person, news.idea_id, news.cause_event_id, news.kind, language, removed, unsubscribe_url
            ).message
        await self.queue.enqueue(email)
        return None  # reported by the delivery worker once it is delivered (or given up)

    def _unsubscribe_url(self, person: str) -> str:
        """The signed link that turns e-mail off for ``person``, for ``NOTIFICATIONS_UNSUBSCRIBE_TOKEN_DAYS``."""
        expires = self.clock() + timedelta(days=self.settings.unsubscribe_token_days)
        token = domain.unsubscribe_token(person, self.settings.unsubscribe_secret.get_secret_value(), expires)
        return f"{self.settings.public_url}/api/v1/unsubscribe?token={token}"

    def _render(self, kind: str, language: str, context: dict, unsubscribe_url: str) -> Rendered:
        try:
            return self.renderer.render(kind, language, context, unsubscribe_url=unsubscribe_url)
        except TemplateFailure as exc:
            raise PermanentError(str(exc)) from exc

    def _email(
        self,
        nid: str,
        person: str,
        idea_id: str,
        cause: str,
        kind: str,
        language: str,
        message: Rendered,
        unsubscribe_url: str,
    ) -> Delivery:
        return Delivery(
            id=nid,
            channel="email",
            recipient=person,
            idea_id=idea_id,
            cause_event_id=cause,
            kind=kind,
            message={  # no address: the mailer opens the recipient's sealed contact when it sends
                "subject": message.subject,
                "text": message.text,
                "html": message.html,
                "language": language,
                "unsubscribe_url": unsubscribe_url,  # the link in its text: made once
            },
        )

    def _webhook(self, news: News, org: str, text: dict[str, str], removed: dict[str, str]) -> Delivery:
        return Delivery(
            id=domain.notification_id(news.cause_event_id, news.kind, f"{WEBHOOK}{org}", "webhook"),
            channel="webhook",
            recipient=f"{WEBHOOK}{org}",
            idea_id=news.idea_id,
            cause_event_id=news.cause_event_id,
            kind=news.kind,
            message=self._webhook_body(news, org, text),
            by=news.by if removed else None,
            removed=self._webhook_body(news, org, removed) if removed else None,
        )

    def _webhook_body(self, news: News, org: str, text: dict[str, str]) -> dict[str, Any]:
        body = {
            "id": domain.notification_id(news.cause_event_id, news.kind, f"{WEBHOOK}{org}", "webhook"),
            "type": f"se.kiruna.innovation.notification.{news.kind}.v1",
            "time": news.time.astimezone(UTC).isoformat(),
            "organisation": org,
            "idea_id": news.idea_id,
            "cause_event_id": news.cause_event_id,
            "kind": news.kind,
            "title": news.title,
            "text": text["sv"],
            "text_en": text["en"],
            "link": f"{self.settings.public_base_url}{news.page}",
        }
        if news.to_state:
            body.update(state=news.to_state, reason=news.reason)
        return body

    # --- plumbing ---------------------------------------------------------------------------------

    async def _released(self, event: Envelope[Any]) -> None:
        """Handle an event that waited for its submission (the waiting room lets it in)."""
        handle = {
            IdeaRouted: self._routed,
            IdeaStatusChanged: self._status_changed,
            IdeaEngagement: self._engagement,
            IdeaEdited: self._edited,
            IdeaAssigned: self._assigned,
        }
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
    """Response-time targets, challenges about to close and daily digests, checked on a timer once ``ready`` (Kafka
    connected). Each is idempotent: running them twice, or in two replicas at once, sends nothing twice."""
    await ready.wait()
    tasks = (
        ("deadlines", handlers.check_deadlines),
        ("challenges", handlers.remind_closing_challenges),
        ("digest", handlers.send_due_digest),
    )
    while True:
        for name, task in tasks:
            try:
                await task()
            except Exception as exc:  # Redis or Kafka away for a moment: try again next round
                logger.warning("periodic task failed", extra={"task": name, "error": mask_email(repr(exc))})
        await asyncio.sleep(interval_s)
