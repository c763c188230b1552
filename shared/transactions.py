"""Read-process-write in Kafka transactions: what a consumed batch publishes and the batch's offsets are committed
together, or not at all.

Without them a handler that published and then died before its offset was committed published again when the
batch came back; the event ids are derived from their causes, so the platform's own consumers skip the repeat,
but an organisation's system reading ``org.<id>.ideas.v1`` may not. With them, a consumer reading with
``isolation_level=read_committed`` sees each event once, whatever was killed or stalled:

- while a batch is handled, its handlers' publishes are buffered (:class:`TransactionalPublisher`), and so are the
  effects that must wait until they are stored (``after_stored``: marking the events handled in Redis);
- when the batch is done, one transaction sends them all and the batch's next offsets
  (``send_offsets_to_transaction``), then commits; only then the deferred effects run;
- a transaction that fails (Kafka away, the broker stalled, the producer fenced) is aborted and the producer is
  made again with the same ``transactional.id``, which fences any earlier incarnation and completes its open
  transaction. Whether the failed commit went through after all is then read from the group's committed offsets:
  if it did, the batch is done; if not, the same records are sent again in a new transaction, with backoff, for as
  long as the outage lasts (``kiruna_dependency_waits_total{dependency="kafka"}`` counts the waits);
- a process killed mid-transaction leaves it open: its next start (same ``transactional.id``) aborts it at once,
  else the broker does after ``transaction_timeout_s``; read-committed readers wait for it meanwhile.

The ``transactional.id`` must be stable across restarts of one instance and unique between instances (two
processes with one id fence each other): ``<group>-<ROUTING_INSTANCE>``, the instance being the host name
(a pod's name) unless set.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import contextvars
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import ProducerFenced
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from prometheus_client import Counter, Histogram

from shared.deadletter import OUTAGE_MAX_BACKOFF_S
from shared.events import Envelope
from shared.kafka import client_options, event_headers
from shared.metrics import ServiceMetrics
from shared.settings import KafkaSettings

Effect = Callable[[], Awaitable[None]]

_PROPAGATOR = TraceContextTextMapPropagator()


@dataclass
class Outbox:
    """What one consumed batch publishes, and the effects to run once that is stored."""

    records: list[tuple[str, bytes, bytes, list[tuple[str, bytes]]]] = field(default_factory=list)
    after: list[Effect] = field(default_factory=list)


_CURRENT: contextvars.ContextVar[Outbox | None] = contextvars.ContextVar("kiruna_outbox", default=None)


class NotInBatch(RuntimeError):
    """A transactional publish outside a consumed batch: there are no offsets to commit it with."""


class TransactionMetrics:
    def __init__(self, metrics: ServiceMetrics, service: str) -> None:
        self.service = service
        self.transactions = Counter(
            "kiruna_kafka_transactions",
            "Kafka transactions of consumed batches: committed, retried (failed, sent again), abandoned "
            "(the partitions moved to another consumer; it handles the batch)",
            ["service", "outcome"],
            registry=metrics.registry,
        )
        for outcome in ("committed", "retried", "abandoned"):
            self.transactions.labels(service, outcome)
        self.seconds = Histogram(
            "kiruna_kafka_transaction_seconds",
            "Time from beginning a batch's transaction to its commit",
            ["service"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=metrics.registry,
        )
        self.waits = metrics.dependency_waits
        self.published = metrics.published


class TransactionalPublisher:
    """The publisher port (shared/publishing.py) inside a transactional batch: ``publish`` buffers the event in
    the batch's outbox and ``after_stored`` defers the effect until the transaction has committed."""

    def __init__(self) -> None:
        self._last: tuple[Envelope[Any], bytes, bytes, list[tuple[str, bytes]]] | None = None

    async def publish(self, topic: str, envelope: Envelope[Any]) -> None:
        outbox = _current()
        if self._last is not None and self._last[0] is envelope:  # one event to several topics: serialised once
            _, key, value, headers = self._last
        else:
            headers = [(name, value.encode()) for name, value in event_headers(envelope).items()]
            carrier: dict[str, str] = {}
            _PROPAGATOR.inject(carrier)  # the trace of the event being handled continues in what it caused
            headers += [(name, value.encode()) for name, value in carrier.items()]
            key, value = envelope.subject.encode(), envelope.to_bytes()
            self._last = (envelope, key, value, headers)
        outbox.records.append((topic, key, value, headers))

    async def after_stored(self, effect: Effect) -> None:
        _current().after.append(effect)


