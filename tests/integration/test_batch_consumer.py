"""Batch subscribers (shared/batch.py) on the real Kafka: one idea's events in order while different ideas run
concurrently, one commit per batch, bad records dead-lettered without holding up the rest, and a batch whose
dead-letter write fails is not committed and comes again."""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict

import pytest

from shared.batch import each_in_scope, subscribe_batch
from shared.events import Envelope, IdeaSubmitted, SubmittedEvent
from shared.logs import current_log_fields
from shared.service import Runtime
from shared.settings import ServiceSettings
from tests.support.kafka import eventually, probe, raw_producer

pytestmark = pytest.mark.kafka


def submitted(idea_id: str, seq: int) -> Envelope[IdeaSubmitted]:
    return Envelope.wrap(IdeaSubmitted(idea_id=idea_id, title=f"idé {seq:04d}", description="text"), source="/tests")


def seq_of(event: Envelope[IdeaSubmitted]) -> int:
    return int(event.data.title.split()[1])


async def all_committed(runtime: Runtime) -> bool:
    assert runtime.lag is not None
    lags = await runtime.lag.measure()
    return bool(lags) and all(lag == 0 for lag in lags.values())


async def test_one_ideas_events_in_order_different_ideas_concurrently_one_commit(
    service_settings, topics, kafka_settings
):
    ideas = [str(uuid.uuid4()) for _ in range(10)]
    async with raw_producer(kafka_settings) as producer:
        for seq in range(300):  # interleaved: idea 0, 1, ... 9, 0, 1 ...
            idea_id = ideas[seq % len(ideas)]
            await producer.send(topics.submitted, submitted(idea_id, seq).to_bytes(), key=idea_id.encode())
        await producer.flush()

    runtime = Runtime.create("batchtest", service_settings(ServiceSettings))
    seen: dict[str, list[int]] = defaultdict(list)
    in_flight, most = 0, 0

    async def handle(event: SubmittedEvent) -> None:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        await asyncio.sleep(0.002)
        seen[event.subject].append(seq_of(event))
        in_flight -= 1

    subscribe_batch(runtime, topics.submitted, SubmittedEvent, title="test.submitted", each=handle)
    async with runtime.running():
        await eventually(lambda: sum(map(len, seen.values())) >= 300, timeout=30)
        assert await eventually(lambda: all_committed(runtime), timeout=20)
    assert sorted(seen) == sorted(ideas)
    for idea_id, sequence in seen.items():
        assert sequence == sorted(sequence) and len(sequence) == 30, idea_id  # in the topic's order, each once
    assert most > 1  # different ideas were handled at the same time


async def test_bad_records_are_dead_lettered_and_the_rest_of_the_batch_is_handled(
    service_settings, topics, kafka_settings
):
    good, poisoned, odd_header = (str(uuid.uuid4()) for _ in range(3))
    async with raw_producer(kafka_settings) as producer:
        await producer.send(topics.submitted, b"{not json", key=good.encode())
        for seq in range(3):
            await producer.send(topics.submitted, submitted(good, seq).to_bytes(), key=good.encode())
        await producer.send(topics.submitted, submitted(poisoned, 666).to_bytes(), key=poisoned.encode())
        await producer.send(
            topics.submitted,
            submitted(odd_header, 7).to_bytes(),
            key=odd_header.encode(),
            headers=[("x-legacy", b"\xff\xfe latin-1 \xe5")],  # not UTF-8: FastStream alone would loop on it
        )
        await producer.flush()

    runtime = Runtime.create("batchtest", service_settings(ServiceSettings))
    recorded: dict[str, list[int]] = defaultdict(list)
    together: list[int] = []

    async def record_idea(events) -> None:
        together.append(len(events))
        if any(seq_of(event) == 666 for event in events):
            raise RuntimeError("cannot record 666")
        for event in events:
            recorded[event.subject].append(seq_of(event))

    subscribe_batch(runtime, topics.submitted, SubmittedEvent, title="test.submitted", per_idea=record_idea)
    async with runtime.running(), probe(kafka_settings, topics.dlq(topics.submitted)) as dead_letters:
        records = await dead_letters.wait_count(2)
        assert await eventually(lambda: all_committed(runtime), timeout=20)
    reasons = {record.key.decode(): dict(record.headers)["x-dlq-reason"].decode() for record in records}
    assert reasons == {good: "malformed", poisoned: "failed"}
    [poison] = [record for record in records if record.key == poisoned.encode()]
    poison_headers = {name: value.decode() for name, value in poison.headers}
    assert poison_headers["x-dlq-attempts"] == "3" and "cannot record 666" in poison_headers["x-dlq-error"]
    assert recorded == {good: [0, 1, 2], odd_header: [7]}
    assert 3 in together  # the good idea's three events were recorded together


