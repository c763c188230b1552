"""Routing as two replicas in one consumer group (ROUTING_REPLICAS=2 in deploy/platform.sh): the partitions are
shared between them, and every idea is routed exactly once whichever replica holds it."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections import Counter

import pytest
from prometheus_client import CollectorRegistry

from services.routing.app import create_app as routing_app
from services.routing.settings import RoutingSettings
from shared.events import Envelope, IdeaSubmitted
from shared.kafka import subscriber_options
from tests.support.apps import running
from tests.support.kafka import eventually, group_done, probe, raw_producer

pytestmark = pytest.mark.kafka

TEXTS = [
    ("Fjärrvärme till badhuset", "Anslut badhuset till fjärrvärmenätet."),
    ("Snöröjning av cykelbanorna", "Ploga cykelbanorna först på morgonen."),
    ("Hyresgästernas tvättstugor", "Boka tvättstugan i appen, hyresgästerna vill det."),
    ("Digital skolskjuts", "Visa var skolbussen är i realtid för föräldrarna."),
]


def received(registry: CollectorRegistry, topic: str) -> float:
    """Records of ``topic`` this replica took in (FastStream's counter, on the replica's own registry)."""
    return sum(
        sample.value
        for family in registry.collect()
        if family.name == "faststream_received_messages"
        for sample in family.samples
        if sample.name.endswith("_total") and topic in sample.labels.get("handler", "")
    )


async def test_two_replicas_share_the_partitions_and_route_every_idea_once(service_settings, topics, kafka_settings):
    assert kafka_settings.partitions >= 2
    group = f"routing-replicas-{uuid.uuid4().hex[:8]}"
    replicas = [
        routing_app(service_settings(RoutingSettings, group_id=group, instance=f"replica-{i}")) for i in range(2)
    ]
    registries = [app.state.runtime.metrics.registry for app in replicas]
    sent: list[str] = []
    async with (
        contextlib.AsyncExitStack() as stack,
        probe(kafka_settings, topics.routed) as routed,
        raw_producer(kafka_settings) as producer,
    ):
        for app in replicas:
            await stack.enter_async_context(running(app))

        async def send_until_both_took_some() -> bool:
            for i, (title, text) in enumerate(TEXTS * 2):
                idea = Envelope.wrap(
                    IdeaSubmitted(idea_id=str(uuid.uuid4()), title=f"{title} {i}", description=text, anonymous=True),
                    source="/tests",
                )
                await producer.send_and_wait(topics.submitted, idea.to_bytes(), key=idea.subject.encode())
                sent.append(idea.subject)
            return all(received(registry, topics.submitted) > 0 for registry in registries)

        # until the group has settled with a partition for each replica, and each has handled some
        await eventually(send_until_both_took_some, timeout=60, interval=0.5)
        submitted_group = subscriber_options(group, topics.submitted)["group_id"]
        await eventually(lambda: group_done(kafka_settings, submitted_group, topics.submitted), timeout=60)
        await routed.wait_for(lambda rs: {r.key.decode() for r in rs} >= set(sent), timeout=30)
        await eventually(routed.caught_up, timeout=30)  # with the group done: nothing more will come

        per_idea = Counter(json.loads(r.value)["subject"] for r in routed.records)
        assert set(per_idea) == set(sent)
        twice = {idea: n for idea, n in per_idea.items() if n != 1}
        assert not twice, f"{len(twice)} of {len(sent)} ideas routed more than once: {list(twice.items())[:5]}"
        taken = [received(registry, topics.submitted) for registry in registries]
        assert all(n > 0 for n in taken) and sum(taken) >= len(sent), taken