async def all_or_nothing(attempt: Callable[[], Awaitable[None]]) -> None:
    """One attempt of a handler inside a consumed batch: what it publishes (and defers) joins the batch's outbox
    only if it returns. If it raises, none of it does, so that its next attempt, or the one-at-a-time pass after
    a whole batch failed, does not write the same records into the transaction a second time. Attempts running
    side by side (ideas handled concurrently) each buffer on their own. Outside a batch: just the attempt."""
    batch = _CURRENT.get()
    if batch is None:
        await attempt()
        return
    own = Outbox()
    token = _CURRENT.set(own)
    try:
        await attempt()
    finally:
        _CURRENT.reset(token)
    batch.records.extend(own.records)
    batch.after.extend(own.after)


def _current() -> Outbox:
    outbox = _CURRENT.get()
    if outbox is None:
        raise NotInBatch("a transactional publish happens while a consumed batch is handled (Transactions.batch)")
    return outbox


def next_offsets(records: Sequence[ConsumerRecord]) -> dict[TopicPartition, int]:
    """The offsets to commit after ``records``: per partition, one past the last record."""
    offsets: dict[TopicPartition, int] = {}
    for record in records:
        tp = TopicPartition(record.topic, record.partition)
        offsets[tp] = max(offsets.get(tp, 0), record.offset + 1)
    return offsets


