"""Kafka plumbing every service shares: client options, the broker factory, subscriber defaults, publishing."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import secrets
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiokafka import AIOKafkaProducer, ConsumerRecord, TopicPartition
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from faststream.message import StreamMessage
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from prometheus_client import CollectorRegistry

from shared.deadletter import DeadLetterMiddleware, DeadLetters
from shared.events import Contract, Envelope
from shared.settings import KafkaSettings
from shared.tracing import LogContextMiddleware, telemetry_middleware, tracer_provider

CLOUDEVENTS_CONTENT_TYPE = "application/cloudevents+json; charset=UTF-8"


class KafkaUnavailable(RuntimeError):
    """Kafka did not acknowledge a write in time; nothing may be reported as stored."""


def client_options(settings: KafkaSettings) -> dict[str, Any]:
    """Connection options for plain aiokafka clients (admin, tools, tests) from the same settings."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_servers,
        "security_protocol": settings.security_protocol,
    }
    if context := settings.ssl_context():
        options["ssl_context"] = context
    if settings.security_protocol.startswith("SASL"):
        options["sasl_mechanism"] = settings.sasl_mechanism
        options["sasl_plain_username"] = settings.sasl_username
        options["sasl_plain_password"] = settings.sasl_password.get_secret_value() if settings.sasl_password else None
    return options


async def describe_partitions(admin: Any, topics: Sequence[str]) -> dict[str, list[TopicPartition]]:
    """The partitions of each of ``topics`` that exists, asked of Kafka with an (open) aiokafka admin client."""
    found: dict[str, list[TopicPartition]] = {}
    for description in await admin.describe_topics(list(topics)):
        if description.get("error_code", 0) == 0 and description["partitions"]:
            found[description["topic"]] = sorted(
                TopicPartition(description["topic"], p["partition"]) for p in description["partitions"]
            )
    return found


def broker_security(settings: KafkaSettings) -> BaseSecurity | None:
    context = settings.ssl_context()
    if not settings.security_protocol.startswith("SASL"):
        return BaseSecurity(ssl_context=context) if context else None
    password = settings.sasl_password.get_secret_value() if settings.sasl_password else ""
    kind = {"SCRAM-SHA-256": SASLScram256, "SCRAM-SHA-512": SASLScram512, "PLAIN": SASLPlaintext}
    return kind[settings.sasl_mechanism](settings.sasl_username or "", password, ssl_context=context)


async def decode_json(msg: StreamMessage[Any]) -> Any:
    """Every event on the platform is JSON, whatever content-type header a foreign producer set."""
    return json.loads(msg.body)


async def parse_records(records: Any, parse: Callable[[Any], Awaitable[StreamMessage[Any]]]) -> StreamMessage[Any]:
    """FastStream's own parser, made safe against header values that are not UTF-8: it would raise before any
    middleware runs and the record would come back for ever. Such values are read with U+FFFD instead."""
    try:
        return await parse(records)
    except UnicodeDecodeError:
        if isinstance(records, tuple):
            return await parse(tuple(_readable_headers(record) for record in records))
        return await parse(_readable_headers(records))


def _readable_headers(record: ConsumerRecord) -> ConsumerRecord:
    headers = [(name, value.decode("utf-8", "replace").encode()) for name, value in record.headers or ()]
    return dataclasses.replace(record, headers=headers)


def underlying_producer(broker: KafkaBroker) -> AIOKafkaProducer:
    """The aiokafka producer under FastStream's broker (idempotent, acks=all), once the broker is connected.
    FastStream keeps it in a private attribute: tests/unit/test_publishing.py pins where."""
    state = broker.config.producer._producer  # FastStream 0.7: ProducerState; raises until connected
    return state.producer


_TRACE_PROPAGATOR = TraceContextTextMapPropagator()


def current_trace_headers() -> dict[str, str]:
    """The ``traceparent`` of the current trace context (the event being handled, or the request): what continues
    a trace into the records a handler writes. Outside any trace, fresh ids (not sampled), so that what follows
    from this record is one trace, as FastStream's middleware does (shared/tracing.py)."""
    carrier: dict[str, str] = {}
    _TRACE_PROPAGATOR.inject(carrier)
    if "traceparent" not in carrier:
        carrier["traceparent"] = f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-00"
    return carrier


