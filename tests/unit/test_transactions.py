"""The transactional outbox without Kafka: publishes are buffered only inside a batch, the effects wait for the
commit, and the offsets committed are one past each partition's last record."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import ConsumerRecord, TopicPartition

from shared.events import Envelope, IdeaSubmitted
from shared.transactions import _CURRENT, NotInBatch, Outbox, TransactionalPublisher, all_or_nothing, next_offsets


def record(partition: int, offset: int) -> ConsumerRecord:
    return ConsumerRecord("t", partition, offset, 0, 0, None, b"", None, 0, 0, [])


def event() -> Envelope:
    idea = IdeaSubmitted(
        idea_id="7a550000-0000-4000-8000-000000000001", title="Solceller", description="", anonymous=True
    )
    return Envelope.wrap(idea, source="/tests")


def test_the_offsets_committed_are_one_past_the_last_record_of_each_partition():
    records = [record(0, 5), record(1, 9), record(0, 7), record(0, 6)]
    assert next_offsets(records) == {TopicPartition("t", 0): 8, TopicPartition("t", 1): 10}


async def test_a_publish_outside_a_batch_is_refused_with_a_reason():
    with pytest.raises(NotInBatch, match="consumed batch"):
        await TransactionalPublisher().publish("ideas.routed.v1", event())


async def test_inside_a_batch_publishes_are_buffered_with_their_headers_and_effects_wait():
    publisher = TransactionalPublisher()
    outbox = Outbox()
    token = _CURRENT.set(outbox)
    done: list[str] = []

    async def mark() -> None:
        done.append("marked")

    try:
        envelope = event()
        await publisher.publish("ideas.routed.v1", envelope)
        await publisher.after_stored(mark)
    finally:
        _CURRENT.reset(token)
    [(topic, key, value, headers)] = outbox.records
    assert (topic, key, value) == ("ideas.routed.v1", envelope.subject.encode(), envelope.to_bytes())
    assert ("ce_id", envelope.id.encode()) in headers
    assert done == [] and len(outbox.after) == 1  # run by the commit, not before
    await outbox.after[0]()
    assert done == ["marked"]


async def test_a_failed_attempt_leaves_nothing_in_the_batch_and_attempts_side_by_side_keep_their_own():
    publisher = TransactionalPublisher()
    outbox = Outbox()
    token = _CURRENT.set(outbox)
    kept, dropped = event(), event()
    both_started = asyncio.Barrier(2)

    async def succeeds() -> None:
        await both_started.wait()
        await publisher.publish("ideas.routed.v1", kept)

    async def fails() -> None:
        await publisher.publish("ideas.routed.v1", dropped)
        await publisher.after_stored(succeeds)
        await both_started.wait()
        raise RuntimeError("made to fail by the test")

    try:
        results = await asyncio.gather(all_or_nothing(succeeds), all_or_nothing(fails), return_exceptions=True)
    finally:
        _CURRENT.reset(token)
    assert results[0] is None and isinstance(results[1], RuntimeError)
    assert [value for _, _, value, _ in outbox.records] == [kept.to_bytes()]
    assert outbox.after == []
