"""Prometheus metrics every service shares. One registry per app; business metrics sit beside transport ones.

Right from the first scrape: a labelled counter appears only when its first child is made, so a counter made on
its first increment would first be scraped at 1 and ``increase(...) > 0`` would never see that first failure after
a restart. So every labelled counter an alert reads is made at 0, with its known label values, before the service
answers its first scrape (:meth:`ServiceMetrics.expect_topics`, called by ``Runtime.running``), and
``kiruna_service_ready`` exists at 0 from the start (the service then measures it itself, see shared/service.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge

DEAD_LETTER_REASONS = ("malformed", "rejected", "failed")
"""The reasons shared/deadletter.py gives a consumed record it dead-letters (``delivery-failed`` is notifications'
own, for a delivery given up: made by its factory with :meth:`ServiceMetrics.expect_dead_letters`)."""
DEPENDENCIES = ("kafka", "redis")
"""What a handler may find away and wait for (shared/deadletter.py ``dependency_away``)."""


@dataclass(frozen=True)
class ServiceMetrics:
    service: str
    registry: CollectorRegistry
    dead_letters: Counter
    idempotent_skips: Counter
    handler_retries: Counter
    dependency_waits: Counter
    ready: Gauge
    consumer_lag: Gauge

    @classmethod
    def create(cls, service: str) -> ServiceMetrics:
        registry = CollectorRegistry(auto_describe=True)
        labels = {"service": service}
        metrics = cls(
            service=service,
            registry=registry,
            dead_letters=Counter(
                "kiruna_dead_letters",
                "Messages sent to a dead-letter topic, by source topic and reason",
                ["service", "topic", "reason"],
                registry=registry,
            ),
            idempotent_skips=Counter(
                "kiruna_idempotent_skips",
                "Events skipped because they had already been handled",
                ["service", "topic"],
                registry=registry,
            ),
            handler_retries=Counter(
                "kiruna_handler_retries",
                "Handler attempts that failed and were retried",
                ["service", "topic"],
                registry=registry,
            ),
            dependency_waits=Counter(
                "kiruna_dependency_waits",
                "Handler attempts that found Kafka or Redis away and waited for it (not counted against the message)",
                ["service", "topic", "dependency"],
                registry=registry,
            ),
            ready=Gauge(
                "kiruna_service_ready",
                "1 when the service is connected to Kafka and Redis",
                list(labels),
                registry=registry,
            ),
            consumer_lag=Gauge(
                "kiruna_consumer_lag_messages",
                "Records on a partition not yet handled by a consumer group of the service (end - committed offset)",
                ["service", "group", "topic", "partition"],
                registry=registry,
            ),
        )
        metrics.ready.labels(service).set(0)  # not ready until the service has checked (not absent)
        return metrics

    def expect_topics(self, topics: Iterable[str]) -> None:
        """Make the dead-letter, dependency-wait and retry counters of every consumed topic at 0."""
        for topic in topics:
            self.expect_dead_letters(topic, DEAD_LETTER_REASONS)
            self.expect_dependency_waits(topic, DEPENDENCIES)
            self.handler_retries.labels(self.service, topic)

    def expect_dead_letters(self, topic: str, reasons: Iterable[str]) -> None:
        for reason in reasons:
            self.dead_letters.labels(self.service, topic, reason)

    def expect_dependency_waits(self, topic: str, dependencies: Iterable[str]) -> None:
        for dependency in dependencies:
            self.dependency_waits.labels(self.service, topic, dependency)