async def test_a_whole_batch_handler_gets_every_event_at_once_in_order_and_only_the_failing_one_is_dead_lettered(
    service_settings, topics, kafka_settings
):
    first, second, poisoned = (str(uuid.uuid4()) for _ in range(3))
    async with raw_producer(kafka_settings) as producer:
        await producer.send(topics.submitted, b"{not json", key=first.encode())
        for seq in range(4):  # two ideas' events interleaved
            idea_id = (first, second)[seq % 2]
            await producer.send(topics.submitted, submitted(idea_id, seq).to_bytes(), key=idea_id.encode())
        await producer.send(topics.submitted, submitted(poisoned, 666).to_bytes(), key=poisoned.encode())
        await producer.flush()

    runtime = Runtime.create("batchtest", service_settings(ServiceSettings))
    recorded: dict[str, list[int]] = defaultdict(list)
    calls: list[int] = []
    contexts: list[tuple[str, str | None]] = []

    async def record_batch(events) -> None:
        calls.append(len(events))
        if any(seq_of(event) == 666 for event in events):
            raise RuntimeError("cannot record 666")
        for event in each_in_scope(events):
            contexts.append((event.subject, current_log_fields().get("idea_id")))
            recorded[event.subject].append(seq_of(event))

    subscribe_batch(runtime, topics.submitted, SubmittedEvent, title="test.submitted", per_batch=record_batch)
    async with runtime.running(), probe(kafka_settings, topics.dlq(topics.submitted)) as dead_letters:
        records = await dead_letters.wait_count(2)
        assert await eventually(lambda: all_committed(runtime), timeout=20)
    reasons = {record.key.decode(): dict(record.headers)["x-dlq-reason"].decode() for record in records}
    assert reasons == {first: "malformed", poisoned: "failed"}
    assert recorded == {first: [0, 2], second: [1, 3]}  # each once, in the topic's order, the poisoned one never
    assert max(calls) >= 5  # the good events and the poisoned one came together first, then one at a time
    assert all(subject == idea for subject, idea in contexts)  # each event in its own log context


async def test_a_batch_whose_dead_letter_write_fails_is_not_committed_and_comes_again(
    service_settings, topics, kafka_settings
):
    idea_id = str(uuid.uuid4())
    async with raw_producer(kafka_settings) as producer:
        await producer.send(topics.submitted, submitted(idea_id, 1).to_bytes(), key=idea_id.encode())
        await producer.send(topics.submitted, b"[]", key=idea_id.encode())
        await producer.send(topics.submitted, submitted(idea_id, 2).to_bytes(), key=idea_id.encode())
        await producer.flush()

    runtime = Runtime.create("batchtest", service_settings(ServiceSettings))
    handled: list[int] = []
    write = runtime.dead_letters.dead_letter
    failures = 0

    async def kafka_refuses_once(*args, **kwargs):
        nonlocal failures
        if failures == 0:
            failures += 1
            raise ConnectionError("the dead-letter topic is unavailable")
        await write(*args, **kwargs)

    runtime.dead_letters.dead_letter = kafka_refuses_once  # type: ignore[method-assign]

    async def handle(event: SubmittedEvent) -> None:
        handled.append(seq_of(event))

    subscribe_batch(runtime, topics.submitted, SubmittedEvent, title="test.submitted", each=handle)
    async with runtime.running(), probe(kafka_settings, topics.dlq(topics.submitted)) as dead_letters:
        await dead_letters.wait_count(1)
        assert await eventually(lambda: all_committed(runtime), timeout=20)
        await eventually(dead_letters.caught_up)  # committed after its dead letters: a second one would be read now
        assert len(dead_letters.records) == 1  # written once, when it could be
    assert failures == 1
    assert handled == [1, 2]  # the failed batch was not handled (a bad record stops it before any handler)
