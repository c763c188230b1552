"""Random bytes and mangled CloudEvents into every topic the services consume (each service's AsyncAPI document
says which), then: every record that cannot be an event is on ``<topic>.dlq`` once for each service that reads the
topic, every consumer is still alive and ready. Records that are odd but valid (an unknown type name, a wrong key,
a huge text) may be taken or dead-lettered, as the contracts say: consumers tolerate what they can read."""

from __future__ import annotations

import asyncio
import collections
import json
import random
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from shared.kafka import client_options
from shared.settings import KafkaSettings

FUZZ_HEADER = "x-fuzz-id"


@dataclass(frozen=True)
class Bad:
    topic: str
    value: bytes
    key: bytes | None
    what: str
    must_dead_letter: bool
    fuzz_id: str = field(default_factory=lambda: uuid.uuid4().hex)


def consumed_topics(urls: dict[str, str]) -> dict[str, set[str]]:
    """topic -> the services that read it, from each running service's AsyncAPI document."""
    readers: dict[str, set[str]] = collections.defaultdict(set)
    for service, url in urls.items():
        document = httpx.get(f"{url}/asyncapi.json", timeout=10).json()
        channels = document.get("channels", {})
        for operation in document.get("operations", {}).values():
            if operation.get("action") == "receive":
                ref = operation["channel"]["$ref"].rsplit("/", 1)[-1]
                readers[channels[ref]["address"]].add(service)
    return dict(readers)


def envelope(event_type: str, data: object, subject: object = None) -> dict:
    idea = str(uuid.uuid4())
    return {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": "/fuzz",
        "type": event_type,
        "time": datetime.now(UTC).isoformat(),
        "subject": subject if subject is not None else idea,
        "datacontenttype": "application/json",
        "data": data,
    }


def a_valid_event(topic: str) -> dict:
    """A plausible event of ``topic`` (the base the mangling starts from)."""
    idea = str(uuid.uuid4())
    if "intake.raw" in topic:
        return {"title": "Fuzzad idé", "description": "Beskrivning", "anonymous": True}
    if "ideas.submitted" in topic:
        data = {"idea_id": idea, "title": "Fuzz", "description": "d", "anonymous": True, "channel": "kafka"}
        kind = "se.kiruna.innovation.idea.submitted.v1"
    elif "ideas.routed" in topic:
        data = {"idea_id": idea, "organisations": [{"organisation": "kirunabostader"}], "reason": "fuzz"}
        kind = "se.kiruna.innovation.idea.routed.v1"
    elif "status-changed" in topic:
        data = {"idea_id": idea, "to_state": "acknowledged", "changed_by": "fuzz"}
        kind = "se.kiruna.innovation.idea.status-changed.v1"
    elif "engagement" in topic:
        data = {"idea_id": idea, "kind": "comment", "person": "fuzz@kiruna.se", "text": "hej"}
        kind = "se.kiruna.innovation.idea.engagement.v1"
    elif "routing.commands" in topic:
        data = {
            "idea_id": idea,
            "organisations": [{"organisation": "kirunabostader"}],
            "requested_by": "fuzz",
            "reason": "fuzz",
        }
        kind = "se.kiruna.innovation.command.reroute-idea.v1"
    elif "preferences" in topic:
        data = {"person": "fuzz@kiruna.se", "channels": ["in-app"], "frequency": "immediate"}
        kind = "se.kiruna.innovation.notification.preferences-changed.v1"
    elif "notifications.sent" in topic:
        data = {
            "idea_id": idea,
            "cause_event_id": str(uuid.uuid4()),
            "recipient": "fuzz@kiruna.se",
            "channel": "in-app",
            "outcome": "delivered",
        }
        kind = "se.kiruna.innovation.notification.sent.v1"
    else:
        data, kind = {"idea_id": idea}, "se.kiruna.innovation.unknown.v1"
    return envelope(kind, data, subject=data.get("idea_id") or data.get("person"))


def wrong_types(value: object, rng: random.Random) -> object:
    """Every leaf replaced by a value of another JSON type."""
    if isinstance(value, dict):
        return {k: wrong_types(v, rng) for k, v in value.items()}
    if isinstance(value, list):
        return {"0": [wrong_types(v, rng) for v in value]}
    if isinstance(value, str):
        return rng.choice([12345, [value], {"s": value}, False])
    return rng.choice(["not-a-number", [], {"x": 1}])


