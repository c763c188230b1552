"""Routing's effects: classify a submitted idea, apply re-routes from the innovation office and learn from them,
and publish where each idea went, to the group's topic and to each organisation's own topic. Routing reads an
idea's title and text, never its submitter (sealed in ideas.submitted.v2), so it holds nothing about people."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime
from typing import Any

from services.routing.classifier import Router, RoutingDecision
from services.routing.feedback import FeedbackMemory
from services.routing.store import RoutingStore
from shared.batch import each_in_scope
from shared.events import (
    AreaMatch,
    EditedEvent,
    Envelope,
    ErasureRequestedEvent,
    IdeaRouted,
    RerouteCommand,
    RoutingTarget,
    SubmittedEvent,
    derived_event_id,
    utc_now,
)
from shared.metrics import ServiceMetrics
from shared.publishing import Publisher
from shared.topics import Topics

SOURCE = "/services/routing"
SERVICE = "routing"


def feedback_entry(command: RerouteCommand, title: str, description: str) -> dict[str, Any]:
    return {
        "idea_id": command.subject,
        "time": command.time.isoformat(),
        "title": title,
        "description": description,
        "organisations": [t.model_dump(mode="json") for t in command.data.organisations],
        "areas": [a.model_dump(mode="json") for a in command.data.areas],
    }


def learn(memory: FeedbackMemory, entry: dict[str, Any]) -> None:
    memory.learn(
        entry["title"],
        entry["description"],
        tuple(RoutingTarget.model_validate(t) for t in entry["organisations"]),
        tuple(AreaMatch.model_validate(a) for a in entry["areas"]),
    )


class RoutingHandlers:
    """Routing's effects over narrow ports: a publisher (Kafka, acks=all), routing's store (which also remembers
    the events handled), the router in use, the feedback memory it learns into, the topic names, the service's
    metrics and a clock. Tests give it in-memory fakes (tests/fakes/routing.py)."""

    def __init__(
        self,
        publisher: Publisher,
        router: Callable[[], Router],
        store: RoutingStore,
        memory: FeedbackMemory,
        *,
        topics: Topics,
        metrics: ServiceMetrics,
        clock: Callable[[], datetime] = utc_now,
        logger: logging.Logger | None = None,
    ) -> None:
        self.publisher = publisher
        self.router = router
        self.store = store
        self.memory = memory
        self.topics = topics
        self.metrics = metrics
        self.clock = clock
        self.logger = logger or logging.getLogger(SERVICE)
        self._learned = 0

    async def submitted(self, event: SubmittedEvent) -> None:
        """One submission (a redelivery handled on its own, the tests): :meth:`submitted_batch` of one."""
        await self.submitted_batch([event])

    async def submitted_batch(self, events: Sequence[SubmittedEvent]) -> None:
        """Every submission of a consumed batch: their state read and written in one Redis round trip, each
        classified and published (into the batch's transaction), all marked handled in one round trip once the
        transaction is committed, and one log line for the batch (each idea's line at DEBUG)."""
        started = time.perf_counter()
        arrivals = await self.store.arrive_all(
            [
                (
                    e.data.idea_id,
                    e.data.title,
                    e.data.description,
                    e.id,
                    {"areas": list(e.data.area_hints), "organisations": list(e.data.organisation_hints)},
                )
                for e in events
            ]
        )
        handled: list[str] = []
        organisations: Counter[str] = Counter()
        skipped = kept = triage = 0
        arrived = dict(zip((id(event) for event in events), arrivals, strict=True))
        for event in each_in_scope(events):  # each in its own log context and trace
            seen, held, rerouted, overtaken = arrived[id(event)]
            idea = event.data
            if seen:
                self.metrics.idempotent_skips.labels(SERVICE, self.topics.submitted).inc()
                skipped += 1
                continue
            title, description = overtaken or (idea.title, idea.description)  # an edit read first: route its text
            if held:
                await self._learn({**held, "title": title, "description": description})
            if rerouted:
                # The innovation office placed it before this submission reached routing: its decision stands.
                self.logger.info("idea already re-routed; not routing it again", extra={"idea_id": idea.idea_id})
                kept += 1
            else:
                hinted = (idea.area_hints, idea.organisation_hints)
                decision = await self._route(
                    event, idea.idea_id, title, description, hinted, "routing.route", "idea routed"
                )
                organisations.update(decision.organisation_ids)
                triage += bool(decision.triage)
            handled.append(event.id)
        await self.publisher.after_stored(lambda: self.store.mark_all_handled(handled))
        self.logger.info(
            "ideas routed",
            extra={
                "topic": self.topics.submitted,
                "events": len(events),
                "routed": len(handled) - kept,
                "already_rerouted": kept,
                "already_handled": skipped,
                "to_triage": triage,
                "organisations": dict(organisations),
                "elapsed_ms": round(1000 * (time.perf_counter() - started), 1),
            },
        )

    async def edited(self, event: EditedEvent) -> None:
        """The submitter corrected the text before an officer acknowledged it: route the new text (with the
        submission's hints) and publish where it goes now. The innovation office's re-route stands; an edit that
        overtook its submission is routed when the submission arrives."""
        if await self.store.handled(event.id):
            self.metrics.idempotent_skips.labels(SERVICE, self.topics.edited).inc()
            return
        edit = event.data
        submitted, hints, rerouted = await self.store.edit(edit.idea_id, edit.title, edit.description)
        if submitted and not rerouted:
            hinted = (tuple(hints.get("areas", ())), tuple(hints.get("organisations", ())))
            handler, message = "routing.route-edited", "edited idea routed again"
            await self._route(
                event, edit.idea_id, edit.title, edit.description, hinted, handler, message, level=logging.INFO
            )
        else:
            why = "re-routed by the innovation office" if rerouted else "its submission has not arrived yet"
            self.logger.info("edited idea not routed again: " + why, extra={"idea_id": edit.idea_id})
        await self.handled(event.id)

    async def _route(
        self,
        cause: Envelope[Any],
        idea_id: str,
        title: str,
        description: str,
        hints: tuple[tuple[str, ...], tuple[str, ...]],
        handler: str,
        message: str,
        *,
        level: int = logging.DEBUG,
    ) -> RoutingDecision:
        """Classify a text with the submitter's hints (areas, organisations) and publish where the idea goes, with
        an id derived from the cause and ``handler``; log ``message`` at ``level`` (a batch logs its own line)."""
        decision = self.router().route(title, description, *hints)
        envelope = Envelope.wrap(
            IdeaRouted(
                idea_id=idea_id,
                title=title,
                organisations=decision.organisations,
                areas=decision.areas,
                reason=decision.reason,
                triage=decision.triage,
                catalogue_version=decision.catalogue_version,
            ),
            source=SOURCE,
            event_id=derived_event_id(cause.id, handler),
            correlation_id=cause.correlationid or cause.id,
            time=self.clock(),
        )
        await self.publish(envelope)
        if self.logger.isEnabledFor(level):
            self.logger.log(
                level,
                message,
                extra={
                    "idea_id": idea_id,
                    "event_id": envelope.id,
                    "cause_event_id": cause.id,
                    "organisations": list(decision.organisation_ids),
                    "triage": decision.triage,
                },
            )
        return decision

    async def erased(self, event: ErasureRequestedEvent) -> None:
        """A person asked to be forgotten. Routing keeps ideas' titles and texts, re-routes and what it learnt from
        them, never who submitted, commented or supported (not even a pseudonym): nothing to forget here."""
        self.logger.info(
            "erasure requested: routing holds nothing about people",
            extra={"pseudonym": event.data.pseudonym, "event_id": event.id},
        )

    async def reroute(self, command: RerouteCommand) -> None:
        """Replace the routing with the innovation office's, publish it, and learn from it."""
        if await self.store.handled(command.id):
            self.metrics.idempotent_skips.labels(SERVICE, self.topics.routing_commands).inc()
            return
        order = command.data
        await self.store.mark_rerouted(order.idea_id)
        text = await self.store.text(order.idea_id)
        routed = IdeaRouted(
            idea_id=order.idea_id,
            title=text[0] if text else "",
            organisations=order.organisations,
            areas=order.areas,
            reason=f"Omdirigerad av {order.requested_by}: {order.reason}",
            catalogue_version=self.router().catalogue_version,
            rerouted_by=order.requested_by,
        )
        envelope = Envelope.wrap(
            routed,
            source=SOURCE,
            event_id=derived_event_id(command.id, "routing.reroute"),
            correlation_id=command.correlationid or command.id,
            time=self.clock(),
        )
        await self.publish(envelope)
        if text:
            await self._learn(feedback_entry(command, *text))
        else:
            await self.store.hold_feedback(order.idea_id, feedback_entry(command, "", ""))
        await self.handled(command.id)
        self.logger.info(
            "idea re-routed",
            extra={
                "idea_id": order.idea_id,
                "event_id": envelope.id,
                "cause_event_id": command.id,
                "organisations": [t.organisation for t in order.organisations],
                "requested_by": order.requested_by,
            },
        )

    async def handled(self, event_id: str) -> None:
        """Remember ``event_id`` as handled once what it published is stored: in a transaction, at its commit
        (remembered before, an aborted transaction would leave the event skipped when it comes again)."""
        await self.publisher.after_stored(lambda: self.store.mark_handled(event_id))

    async def _learn(self, entry: dict[str, Any]) -> None:
        await self.store.save_feedback(entry["idea_id"], entry)
        learn(self.memory, entry)
        self._learned = await self.store.feedback_count()

    async def refresh_feedback(self) -> None:
        """Learn what other replicas learnt (they share the Redis hash)."""
        count = await self.store.feedback_count()
        if count != self._learned:
            for entry in await self.store.feedback_entries():
                learn(self.memory, entry)
            self._learned = count

    @contextlib.asynccontextmanager
    async def learning(self, interval_s: float) -> AsyncIterator[None]:
        """What was learnt before this start, then every ``interval_s`` what other replicas learn meanwhile.
        Redis away (or hung) at start does not stop the start: routing works without what it learnt, says so, and
        learns it at the next refresh."""
        try:
            await self.refresh_feedback()
        except Exception as exc:
            self.logger.warning(
                "could not read learned re-routes at start; routing without them until the next refresh",
                extra={"error": repr(exc), "retry_in_s": interval_s},
            )

        async def keep_learning() -> None:
            while True:
                await asyncio.sleep(interval_s)
                try:
                    await self.refresh_feedback()
                except Exception as exc:
                    self.logger.warning("could not refresh learned re-routes", extra={"error": repr(exc)})

        refresher = asyncio.create_task(keep_learning(), name="feedback-refresh")
        try:
            yield
        finally:
            refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await refresher

    async def publish(self, envelope: Envelope[IdeaRouted]) -> None:
        """To ``ideas.routed.v1`` and to ``org.<id>.ideas.v1`` of every organisation named, all acknowledged."""
        targets = [
            self.topics.routed,
            *dict.fromkeys(self.topics.organisation(t.organisation) for t in envelope.data.organisations),
        ]
        for topic in targets:  # into the batch's transaction: no waiting here, so no tasks for them
            await self.publisher.publish(topic, envelope)
