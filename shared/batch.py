"""Batch subscribers: the way every busy topic is consumed.

A one-message subscriber pays, per event, a wait for its publishes' acknowledgements and then an offset commit
(one more broker round trip and fsync): a few hundred events per second whatever the work (``make bench``:
694/s against 17,234/s batched, for a loop that does nothing). A batch subscriber takes up to
``KAFKA_BATCH_MAX_RECORDS`` records at once and handles them together:

- the records are parsed one by one; one that cannot be parsed goes to ``<topic>.dlq`` at once and the others
  carry on (FastStream's batch decoder would fail the whole batch);
- the events of one idea (one Kafka key) are handled in the order of the topic, those of different ideas
  concurrently (at most ``KAFKA_BATCH_CONCURRENCY`` at a time), so their Redis round trips and publishes overlap
  and their produce requests are shared;
- each event is retried and dead-lettered under the same policy as one-message subscribers
  (:class:`shared.deadletter.DeadLetters`);
- the offsets are committed once, after every event of the batch was handled or dead-lettered. If a
  dead-letter write fails, the batch is not committed and comes again: every handler is idempotent, so the
  events already handled change nothing the second time.

Each event is handled inside its own log context (idea, event and correlation id) and its own span, a child of
the trace in the record's ``traceparent``, so what it publishes continues the submitter's trace.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from faststream.exceptions import HandlerException
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from shared.asyncapi import document_payload
from shared.deadletter import MALFORMED
from shared.kafka import subscriber_options
from shared.logs import log_context
from shared.tracing import trace_id_of
from shared.transactions import all_or_nothing

if TYPE_CHECKING:
    from aiokafka import ConsumerRecord

    from shared.events import Envelope
    from shared.service import Runtime
    from shared.transactions import Transactions

EventHandler = Callable[["Envelope[Any]"], Awaitable[None]]
IdeaHandler = Callable[[Sequence["Envelope[Any]"]], Awaitable[None]]
BatchHandler = Callable[[Sequence["Envelope[Any]"]], Awaitable[None]]

_PROPAGATOR = TraceContextTextMapPropagator()


_SCOPES: contextvars.ContextVar[tuple[BatchConsumer, dict[int, Delivered]] | None] = contextvars.ContextVar(
    "kiruna_batch_scopes", default=None
)


def each_in_scope(events: Sequence[Envelope[Any]]) -> Iterator[Envelope[Any]]:
    """The events given to a ``per_batch`` handler, each yielded inside its own log context (idea, event and
    correlation id) and trace (its record's ``traceparent``), so that what the handler publishes for it continues
    that event's trace. Outside a batch subscriber (a test calling the handler) the events as they are."""
    current = _SCOPES.get()
    for event in events:
        delivered = current[1].get(id(event)) if current is not None else None
        if delivered is None:
            yield event
            continue
        with current[0]._scope(delivered):
            yield event


@dataclass(frozen=True)
class Delivered:
    """One parsed event with the record it came in."""

    record: ConsumerRecord
    event: Envelope[Any]


def subscribe_batch(
    runtime: Runtime,
    topic: str,
    model: type[Envelope[Any]],
    *,
    title: str,
    description: str = "",
    each: EventHandler | None = None,
    per_idea: IdeaHandler | None = None,
    per_batch: BatchHandler | None = None,
    transactions: Transactions | None = None,
) -> Any:
    """Subscribe ``topic`` in batches with the platform's delivery rules. Give exactly one of:

    - ``each(event)``: called for every event, one idea's events in order;
    - ``per_idea(events)``: called once per idea with all its events of the batch, in order (for handlers
      that can save round trips by taking them together). If it fails, its events are handled again one at a
      time — ``per_idea([event])`` under the retry policy — so that only the failing one is dead-lettered;
    - ``per_batch(events)``: called once with every parsed event of the batch, each idea's in the topic's order
      (for handlers that read and write a whole batch's state in one round trip each; :func:`each_in_scope` gives
      each event its log context and trace). If it fails, the events are handled again one at a time, ideas
      concurrently, as ``per_batch([event])`` under the retry policy. While spans are recorded (an OTLP endpoint
      is set) it is always called that way, one event in its own span, so that traces stay whole.

    With ``transactions`` (shared/transactions.py) what the batch's handlers publish is committed with the
    batch's offsets in one Kafka transaction.
    """
    if sum(handler is not None for handler in (each, per_idea, per_batch)) != 1:
        raise TypeError("subscribe_batch takes exactly one of each=, per_idea= or per_batch=")
    kafka = runtime.settings.kafka
    consumer = BatchConsumer(
        runtime, topic, model, each=each, per_idea=per_idea, per_batch=per_batch, concurrency=kafka.batch_concurrency
    )

    options = subscriber_options(runtime.settings.group_id, topic)
    subscriber = runtime.broker.subscriber(
        topic,
        **options,
        batch=True,
        max_records=kafka.batch_max_records,
        batch_timeout_ms=kafka.batch_wait_ms,
        decoder=keep_records,
        title=title,
        description=description,
    )

    context = runtime.broker.context

    @subscriber
    async def on_batch() -> None:
        # The message from FastStream's context, not as a `KafkaMessage` parameter: fast_depends resolves such a
        # context field in a worker thread, a thread hop on every batch (make bench: 3-4 % of a consumer's CPU).
        message = context.get_local("message")
        if transactions is None:
            await consumer.handle(message.raw_message)
            return
        async with transactions.batch(message.raw_message, options["group_id"], message.consumer):
            await consumer.handle(message.raw_message)

    document_payload(subscriber, model)
    return subscriber


async def keep_records(message: Any, _: Any) -> None:
    """The batch's decoder decodes nothing: :class:`BatchConsumer` parses each record itself."""
    return None


class BatchConsumer:
    def __init__(
        self,
        runtime: Runtime,
        topic: str,
        model: type[Envelope[Any]],
        *,
        each: EventHandler | None,
        per_idea: IdeaHandler | None,
        concurrency: int,
        per_batch: BatchHandler | None = None,
    ) -> None:
        self.runtime = runtime
        self.topic = topic
        self.model = model
        self.each = each
        self.per_idea = per_idea
        self.per_batch = per_batch
        self.concurrency = concurrency
        # Without an OTLP endpoint no span is recorded: each event's scope then only carries its record's trace
        # context (what it publishes continues the submitter's trace) without making a span of its own.
        self.spans = bool(getattr(getattr(runtime, "ops", None), "otlp_endpoint", None))
        self.dead_letters = runtime.dead_letters
        self.tracer = trace.get_tracer("kiruna.batch", tracer_provider=runtime.tracer)
        self.logger = runtime.logger

    async def handle(self, records: Sequence[ConsumerRecord]) -> None:
        started = time.perf_counter()
        ideas = await self.parse(records)
        # With spans recorded (OTLP endpoint set), a per_batch handler gets one event at a time, in the event's span,
        # so that every Redis command and publish belongs to its idea's trace; without, the whole batch at once.
        if self.per_batch is not None and not self.spans and ideas and await self._whole_batch(ideas):
            self._log_batch(records, ideas, started)
            return
        limit = asyncio.Semaphore(self.concurrency)

        async def one_idea(events: list[Delivered]) -> None:
            async with limit:
                if self.per_idea is not None:
                    await self._per_idea(events)
                elif self.per_batch is not None:
                    handler = self.per_batch
                    for delivered in events:
                        with self._scope(delivered):
                            await self.dead_letters.handle(
                                delivered.record, lambda d=delivered: all_or_nothing(lambda: handler([d.event]))
                            )
                else:
                    for delivered in events:
                        await self._each(delivered)

        # A TaskGroup: if one idea's dead-letter write fails, the others stop too and the batch comes again.
        async with asyncio.TaskGroup() as group:
            for events in ideas:
                group.create_task(one_idea(events))
        self._log_batch(records, ideas, started)

    async def _whole_batch(self, ideas: list[list[Delivered]]) -> bool:
        """``per_batch`` with every event of the batch at once; False (after a warning) if it failed, so that the
        events are handled again one at a time."""
        assert self.per_batch is not None
        events = [delivered.event for idea in ideas for delivered in idea]
        token = _SCOPES.set((self, {id(delivered.event): delivered for idea in ideas for delivered in idea}))
        try:
            await all_or_nothing(lambda: self.per_batch(events))
            return True
        except HandlerException:
            raise
        except Exception as exc:
            self.logger.warning(
                "a batch's events failed together; handling them one at a time",
                extra={"topic": self.topic, "events": len(events), "error": repr(exc)},
            )
            return False
        finally:
            _SCOPES.reset(token)

    def _log_batch(self, records: Sequence[ConsumerRecord], ideas: list[list[Delivered]], started: float) -> None:
        if self.logger.isEnabledFor(logging.DEBUG):
            self.logger.debug(
                "batch handled",
                extra={
                    "topic": self.topic,
                    "records": len(records),
                    "ideas": len(ideas),
                    "elapsed_ms": round(1000 * (time.perf_counter() - started), 1),
                },
            )

    async def parse(self, records: Sequence[ConsumerRecord]) -> list[list[Delivered]]:
        """The batch's events grouped by idea (Kafka key), in the topic's order; the unparseable dead-lettered."""
        ideas: dict[Any, list[Delivered]] = {}
        for record in records:
            try:
                event = self.model.model_validate_json(record.value or b"")
            except MALFORMED as exc:
                await self.dead_letters.dead_letter(record, exc, "malformed", 1)
                continue
            key = record.key if record.key is not None else (record.partition, record.offset)
            ideas.setdefault(key, []).append(Delivered(record, event))
        return list(ideas.values())

    async def _each(self, delivered: Delivered) -> None:
        assert self.each is not None
        handler = self.each
        with self._scope(delivered):
            await self.dead_letters.handle(delivered.record, lambda: all_or_nothing(lambda: handler(delivered.event)))

    async def _per_idea(self, events: list[Delivered]) -> None:
        assert self.per_idea is not None
        handler = self.per_idea
        try:
            with self._scope(events[0], count=len(events)):
                await all_or_nothing(lambda: handler([delivered.event for delivered in events]))
            return
        except HandlerException:
            raise
        except Exception as exc:
            self.logger.warning(
                "an idea's events failed together; handling them one at a time",
                extra={"topic": self.topic, "events": len(events), "error": repr(exc)},
            )
        for delivered in events:
            with self._scope(delivered):
                await self.dead_letters.handle(
                    delivered.record, lambda d=delivered: all_or_nothing(lambda: handler([d.event]))
                )

    @contextlib.contextmanager
    def _scope(self, delivered: Delivered, *, count: int = 1) -> Iterator[None]:
        """Log context and span of one event (or of the first of an idea's events handled together)."""
        record, event = delivered.record, delivered.event
        carrier = {
            name: value.decode("utf-8", "replace") for name, value in record.headers or () if name == "traceparent"
        }
        parent = _PROPAGATOR.extract(carrier)
        if not self.spans:
            token = otel_context.attach(parent)
            try:
                with log_context(
                    idea_id=event.subject,
                    event_id=event.id if count == 1 else None,
                    correlation_id=event.correlationid,
                    trace_id=trace_id_of(carrier.get("traceparent")),
                ):
                    yield
            finally:
                otel_context.detach(token)
            return
        with self.tracer.start_as_current_span(
            f"{record.topic} process",
            context=parent,
            kind=trace.SpanKind.CONSUMER,
            attributes={
                "messaging.system": "kafka",
                "messaging.destination.name": record.topic,
                "messaging.kafka.partition": record.partition,
                "messaging.kafka.offset": record.offset,
                "messaging.message.id": event.id,
                "messaging.batch.message_count": count,
            },
        ) as span:
            trace_id = span.get_span_context().trace_id
            with log_context(
                idea_id=event.subject,
                event_id=event.id if count == 1 else None,
                correlation_id=event.correlationid,
                trace_id=format(trace_id, "032x") if trace_id else None,
            ):
                yield
