"""Routing's effects: classify a submitted idea and publish where it went, to the group and to each
organisation's own topic."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from services.routing.classifier import Router, RoutingDecision
from shared.events import Envelope, IdeaRouted, IdeaSubmitted, SubmittedEvent, derived_event_id
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


class RoutingHandlers:
    def __init__(self, runtime: Runtime, router: Callable[[], Router]) -> None:
        self.runtime = runtime
        self.router = router
        self.done = Idempotency(runtime.redis, prefix=runtime.settings.redis_prefix, scope="routing")

    async def submitted(self, event: SubmittedEvent) -> None:
        if await self.done.seen(event.id):
            self.runtime.metrics.idempotent_skips.labels(self.runtime.service, self.runtime.topics.submitted).inc()
            return
        idea = event.data
        decision = self.router().route(idea.title, idea.description, idea.area_hints, idea.organisation_hints)
        envelope = Envelope.wrap(
            routed_event(idea, decision),
            source=SOURCE,
            event_id=derived_event_id(event.id, "routing.route"),
            correlation_id=event.correlationid or event.id,
        )
        await self.publish(envelope)
        await self.done.mark(event.id)
        self.runtime.logger.info(
            "idea routed",
            extra={
                "idea_id": idea.idea_id,
                "event_id": envelope.id,
                "cause_event_id": event.id,
                "organisations": [t.organisation for t in decision.organisations],
                "triage": decision.triage,
            },
        )

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
