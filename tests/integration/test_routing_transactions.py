"""Routing's read-process-write in Kafka transactions (shared/transactions.py), on the real Kafka: what a batch
publishes and its offsets are committed together, so a reader of ideas.routed and of an organisation's topic with
``read_committed`` sees each routing decision once, whatever fails between the sends and the commit.

Two failures are made to happen at the commit of the first transaction: one the broker never saw (the transaction
is aborted: its records are there for a reader of uncommitted records, never for a committed one, and the batch is
sent again), and one where the commit went through but its answer was lost (found out from the group's offsets:
nothing is sent again)."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from aiokafka.errors import KafkaConnectionError

from services.routing.app import create_app as routing_app
from services.routing.handlers import RoutingHandlers
from services.routing.settings import RoutingSettings
from shared.events import Envelope, IdeaSubmitted
from tests.support.apps import running
from tests.support.kafka import probe, raw_producer

pytestmark = pytest.mark.kafka

IDEAS = 20


def idea(n: int) -> Envelope:
    return Envelope.wrap(
        IdeaSubmitted(
            idea_id=f"7a550000-0000-4000-8000-{n:012d}",
            title=f"Solceller på förrådstaket {n}",
            description="Solceller på Tekniska Verkens förråd sänker elkostnaden.",
            anonymous=True,
        ),
        source="/tests/transactions",
    )


def failing_first_commit(app, *, after_commit: bool) -> list[str]:
    """Make the first transaction's commit fail: before it reaches the broker, or after it committed there."""
    transactions = app.state.runtime.transactions
    make = transactions._new_producer
    failures: list[str] = []

    def new_producer():
        producer = make()
        commit = producer.commit_transaction

        async def commit_once_failing() -> None:
            if not failures:
                failures.append("commit")
                if after_commit:
                    await commit()  # committed; the answer is "lost"
                raise KafkaConnectionError("made to fail by the test")
            await commit()

        producer.commit_transaction = commit_once_failing
        return producer

    transactions._new_producer = new_producer
    return failures


def counts(records) -> Counter:
    return Counter(json.loads(r.value)["id"] for r in records)


@pytest.mark.parametrize("after_commit", [False, True], ids=["aborted", "committed-answer-lost"])
async def test_a_failed_commit_leaves_each_routing_decision_once_for_a_committed_reader(
    service_settings, topics, kafka_settings, after_commit
):
    app = routing_app(service_settings(RoutingSettings))
    failures = failing_first_commit(app, after_commit=after_commit)
    ideas = [idea(n) for n in range(IDEAS)]
    wanted = {e.subject.encode() for e in ideas}
    energy_topic = topics.organisation("tekniska-verken")
    async with (
        running(app) as api,
        probe(kafka_settings, topics.routed) as routed,
        probe(kafka_settings, energy_topic) as energy,
        probe(kafka_settings, topics.routed, isolation_level="read_uncommitted") as everything,
        raw_producer(kafka_settings) as producer,
    ):
        for event in ideas:
            await producer.send_and_wait(topics.submitted, event.to_bytes(), key=event.subject.encode())
        await routed.wait_for(lambda rs: {r.key for r in rs} >= wanted, timeout=60)
        await energy.wait_for(lambda rs: {r.key for r in rs} >= wanted, timeout=30)

        # a later idea, routed after all the others: whatever the first ones caused is on the topics before it
        last = idea(IDEAS)
        await producer.send_and_wait(topics.submitted, last.to_bytes(), key=last.subject.encode())
        await routed.wait_for(lambda rs: last.subject.encode() in {r.key for r in rs}, timeout=30)
        await everything.wait_for(lambda rs: last.subject.encode() in {r.key for r in rs}, timeout=30)
        await energy.wait_for(lambda rs: last.subject.encode() in {r.key for r in rs}, timeout=30)
        metrics = (await api.get("/metrics")).text

    assert failures == ["commit"]
    assert 'kiruna_kafka_transactions_total{outcome="retried",service="routing"} 1.0' in metrics
    for probe_ in (routed, energy):
        seen = counts(probe_.records)
        assert len(seen) == IDEAS + 1 and set(seen.values()) == {1}, f"{probe_.topic}: {seen.most_common(3)}"
    uncommitted = counts(everything.records)
    if after_commit:  # it had committed: nothing was sent a second time
        assert set(uncommitted.values()) == {1}
    else:  # the aborted copies are there for a reader of uncommitted records: the batch was sent twice
        assert max(uncommitted.values()) == 2


async def test_a_batch_that_fails_partway_is_handled_again_one_at_a_time_and_sends_each_decision_once(
    service_settings, topics, kafka_settings, monkeypatch
):
    """Routing takes a whole batch at once; when that fails partway, the batch is handled again one idea at a
    time in the same transaction. What the failed attempt had already published is taken back first: without
    that, the ideas routed before the failure would be on the topics twice (shared.transactions.all_or_nothing)."""
    route = RoutingHandlers._route
    calls: list[str] = []

    async def third_call_fails(self, cause, idea_id, *args, **kwargs):
        calls.append(idea_id)
        if len(calls) == 3:
            raise RuntimeError("made to fail by the test")
        return await route(self, cause, idea_id, *args, **kwargs)

    monkeypatch.setattr(RoutingHandlers, "_route", third_call_fails)
    ideas = [idea(n) for n in range(IDEAS)]
    wanted = {e.subject.encode() for e in ideas}
    async with raw_producer(kafka_settings) as producer:  # all waiting before routing starts: one large batch
        for event in ideas:
            await producer.send_and_wait(topics.submitted, event.to_bytes(), key=event.subject.encode())
    async with (
        probe(kafka_settings, topics.routed) as routed,
        probe(kafka_settings, topics.routed, isolation_level="read_uncommitted") as everything,
        running(routing_app(service_settings(RoutingSettings))),
    ):
        await routed.wait_for(lambda rs: {r.key for r in rs} >= wanted, timeout=60)
        last = idea(IDEAS)  # routed after all the others: whatever they caused is on the topic before it
        async with raw_producer(kafka_settings) as producer:
            await producer.send_and_wait(topics.submitted, last.to_bytes(), key=last.subject.encode())
        await routed.wait_for(lambda rs: last.subject.encode() in {r.key for r in rs}, timeout=30)
        await everything.wait_for(lambda rs: last.subject.encode() in {r.key for r in rs}, timeout=30)

    again = [idea_id for idea_id, n in Counter(calls).items() if n > 1]
    assert len(again) >= 2, f"the failure did not come partway through a batch: {calls}"  # the case under test
    for probe_ in (routed, everything):  # nothing was aborted: not even an uncommitted copy is there twice
        seen = counts(probe_.records)
        assert len(seen) == IDEAS + 1 and set(seen.values()) == {1}, f"{probe_.topic}: {seen.most_common(3)}"
