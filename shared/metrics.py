"""Prometheus metrics every service shares. One registry per app; business metrics sit beside transport ones."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge


@dataclass(frozen=True)
class ServiceMetrics:
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
        return cls(
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
