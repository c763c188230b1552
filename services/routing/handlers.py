"""Routing's effects: classify a submitted idea, apply re-routes from the innovation office and learn from them,
and publish where each idea went, to the group's topic and to each organisation's own topic."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from services.routing.classifier import Router, RoutingDecision
from services.routing.feedback import FeedbackMemory
from services.routing.store import RoutingStore
from shared.events import (
    AreaMatch,
    Envelope,
    IdeaRouted,
    IdeaSubmitted,
    RerouteCommand,
    RoutingTarget,
    SubmittedEvent,
    derived_event_id,
)
from shared.idempotency import Idempotency
from shared.kafka import publish_event
from shared.service import Runtime

SOURCE = "/services/routing"


def routed_event(idea: IdeaSubmitted, decision: RoutingDecision) -> IdeaRouted:
    return IdeaRouted(
        idea_id=idea.idea_id,
        title=idea.title,
        organisations=decision.organisations,
        areas=decision.areas,
        reason=decision.reason,
        triage=decision.triage,
        catalogue_version=decision.catalogue_version,
    )


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
    def __init__(
        self, runtime: Runtime, router: Callable[[], Router], store: RoutingStore, memory: FeedbackMemory
    ) -> None:
        self.runtime = runtime
        self.router = router
        self.store = store
        self.memory = memory
        self.done = Idempotency(runtime.redis, prefix=runtime.settings.redis_prefix, scope="routing")
        self._learned = 0

    async def submitted(self, event: SubmittedEvent) -> None:
        idea = event.data
        seen, held, rerouted = await self.store.arrive(
            idea.idea_id, idea.title, idea.description, done_key=self.done.key(event.id)
        )
        if seen:
            self.runtime.metrics.idempotent_skips.labels(self.runtime.service, self.runtime.topics.submitted).inc()
            return
        if held:
            await self._learn({**held, "title": idea.title, "description": idea.description})
        if rerouted:
            # The innovation office placed it before this submission reached routing: its decision stands.
            self.runtime.logger.info("idea already re-routed; not routing it again", extra={"idea_id": idea.idea_id})
        else:
            decision = self.router().route(idea.title, idea.description, idea.area_hints, idea.organisation_hints)
            envelope = Envelope.wrap(
                routed_event(idea, decision),
                source=SOURCE,
                event_id=derived_event_id(event.id, "routing.route"),
                correlation_id=event.correlationid or event.id,
            )
            await self.publish(envelope)
            self.runtime.logger.info(
                "idea routed",
                extra={
                    "idea_id": idea.idea_id,
                    "event_id": envelope.id,
                    "cause_event_id": event.id,
                    "organisations": list(decision.organisation_ids),
                    "triage": decision.triage,
                },
            )
        await self.done.mark(event.id)

    async def reroute(self, command: RerouteCommand) -> None:
        """Replace the routing with the innovation office's, publish it, and learn from it."""
        if await self.done.seen(command.id):
            self.runtime.metrics.idempotent_skips.labels(
                self.runtime.service, self.runtime.topics.routing_commands
            ).inc()
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
        )
        await self.publish(envelope)
        if text:
            await self._learn(feedback_entry(command, *text))
        else:
            await self.store.hold_feedback(order.idea_id, feedback_entry(command, "", ""))
        await self.done.mark(command.id)
        self.runtime.logger.info(
            "idea re-routed",
            extra={
                "idea_id": order.idea_id,
                "event_id": envelope.id,
                "cause_event_id": command.id,
                "organisations": [t.organisation for t in order.organisations],
                "requested_by": order.requested_by,
            },
        )

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

    async def publish(self, envelope: Envelope[IdeaRouted]) -> None:
        """To ``ideas.routed.v1`` and to ``org.<id>.ideas.v1`` of every organisation named, all acknowledged."""
        topics = self.runtime.topics
        targets = [
            topics.routed,
            *dict.fromkeys(topics.organisation(t.organisation) for t in envelope.data.organisations),
        ]
        timeout = self.runtime.settings.kafka.publish_timeout_s
        await asyncio.gather(
            *(publish_event(self.runtime.broker, topic, envelope, timeout_s=timeout) for topic in targets)
        )
