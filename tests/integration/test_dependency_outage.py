"""Redis goes away under a running consumer and comes back: the events that arrived meanwhile wait, and are all
handled once it is back; none is dead-lettered (issue 15: a three-second Redis restart dead-lettered nine
submissions, whose submitters never heard of them). Real Kafka, a real redis-server of the test's own."""

from __future__ import annotations

import pytest

from services.routing.app import create_app as routing_app
from services.routing.settings import RoutingSettings
from shared.events import Envelope, IdeaSubmitted
from tests.support.apps import running
from tests.support.kafka import eventually, probe, raw_producer
from tests.support.redis_server import free_port, redis_server

pytestmark = pytest.mark.kafka


def idea(n: int) -> Envelope:
    return Envelope.wrap(
        IdeaSubmitted(
            idea_id=f"0dead0ff-0000-4000-8000-{n:012d}",
            title=f"Fjärrvärme till badhuset {n}",
            description="Anslut det nya badhuset till fjärrvärmenätet.",
            anonymous=True,
        ),
        source="/tests/outage",
    )


async def test_events_that_arrive_while_redis_is_away_wait_for_it_and_none_is_dead_lettered(
    service_settings, topics, kafka_settings
):
    port = free_port()
    settings = service_settings(RoutingSettings, redis_url=f"redis://127.0.0.1:{port}/0")
    ideas = [idea(n) for n in range(8)]
    async with redis_server(port) as first:
        app = routing_app(settings)
        async with (
            running(app),
            probe(kafka_settings, topics.routed) as routed,
            probe(kafka_settings, topics.dlq(topics.submitted)) as dead,
            raw_producer(kafka_settings) as producer,
        ):
            metrics = app.state.runtime.metrics
            await producer.send_and_wait(topics.submitted, ideas[0].to_bytes(), key=ideas[0].subject.encode())
            await routed.wait_for(lambda rs: len(rs) >= 1)

            first.kill()  # Redis dies (kill -9) ...
            await first.wait()
            for event in ideas[1:]:
                await producer.send_and_wait(topics.submitted, event.to_bytes(), key=event.subject.encode())

            def waited() -> float:
                return metrics.dependency_waits.labels("routing", topics.submitted, "redis")._value.get()

            await eventually(lambda: waited() >= 2, timeout=30)  # ... routing notices and waits
            async with redis_server(port):  # ... and comes back, empty
                await routed.wait_for(lambda rs: {r.key for r in rs} >= {e.subject.encode() for e in ideas})
            assert dead.records == []
            assert metrics.dead_letters.labels("routing", topics.submitted, "failed")._value.get() == 0