def create_broker(
    settings: KafkaSettings,
    *,
    service: str,
    registry: CollectorRegistry,
    dead_letters: DeadLetters,
    logger: logging.Logger | None = None,
    tracer: TracerProvider | None = None,
    exporting_spans: bool = False,
    graceful_timeout_s: float = 15.0,
) -> KafkaBroker:
    """A broker whose producer waits for all in-sync replicas and never duplicates on retry, and whose
    subscribers retry a failing message a bounded number of times, then dead-letter it and carry on.
    Trace context travels in the records' headers; log lines name the idea and event being handled.
    On stop, the subscribers wait up to ``graceful_timeout_s`` for the messages in flight.
    FastStream's own ``Received``/``Processed`` line per message is logged at DEBUG: at thousands of events per
    second it would cost more than the work; the handlers log what they did at INFO."""
    broker = KafkaBroker(
        [server.strip() for server in settings.bootstrap_servers.split(",")],  # FastStream takes one string as one host
        client_id=service,
        acks="all",
        enable_idempotence=True,
        request_timeout_ms=int(settings.publish_timeout_s * 1000),
        security=broker_security(settings),
        decoder=decode_json,
        middlewares=(
            telemetry_middleware(tracer or tracer_provider(service, None), exporting=exporting_spans),
            LogContextMiddleware,
            KafkaPrometheusMiddleware(registry=registry, app_name=service),
            DeadLetterMiddleware.factory(dead_letters),
        ),
        logger=logger or logging.getLogger(service),
        log_level=logging.DEBUG,
        graceful_timeout=graceful_timeout_s,
        description=f"Kiruna innovation platform: {service}",
    )
    dead_letters.bind(broker)
    return broker


def subscriber_options(group_id: str, topic: str) -> dict[str, Any]:
    """Every subscriber: its own consumer group ``<service group>.<topic>`` (one group per subscription, so
    that adding a subscriber never rebalances the others), offsets committed only after the handler's
    effects, a new group starts from the beginning of the topic, and only committed transactions are read (a
    routing decision whose transaction was aborted is never seen: shared/transactions.py)."""
    return {
        "group_id": f"{group_id}.{topic}",
        "ack_policy": AckPolicy.NACK_ON_ERROR,
        "auto_offset_reset": "earliest",
        "isolation_level": "read_committed",
        "parser": parse_records,
    }


def subscribe(broker: KafkaBroker, group_id: str, topic: str, *, title: str, description: str = "") -> Any:
    """``@subscribe(broker, group, topic, title=...)``: a subscriber with the platform's delivery rules."""
    return broker.subscriber(topic, **subscriber_options(group_id, topic), title=title, description=description)


def event_headers(envelope: Envelope[Any]) -> dict[str, str]:
    headers = {
        "content-type": CLOUDEVENTS_CONTENT_TYPE,
        "ce_id": envelope.id,
        "ce_type": envelope.type,
        "ce_source": envelope.source,
        "ce_subject": envelope.subject,
    }
    if envelope.correlationid:
        headers["correlation_id"] = envelope.correlationid
    return headers


async def publish_event(
    broker: KafkaBroker,
    topic: str,
    envelope: Envelope[Contract],
    *,
    timeout_s: float | None,
    direct: bool = False,
) -> None:
    """Publish one event keyed by its idea id and wait until Kafka has acknowledged it (acks=all).

    ``timeout_s``: how long to wait before answering "not stored" (a front door must answer). ``None``: wait for
    the producer's own verdict (acknowledged, or given up), as a handler must. A send abandoned by an outer timeout
    may still be written once the broker answers; a handler that then tried again would write the event twice
    (an organisation's system reading its topic would see it twice).

    ``direct``: hand the record to the broker's aiokafka producer itself, with the current trace context in its
    ``traceparent``, skipping FastStream's publisher and its middlewares per message (its metrics, its spans): the
    caller counts what it published (:class:`shared.publishing.KafkaPublisher`). Used while no span is exported;
    with spans, FastStream's telemetry middleware makes the producer spans of the trace."""
    try:
        async with asyncio.timeout(timeout_s):
            if direct:
                headers = [(name, value.encode()) for name, value in event_headers(envelope).items()]
                headers += [(name, value.encode()) for name, value in current_trace_headers().items()]
                producer = underlying_producer(broker)
                sent = await producer.send(topic, envelope.to_bytes(), key=envelope.subject.encode(), headers=headers)
                await sent
                return
            await broker.publish(
                envelope.to_bytes(),
                topic=topic,
                key=envelope.subject.encode(),
                headers=event_headers(envelope),
                correlation_id=envelope.correlationid or envelope.id,
            )
    except (TimeoutError, OSError) as exc:
        raise KafkaUnavailable(f"Kafka did not acknowledge {envelope.type} on {topic}: {exc!r}") from exc
    except Exception as exc:
        if type(exc).__module__.startswith("aiokafka"):
            raise KafkaUnavailable(f"Kafka refused {envelope.type} on {topic}: {exc!r}") from exc
        raise
