"""The publisher port: what a handler needs to record an event, and nothing else. ``KafkaPublisher`` is the real
one (the service's broker, acks=all); tests give handlers an in-memory fake with the same ``publish``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

from faststream.kafka import KafkaBroker

from shared.events import Envelope
from shared.kafka import KafkaUnavailable, publish_event
from shared.metrics import ServiceMetrics

if TYPE_CHECKING:
    from shared.service import Runtime


class Publisher(Protocol):
    async def publish(self, topic: str, envelope: Envelope[Any]) -> None:
        """Return once the event is stored; raise :class:`shared.kafka.KafkaUnavailable` when it is not."""
        ...

    async def after_stored(self, effect: Callable[[], Awaitable[None]]) -> None:
        """Run ``effect`` once everything published before is stored: at once here; at the commit of the batch's
        transaction for :class:`shared.transactions.TransactionalPublisher` (marking an event handled before
        then would lose its effects if the transaction were aborted)."""
        ...


class KafkaPublisher:
    """Publishes through the service's broker and waits for Kafka's acknowledgement (``publish_event``).

    Given ``connected`` (the runtime's ``kafka_writable``), it refuses at once while the producer is not connected
    yet, as a front door must (an HTTP request would otherwise wait for a broker that is still starting).
    Subscribers' handlers need no such check: they only run once the broker is started. They publish with
    ``timeout_s=None`` (:func:`shared.kafka.publish_event`): each send waits for the producer's verdict, so a
    stalled broker never makes them write an event twice."""

    def __init__(
        self,
        broker: KafkaBroker,
        *,
        timeout_s: float | None,
        connected: asyncio.Event | None = None,
        metrics: ServiceMetrics | None = None,
        direct: bool = False,
    ) -> None:
        self.broker = broker
        self.timeout_s = timeout_s
        self.connected = connected
        self.metrics = metrics
        self.direct = direct and metrics is not None  # FastStream's own metrics count what goes through it

    @classmethod
    def of(cls, runtime: Runtime, *, timeout_s: float | None, connected: asyncio.Event | None = None) -> KafkaPublisher:
        """The service's publisher: straight to the broker's producer, counted in ``kiruna_published_events_total``
        and ``kiruna_publish_seconds``, while no span is exported; through FastStream's publisher (its producer
        spans) when an OTLP endpoint is set (shared/kafka.py ``publish_event``)."""
        direct = not runtime.ops.otlp_endpoint
        return cls(runtime.broker, timeout_s=timeout_s, connected=connected, metrics=runtime.metrics, direct=direct)

    async def publish(self, topic: str, envelope: Envelope[Any]) -> None:
        if self.connected is not None and not self.connected.is_set():
            raise KafkaUnavailable("not connected to Kafka yet")
        started = time.perf_counter()
        await publish_event(self.broker, topic, envelope, timeout_s=self.timeout_s, direct=self.direct)
        if self.metrics is not None:
            service = self.metrics.service
            self.metrics.published.labels(service, topic).inc()
            self.metrics.publish_seconds.labels(service, topic).observe(time.perf_counter() - started)

    async def after_stored(self, effect: Callable[[], Awaitable[None]]) -> None:
        await effect()  # publish returned: it is stored
