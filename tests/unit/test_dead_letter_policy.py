"""The policy of every subscriber (shared/deadletter.py): a message that fails on its own merits uses up its
attempts and is dead-lettered; a failure because Redis or Kafka is away is waited out, however many tries that
takes, and dead-letters nothing (issue 15: a Redis restart dead-lettered nine submissions)."""

from __future__ import annotations

import logging
from types import SimpleNamespace

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from shared.deadletter import DeadLetters, PermanentError, dependency_away
from shared.kafka import KafkaUnavailable
from shared.metrics import ServiceMetrics

RECORD = SimpleNamespace(topic="ideas.submitted.v2", partition=0, offset=3, key=b"k", value=b"{}", headers=[])


class Published:
    def __init__(self) -> None:
        self.records: list[dict] = []

    async def publish(self, value, *, topic, key, headers) -> None:
        self.records.append({"topic": topic, "value": value, "headers": headers})


def policy(attempts: int = 3) -> tuple[DeadLetters, Published, ServiceMetrics]:
    metrics = ServiceMetrics.create("routing")
    dead = DeadLetters(
        service="routing",
        attempts=attempts,
        backoff_s=0.001,
        metrics=metrics,
        logger=logging.getLogger("t"),
        outage_max_backoff_s=0.01,
    )
    broker = Published()
    dead.bind(broker)  # type: ignore[arg-type]
    return dead, broker, metrics


def failing(times: int, exc: Exception):
    calls = {"n": 0}

    async def call() -> str:
        calls["n"] += 1
        if calls["n"] <= times:
            raise exc
        return "handled"

    return call, calls


async def test_a_redis_outage_longer_than_the_attempts_is_waited_out_and_dead_letters_nothing():
    dead, broker, metrics = policy(attempts=3)
    call, calls = failing(12, RedisConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused."))
    assert await dead.handle(RECORD, call) == "handled"
    assert calls["n"] == 13 and broker.records == []
    waits = metrics.dependency_waits.labels("routing", RECORD.topic, "redis")._value.get()
    assert waits == 12 and metrics.dead_letters.labels("routing", RECORD.topic, "failed")._value.get() == 0


async def test_kafka_away_and_a_hung_redis_are_waited_out_too():
    for exc, dependency in ((KafkaUnavailable("no ack"), "kafka"), (RedisTimeoutError("Timeout reading"), "redis")):
        dead, broker, metrics = policy(attempts=2)
        call, _ = failing(5, exc)
        assert await dead.handle(RECORD, call) == "handled" and broker.records == []
        assert metrics.dependency_waits.labels("routing", RECORD.topic, dependency)._value.get() == 5


async def test_a_message_that_fails_on_its_own_merits_is_dead_lettered_after_its_attempts():
    dead, broker, _ = policy(attempts=3)
    call, calls = failing(99, KeyError("organisation"))
    assert await dead.handle(RECORD, call) is None
    assert calls["n"] == 3 and [r["headers"]["x-dlq-reason"] for r in broker.records] == ["failed"]
    assert broker.records[0]["headers"]["x-dlq-attempts"] == "3"


async def test_an_outage_does_not_use_up_the_attempts_of_a_message_that_then_fails_by_itself():
    dead, broker, _ = policy(attempts=2)
    calls = {"n": 0}

    async def call() -> None:
        calls["n"] += 1
        if calls["n"] <= 4:
            raise RedisConnectionError("refused")
        raise ValueError("a field the handler cannot use")

    assert await dead.handle(RECORD, call) is None
    assert calls["n"] == 6 and broker.records[0]["headers"]["x-dlq-error-type"] == "ValueError"


async def test_input_no_retry_can_cure_is_dead_lettered_at_once():
    dead, broker, _ = policy()
    call, calls = failing(99, PermanentError("unknown person"))
    assert await dead.handle(RECORD, call) is None and calls["n"] == 1
    assert broker.records[0]["headers"]["x-dlq-reason"] == "rejected"


def test_a_wrapped_outage_is_recognised_by_its_cause():
    try:
        try:
            raise RedisConnectionError("refused")
        except RedisConnectionError as inner:
            raise RuntimeError("could not record the idea") from inner
    except RuntimeError as outer:
        assert dependency_away(outer) == "redis"
    assert dependency_away(ValueError("bad")) is None
