"""The services' publisher (shared/publishing.py) on the real Kafka: straight to the broker's aiokafka producer while
no span is exported (no FastStream publisher per message), with the CloudEvents headers and a traceparent, counted
in the service's own metrics; through FastStream's publisher otherwise."""

from __future__ import annotations

import uuid

import pytest
from aiokafka import AIOKafkaProducer
from prometheus_client import generate_latest

from shared.events import Envelope, IdeaSubmitted
from shared.kafka import underlying_producer
from shared.publishing import KafkaPublisher
from shared.service import Runtime
from shared.settings import ServiceSettings
from tests.support.kafka import probe

pytestmark = pytest.mark.kafka


def submitted() -> Envelope[IdeaSubmitted]:
    idea_id = str(uuid.uuid4())
    return Envelope.wrap(IdeaSubmitted(idea_id=idea_id, title="Snöröjning", description="text"), source="/tests")


def sample(text: str, name: str, **labels: str) -> float | None:
    wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith(f"{name}{{{wanted}}} "):
            return float(line.split()[-1])
    return None


async def test_an_event_goes_straight_to_the_producer_with_its_headers_and_is_counted(
    service_settings, topics, kafka_settings
):
    runtime = Runtime.create("publishtest", service_settings(ServiceSettings))
    publisher = KafkaPublisher.of(runtime, timeout_s=10)
    assert publisher.direct  # no OTLP endpoint in the tests: no span is exported
    event = submitted()
    async with runtime.running(), probe(kafka_settings, topics.submitted) as records:
        assert isinstance(underlying_producer(runtime.broker), AIOKafkaProducer)  # where FastStream keeps it
        await publisher.publish(topics.submitted, event)
        await publisher.publish(topics.submitted, event)  # the same event twice: two records, both counted
        [first, _] = await records.wait_count(2)
        text = generate_latest(runtime.metrics.registry).decode()
    headers = {name: value.decode() for name, value in first.headers}
    assert first.key == event.subject.encode() and Envelope.parse(first.value).id == event.id
    assert headers["ce_id"] == event.id and headers["ce_type"] == event.type and headers["ce_subject"] == event.subject
    assert headers["traceparent"].startswith("00-") and len(headers["traceparent"].split("-")[1]) == 32
    assert sample(text, "kiruna_published_events_total", service="publishtest", topic=topics.submitted) == 2
    assert sample(text, "kiruna_publish_seconds_count", service="publishtest", topic=topics.submitted) == 2
    faststream = [line for line in text.splitlines() if line.startswith("faststream_published_messages_total{")]
    assert not faststream  # nothing went through FastStream's publisher


async def test_without_metrics_the_publisher_goes_through_faststream(service_settings, topics, kafka_settings):
    runtime = Runtime.create("publishtest", service_settings(ServiceSettings))
    publisher = KafkaPublisher(runtime.broker, timeout_s=10, direct=True)  # nothing to count with: not direct
    assert not publisher.direct
    async with runtime.running(), probe(kafka_settings, topics.submitted) as records:
        await publisher.publish(topics.submitted, submitted())
        await records.wait_count(1)
        text = generate_latest(runtime.metrics.registry).decode()
    assert any(line.startswith("faststream_published_messages_total{") for line in text.splitlines())