def mangled(topic: str, rng: random.Random) -> list[Bad]:
    """The bad records of one topic: (value, key, description, must it be dead-lettered)."""
    base = a_valid_event(topic)
    text = json.dumps(base).encode()
    key = str(base.get("subject", uuid.uuid4())).encode()
    is_envelope = "specversion" in base
    out: list[Bad] = []

    def add(value: bytes, what: str, must: bool, record_key: bytes | None = key) -> None:
        out.append(Bad(topic, value, record_key, what, must))

    for n in range(6):
        add(rng.randbytes(rng.randint(0, 400)), f"random bytes #{n}", True)
    add(b"", "empty value", True)
    add(b"\xff\xfe\x00{", "not UTF-8", True)
    add(text[: len(text) // 2], "truncated JSON", True)
    add(text[:-1], "JSON without its last brace", True)
    add(b"null", "JSON null", True)
    add(b"[1, 2, 3]", "a JSON array", True)
    add(b'"just a string"', "a JSON string", True)
    add(json.dumps(wrong_types(base, rng)).encode(), "every field of the wrong type", True)
    add(json.dumps({k: v for k, v in base.items() if k != "data"}).encode(), "no data", is_envelope)
    if is_envelope:
        add(json.dumps({k: v for k, v in base.items() if k != "subject"}).encode(), "no subject", True)
        add(json.dumps({**base, "time": "yesterday"}).encode(), "time not a time", True)
        add(json.dumps({**base, "specversion": "0.3"}).encode(), "specversion 0.3", True)
        add(json.dumps({**base, "data": {}}).encode(), "empty data", True)
        add(json.dumps({**base, "data": "a string"}).encode(), "data a string", True)
        add(json.dumps({**base, "type": "se.kiruna.innovation.no-such-event.v9"}).encode(), "unknown type", False)
        add(json.dumps({**base, "extra": {"nested": [1, 2]}}).encode(), "unknown fields", False)
        add(text, "valid event under a wrong key", False, record_key=b"\x00not-the-subject\xff")
        add(text, "valid event without a key", False, record_key=None)
        huge = {
            k: ("x" * 200_000 if isinstance(v, str) and k not in ("idea_id", "person") else v)
            for k, v in base["data"].items()
        }
        add(json.dumps({**base, "data": huge}).encode(), "200,000-character strings", False)
        add(json.dumps({**base, "subject": "x" * 100_000}).encode(), "a 100,000-character subject", False)
    else:
        add(json.dumps({**base, "title": "x" * 100_000}).encode(), "a 100,000-character title", True)
        add(json.dumps({**base, "title": 5}).encode(), "a number as title", True)
        add(json.dumps({"description": "no title"}).encode(), "no title", True)
        add(json.dumps({**base, "submitter": {"name": "Forged"}}).encode(), "a forged submitter", True)
    return out


@dataclass
class Outcome:
    produced: int = 0
    expected: int = 0  # (record, reading service) pairs that must reach the dead-letter topic
    dead_lettered: int = 0
    missing: list[str] = field(default_factory=list)
    tolerated: int = 0
    dead_consumers: list[str] = field(default_factory=list)


async def produce(settings: KafkaSettings, records: list[Bad]) -> None:
    producer = AIOKafkaProducer(**client_options(settings), acks="all", max_request_size=2_000_000)
    await producer.start()
    try:
        for bad in records:
            await producer.send_and_wait(
                bad.topic, bad.value, key=bad.key, headers=[(FUZZ_HEADER, bad.fuzz_id.encode())]
            )
    finally:
        await producer.stop()


async def dead_letters(settings: KafkaSettings, topics: list[str]) -> set[tuple[str, str]]:
    """(fuzz id, service) of every record on the dead-letter topics of ``topics``."""
    consumer = AIOKafkaConsumer(
        **client_options(settings),
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=4_000_000,
        fetch_max_bytes=8_000_000,
    )
    await consumer.start()
    seen: set[tuple[str, str]] = set()
    try:
        partitions = []
        for topic in topics:
            for partition in consumer.partitions_for_topic(f"{topic}.dlq") or ():
                partitions.append(TopicPartition(f"{topic}.dlq", partition))
        if not partitions:
            await consumer._client.force_metadata_update()
            for topic in topics:
                for partition in consumer.partitions_for_topic(f"{topic}.dlq") or ():
                    partitions.append(TopicPartition(f"{topic}.dlq", partition))
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)

        async def behind() -> bool:
            return any([await consumer.position(tp) < ends[tp] for tp in partitions])

        while await behind():
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for record in records:
                    headers = {k: v.decode("utf-8", "replace") for k, v in record.headers or ()}
                    if FUZZ_HEADER in headers:
                        seen.add((headers[FUZZ_HEADER], headers.get("x-dlq-service", "?")))
    finally:
        await consumer.stop()
    return seen


def fuzz_topics(
    settings: KafkaSettings, urls: dict[str, str], alive, *, seed: int = 14, timeout_s: float = 90.0
) -> Outcome:
    readers = consumed_topics(urls)
    rng = random.Random(seed)
    records = [bad for topic in sorted(readers) for bad in mangled(topic, rng)]
    outcome = Outcome(produced=len(records))
    asyncio.run(produce(settings, records))
    expected = {
        (bad.fuzz_id, service): bad for bad in records if bad.must_dead_letter for service in readers[bad.topic]
    }
    outcome.expected = len(expected)
    deadline = time.monotonic() + timeout_s
    seen: set[tuple[str, str]] = set()
    while True:
        seen = asyncio.run(dead_letters(settings, sorted(readers)))
        if set(expected) <= seen or time.monotonic() > deadline:
            break
        time.sleep(2)
    outcome.dead_lettered = len(set(expected) & seen)
    for (fuzz_id, service), bad in expected.items():
        if (fuzz_id, service) not in seen:
            outcome.missing.append(f"{service} did not dead-letter {bad.what} on {bad.topic}")
    tolerated = {bad.fuzz_id for bad in records if not bad.must_dead_letter}
    outcome.tolerated = len(tolerated)
    outcome.dead_consumers = [name for name, ok in alive().items() if not ok]
    return outcome
