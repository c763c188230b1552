"""Prometheus metrics every service shares. One registry per app; business metrics sit beside transport ones.

Right from the first scrape: a labelled counter appears only when its first child is made, so a counter made on
its first increment would first be scraped at 1 and ``increase(...) > 0`` would never see that first failure after
a restart. So every labelled counter an alert reads is made at 0, with its known label values, before the service
answers its first scrape (:meth:`ServiceMetrics.expect_topics`, called by ``Runtime.running``), and
``kiruna_service_ready`` exists at 0 from the start (the service then measures it itself, see shared/service.py).

Several worker processes (intake's ``INTAKE_WORKERS``, shared/runner.py): prometheus_client's multiprocess mode.
``PROMETHEUS_MULTIPROC_DIR`` is set before the workers import prometheus_client; every metric then writes its
values to files there, and ``/metrics`` answers from :func:`exposition_registry` (a ``MultiProcessCollector`` over
the directory): counters and histograms summed over the workers, each gauge as its ``multiprocess_mode`` says
(:data:`GAUGE_MODES`). Without that variable nothing changes: the app's own registry is what ``/metrics`` shows.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, values
from prometheus_client.multiprocess import MultiProcessCollector

MULTIPROC_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"

GAUGE_MODES = {
    # An alert (KirunaServiceNotReady) must fire when any worker cannot reach Kafka or Redis (a share of the
    # requests fails there): the lowest of the live workers. "live": a dead worker's last value is dropped with it.
    "kiruna_service_ready": "livemin",
    # Every worker is a member of the same consumer groups and measures the same lag: the largest of the live ones
    # (they differ only by when each measured).
    "kiruna_consumer_lag_messages": "livemax",
    # FastStream's messages in flight (its KafkaPrometheusMiddleware, shared/kafka.py): in flight in all workers
    "faststream_received_messages_in_process": "livesum",
}
"""The ``multiprocess_mode`` of every gauge made here; gauges made elsewhere name theirs where they are made."""

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
    published: Counter
    """Events the service wrote to Kafka (acknowledged; a transaction's once committed), by topic."""
    publish_seconds: Histogram
    """From handing an event to the producer to Kafka's acknowledgement (acks=all), by topic."""
    exposition: CollectorRegistry
    """What ``/metrics`` serves: ``registry`` itself, or in multiprocess mode every worker's values merged."""

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
                multiprocess_mode=GAUGE_MODES["kiruna_service_ready"],
            ),
            consumer_lag=Gauge(
                "kiruna_consumer_lag_messages",
                "Records on a partition not yet handled by a consumer group of the service (end - committed offset)",
                ["service", "group", "topic", "partition"],
                registry=registry,
                multiprocess_mode=GAUGE_MODES["kiruna_consumer_lag_messages"],
            ),
            published=Counter(
                "kiruna_published_events",
                "Events written to Kafka and acknowledged (in a transaction: once committed), by topic",
                ["service", "topic"],
                registry=registry,
            ),
            publish_seconds=Histogram(
                "kiruna_publish_seconds",
                "Time from handing an event to the producer to Kafka's acknowledgement (acks=all)",
                ["service", "topic"],
                buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
                registry=registry,
            ),
            exposition=exposition_registry(registry),
        )
        # FastStream's middleware takes a metric of its name already on the registry (faststream/prometheus/
        # container.py), so its one gauge gets a multiprocess mode: without one ("all") each worker's would be a
        # series of its own with a pid label
        Gauge(
            "faststream_received_messages_in_process",
            "Gauge of received messages in process by broker and handler",
            ["app_name", "broker", "handler"],
            registry=registry,
            multiprocess_mode=GAUGE_MODES["faststream_received_messages_in_process"],
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


def multiprocess_mode() -> bool:
    """Whether this process's metrics live in ``PROMETHEUS_MULTIPROC_DIR`` (decided by prometheus_client when it
    was imported: the variable must be set before, as shared/runner.py does for the workers it starts)."""
    return values.ValueClass is not values.MutexValue


def exposition_registry(
    registry: CollectorRegistry, *, multiprocess: bool | None = None, path: str | None = None
) -> CollectorRegistry:
    """The registry ``/metrics`` serves: ``registry`` in one process; in multiprocess mode a registry of its own
    whose one collector reads every worker's files (the app's ``registry`` would show this worker's values only)."""
    if not (multiprocess_mode() if multiprocess is None else multiprocess):
        return registry
    merged = CollectorRegistry(auto_describe=True)
    MultiProcessCollector(merged, path=path)  # the files of PROMETHEUS_MULTIPROC_DIR (or ``path``), at each scrape
    return merged