class Transactions:
    """One transactional producer of a service instance, and the transactions of its consumed batches."""

    def __init__(
        self,
        settings: KafkaSettings,
        *,
        transactional_id: str,
        service: str,
        metrics: ServiceMetrics,
        logger: logging.Logger,
        transaction_timeout_s: float = 20.0,
    ) -> None:
        self.settings = settings
        self.transactional_id = transactional_id
        self.service = service
        self.metrics = TransactionMetrics(metrics, service)
        self.logger = logger
        self.transaction_timeout_s = transaction_timeout_s
        self.publisher = TransactionalPublisher()
        self.ready = asyncio.Event()
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()  # one transaction at a time on the producer

    def _new_producer(self) -> AIOKafkaProducer:
        return AIOKafkaProducer(
            **client_options(self.settings),
            client_id=f"{self.service}-transactions",
            transactional_id=self.transactional_id,
            enable_idempotence=True,
            acks="all",
            request_timeout_ms=int(self.settings.publish_timeout_s * 1000),
            transaction_timeout_ms=int(self.transaction_timeout_s * 1000),
        )

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """The producer, started in the background (retrying while Kafka is away), closed at the end."""
        starter = asyncio.create_task(self._start(), name=f"{self.service}-transactions-start")
        try:
            yield
        finally:
            starter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await starter
            await self.close()

    async def _start(self) -> None:
        delay = 0.5
        while True:
            try:
                await self._replace_producer()
            except Exception as exc:
                self.logger.warning(
                    "transactional producer not started, retrying",
                    extra={"transactional_id": self.transactional_id, "error": repr(exc), "retry_in_s": delay},
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, OUTAGE_MAX_BACKOFF_S)
            else:
                self.ready.set()
                self.logger.info("transactional producer ready", extra={"transactional_id": self.transactional_id})
                return

    async def _replace_producer(self) -> None:
        """Close the producer in use (if any) and start a new one with the same transactional.id: its start
        fences the old one and completes (commits or aborts) the transaction it left open."""
        await self._close_producer()
        producer = self._new_producer()
        try:
            async with asyncio.timeout(self.settings.publish_timeout_s * 2):
                await producer.start()
        except BaseException:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(5):
                    await producer.stop()
            raise
        self._producer = producer

    async def _close_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(5):
                    await producer.stop()

    async def close(self) -> None:
        """Close the producer once the transaction in progress (if any) is done, or after 5 s regardless: what it
        left open is completed by the next start with the same transactional.id."""
        acquired = False
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):
                await self._lock.acquire()
                acquired = True
        try:
            await self._close_producer()
        finally:
            if acquired:  # never the lock of the transaction still in progress
                self._lock.release()
        self.ready.clear()

    @contextlib.asynccontextmanager
    async def batch(
        self, records: Sequence[ConsumerRecord], group_id: str, consumer: AIOKafkaConsumer
    ) -> AsyncIterator[None]:
        """The scope of one consumed batch: publishes inside it are buffered; at its end (if nothing raised) they
        and the batch's offsets are committed in one transaction, then the deferred effects run."""
        outbox = Outbox()
        token = _CURRENT.set(outbox)
        try:
            yield
        finally:
            _CURRENT.reset(token)
        if await self.commit(outbox, next_offsets(records), group_id, consumer):
            for effect in outbox.after:
                try:
                    await effect()
                except Exception as exc:  # only a marker: the offsets are committed, the batch does not come again
                    self.logger.warning("an effect after the commit failed", extra={"error": repr(exc)})

    async def commit(
        self, outbox: Outbox, offsets: dict[TopicPartition, int], group_id: str, consumer: AIOKafkaConsumer
    ) -> bool:
        """Commit ``outbox`` with ``offsets`` in one transaction, retrying until it is committed. False when the
        partitions moved to another consumer meanwhile (it handles the batch: nothing of it is committed here)."""
        await self.ready.wait()
        delay = 0.1
        async with self._lock:
            if not self._still_ours(offsets, consumer):
                return False
            while True:
                started = time.perf_counter()
                try:
                    await self._transaction(outbox, offsets, group_id)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    if isinstance(exc, ProducerFenced):
                        self.logger.error(
                            "another process took this transactional.id: each instance needs its own name",
                            extra={"transactional_id": self.transactional_id},
                        )
                    self.metrics.transactions.labels(self.service, "retried").inc()
                    for tp in offsets:
                        self.metrics.waits.labels(self.service, tp.topic, "kafka").inc()
                    self.logger.warning(
                        "transaction failed; making the producer again and finding out whether it committed",
                        extra={"error": repr(exc), "records": len(outbox.records), "retry_in_s": round(delay, 2)},
                    )
                    if await self._committed_meanwhile(offsets, consumer, delay):
                        break
                    if not self._still_ours(offsets, consumer):
                        return False
                    delay = min(delay * 2, OUTAGE_MAX_BACKOFF_S)
                else:
                    self.metrics.seconds.labels(self.service).observe(time.perf_counter() - started)
                    break
        self.metrics.transactions.labels(self.service, "committed").inc()
        for topic, count in collections.Counter(topic for topic, _, _, _ in outbox.records).items():
            self.metrics.published.labels(self.service, topic).inc(count)
        return True

    def _still_ours(self, offsets: dict[TopicPartition, int], consumer: AIOKafkaConsumer) -> bool:
        """Whether the consumer still holds every partition of the batch. If a rebalance gave one to another
        consumer, that one handles the batch from the last committed offset: committing it here too would write
        its events twice (Kafka cannot fence a consumer that lost its partitions through aiokafka, which sends
        no group generation with the offsets; this narrows that window to the moment of the commit)."""
        if offsets.keys() <= consumer.assignment():
            return True
        self.metrics.transactions.labels(self.service, "abandoned").inc()
        self.logger.warning(
            "partitions moved to another consumer; it handles the batch",
            extra={"partitions": sorted(f"{tp.topic}:{tp.partition}" for tp in offsets)},
        )
        return False

    async def _transaction(self, outbox: Outbox, offsets: dict[TopicPartition, int], group_id: str) -> None:
        producer = self._producer
        if producer is None:
            raise RuntimeError("no transactional producer (it is being made again)")
        async with asyncio.timeout(self.settings.publish_timeout_s * 2):
            await producer.begin_transaction()
            try:
                sent = [
                    await producer.send(topic, value=value, key=key, headers=headers)
                    for topic, key, value, headers in outbox.records
                ]
                await producer.send_offsets_to_transaction(offsets, group_id)
                await producer.commit_transaction()
                await asyncio.gather(*sent)  # each acknowledged (the commit flushed them)
            except BaseException:
                with contextlib.suppress(Exception):  # the new producer would complete it too; this is sooner
                    async with asyncio.timeout(5):
                        await producer.abort_transaction()
                raise

    async def _committed_meanwhile(
        self, offsets: dict[TopicPartition, int], consumer: AIOKafkaConsumer, delay: float
    ) -> bool:
        """After a failed transaction: wait ``delay``, make the producer again (which completes the transaction
        left open), then read whether the group's offsets show the batch committed after all."""
        while True:
            await asyncio.sleep(delay)
            try:
                await self._replace_producer()
                committed = {tp: await consumer.committed(tp) for tp in offsets}
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Kafka still away
                self.logger.warning("kafka still away; waiting", extra={"error": repr(exc), "retry_in_s": delay})
                delay = min(delay * 2, OUTAGE_MAX_BACKOFF_S)
                continue
            return all((committed[tp] or 0) >= offset for tp, offset in offsets.items())
