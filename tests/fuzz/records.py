"""Random bytes and mangled CloudEvents into every topic the services consume (each service's AsyncAPI document
says which), then: every record that cannot be an event is on ``<topic>.dlq`` once for each service that reads the
topic, every consumer is still alive and ready. Records that are odd but valid (an unknown type name, a wrong key,
a huge text) may be taken or dead-lettered, as the contracts say: consumers tolerate what they can read.

The people's fields get their own cases (issue 13): a person without a pseudonym, a sealed value without its box, a
.v1 event (an address in the clear) on a .v2 topic must be dead-lettered; a value sealed under a key that does not
exist (an erased or unknown person), a box that does not open, an erasure of someone nobody knows must be handled and
never dead-lettered: a value whose key is gone reads as erased."""

from __future__ import annotations

import asyncio
import base64
import collections
import json
import os
import random
import secrets
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from shared.kafka import client_options
from shared.settings import KafkaSettings
from shared.topics import Topics

FUZZ_HEADER = "x-fuzz-id"


@dataclass(frozen=True)
class Bad:
    topic: str
    value: bytes
    key: bytes | None
    what: str
    must_dead_letter: bool
    must_be_handled: bool = False  # never dead-lettered: a person whose key is gone reads as erased
    fuzz_id: str = field(default_factory=lambda: uuid.uuid4().hex)


def consumed_topics(urls: dict[str, str]) -> dict[str, set[str]]:
    """topic -> the services that subscribe to it, from each running service's AsyncAPI document: the topics it
    receives and dead-letters (people.keys.v1 is read by every keyring, but by no subscriber: nothing to fuzz)."""
    readers: dict[str, set[str]] = collections.defaultdict(set)
    for service, url in urls.items():
        document = httpx.get(f"{url}/asyncapi.json", timeout=10).json()
        channels = document.get("channels", {})
        addresses = {channel["address"] for channel in channels.values()}
        for operation in document.get("operations", {}).values():
            if operation.get("action") == "receive":
                address = channels[operation["channel"]["$ref"].rsplit("/", 1)[-1]]["address"]
                if f"{address}.dlq" in addresses:
                    readers[address].add(service)
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


def nobody() -> str:
    """A pseudonym nobody has (32 hex digits, like HMAC-SHA256's)."""
    return secrets.token_hex(16)


def sealed_under(pseudonym: str, key_id: str | None = None, box: str | None = None) -> dict:
    """A sealed value as the platform writes it, under a data key that does not exist (``<pseudonym>.<12 hex>``):
    what a service sees of a person whose key was erased."""
    sealed_box = base64.urlsafe_b64encode(os.urandom(12 + 40 + 16)).rstrip(b"=").decode()
    return {"key": key_id or f"{pseudonym}.{secrets.token_hex(6)}", "box": box or sealed_box}


def person_ref(pseudonym: str | None = None) -> dict:
    pseudonym = pseudonym or nobody()
    return {"pseudonym": pseudonym, "sealed": sealed_under(pseudonym), "organisation": "kirunabostader"}


def a_valid_event(topic: str) -> dict:
    """A plausible event of ``topic`` (the base the mangling starts from): the .v2 shapes, people sealed."""
    idea = str(uuid.uuid4())
    if "intake.raw" in topic:
        return {"title": "Fuzzad idé", "description": "Beskrivning", "anonymous": True}
    if "ideas.submitted" in topic:
        data = {"idea_id": idea, "title": "Fuzz", "description": "d", "anonymous": True, "channel": "kafka"}
        kind = "se.kiruna.innovation.idea.submitted.v2"
    elif "ideas.routed" in topic:
        data = {"idea_id": idea, "organisations": [{"organisation": "kirunabostader"}], "reason": "fuzz"}
        kind = "se.kiruna.innovation.idea.routed.v1"
    elif "status-changed" in topic:
        data = {"idea_id": idea, "to_state": "acknowledged", "changed_by": "fuzz"}
        kind = "se.kiruna.innovation.idea.status-changed.v1"
    elif "engagement" in topic:
        person = person_ref()
        data = {"idea_id": idea, "kind": "comment", "person": person, "text": sealed_under(person["pseudonym"])}
        kind = "se.kiruna.innovation.idea.engagement.v2"
    elif "routing.commands" in topic:
        data = {
            "idea_id": idea,
            "organisations": [{"organisation": "kirunabostader"}],
            "requested_by": "fuzz",
            "reason": "fuzz",
        }
        kind = "se.kiruna.innovation.command.reroute-idea.v1"
    elif "preferences" in topic:
        person = nobody()
        data = {"person": person, "contact": sealed_under(person), "channels": ["in-app"], "frequency": "immediate"}
        kind = "se.kiruna.innovation.notification.preferences-changed.v2"
    elif "notifications.sent" in topic:
        data = {
            "idea_id": idea,
            "cause_event_id": str(uuid.uuid4()),
            "recipient": nobody(),
            "channel": "in-app",
            "outcome": "delivered",
        }
        kind = "se.kiruna.innovation.notification.sent.v2"
    elif "people.erasures" in topic:
        data = {"pseudonym": nobody(), "requested_by": "person"}
        kind = "se.kiruna.innovation.person.erasure-requested.v1"
    else:
        data, kind = {"idea_id": idea}, "se.kiruna.innovation.unknown.v1"
    return envelope(kind, data, subject=data.get("idea_id") or data.get("person") or data.get("pseudonym"))


def people_cases(topic: str, base: dict) -> list[tuple[dict, str, bool | None]]:
    """The person fields of ``topic``'s events, mangled: (event, what, True = must be dead-lettered, False = must be
    handled, None = either)."""
    data = base.get("data")
    if not isinstance(data, dict):
        return []
    cases: list[tuple[dict, str, bool | None]] = []

    def with_data(what: str, must: bool | None, **fields: object) -> None:
        changed = {k: v for k, v in {**data, **fields}.items() if v is not ...}
        cases.append(({**base, "data": changed}, what, must))

    gone = nobody()
    if "ideas.submitted" in topic:
        named = {"anonymous": False}
        with_data("a submitter whose key is gone", False, submitter=person_ref(gone), **named)
        broken_box = {**person_ref(), "sealed": sealed_under(gone, box="not base64 at all!")}
        with_data("a submitter sealed in a box that does not open", False, submitter=broken_box, **named)
        odd_key = {**person_ref(), "sealed": sealed_under(gone, key_id="not-a-key-id")}
        with_data("a submitter sealed under a key id that is no key id", False, submitter=odd_key, **named)
        with_data("a submitter without a pseudonym", True, submitter={"sealed": sealed_under(gone)}, **named)
        with_data("a submitter without a sealed value", True, submitter={"pseudonym": gone}, **named)
        no_box = {"pseudonym": gone, "sealed": {"key": f"{gone}.{secrets.token_hex(6)}"}}
        with_data("a sealed submitter without its box", True, submitter=no_box, **named)
        v1 = {"name": "Anna Svensson", "email": "anna.svensson@kiruna.se"}
        with_data("a .v1 submitter (name and address in the clear)", True, submitter=v1, **named)
        with_data("a submitter as a plain string", True, submitter="anna.svensson@kiruna.se", **named)
    elif "engagement" in topic:
        with_data("a .v1 person (an address in the clear)", True, person="per.niemi@kiruna.se", text="hej")
        with_data("a person without a pseudonym", True, person={"sealed": sealed_under(gone)})
        with_data("a comment text in the clear", True, text="hej")
        with_data("a person whose key is gone", None, person=person_ref(gone), text=sealed_under(gone))
        with_data("a support of a person whose key is gone", None, kind="support", person=person_ref(gone), text=...)
    elif "preferences" in topic:
        with_data("preferences without the sealed contact", True, contact=...)
        with_data("a sealed contact that is a string", True, contact="anna.svensson@kiruna.se")
        with_data("preferences of a person whose key is gone", None, person=gone, contact=sealed_under(gone))
    elif "people.erasures" in topic:
        with_data("an erasure without a pseudonym", True, pseudonym=...)
        with_data("an erasure requested by nobody known", True, requested_by="the-neighbour")
        with_data("an erasure of someone the platform never knew", False, pseudonym=gone)
        with_data("an erasure asked for by an admin", False, pseudonym=nobody(), requested_by="admin", admin="admin")
        with_data("an erasure of a pseudonym that is no pseudonym", None, pseudonym="anna.svensson@kiruna.se")
    return cases


def wrong_types(value: object, rng: random.Random) -> object:
    """Every leaf replaced by a value of another JSON type."""
    if isinstance(value, dict):
        return {k: wrong_types(v, rng) for k, v in value.items()}
    if isinstance(value, list):
        return {"0": [wrong_types(v, rng) for v in value]}
    if isinstance(value, str):
        return rng.choice([12345, [value], {"s": value}, False])
    return rng.choice(["not-a-number", [], {"x": 1}])


def mangled(topic: str, rng: random.Random, *, compacted: bool = False) -> list[Bad]:
    """The bad records of one topic: (value, key, description, must it be dead-lettered). A compacted topic
    (preferences) gets no record without a key: Kafka refuses those itself."""
    base = a_valid_event(topic)
    text = json.dumps(base).encode()
    key = str(base.get("subject", uuid.uuid4())).encode()
    is_envelope = "specversion" in base
    out: list[Bad] = []

    def add(value: bytes, what: str, must: bool, record_key: bytes | None = key, handled: bool = False) -> None:
        out.append(Bad(topic, value, record_key, what, must, must_be_handled=handled))

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
        if not compacted:
            add(text, "valid event without a key", False, record_key=None)
        huge = {
            k: ("x" * 200_000 if isinstance(v, str) and k not in ("idea_id", "person", "pseudonym", "recipient") else v)
            for k, v in base["data"].items()
        }
        add(json.dumps({**base, "data": huge}).encode(), "200,000-character strings", False)
        add(json.dumps({**base, "subject": "x" * 100_000}).encode(), "a 100,000-character subject", False)
        for event, what, must in people_cases(topic, base):
            record_key = str(event["data"].get("idea_id") or event["subject"]).encode()
            add(json.dumps(event).encode(), what, must is True, record_key=record_key, handled=must is False)
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
    handled: int = 0  # (record, reading service) pairs that must be handled, never dead-lettered
    wrongly_dead_lettered: list[str] = field(default_factory=list)
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
    compacted = {
        spec.name
        for spec in Topics(settings.topic_prefix).specs(settings, ())
        if "compact" in spec.config.get("cleanup.policy", "")
    }
    records = [bad for topic in sorted(readers) for bad in mangled(topic, rng, compacted=topic in compacted)]
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
    tolerated = {bad.fuzz_id for bad in records if not bad.must_dead_letter and not bad.must_be_handled}
    outcome.tolerated = len(tolerated)
    handled = {(bad.fuzz_id, service): bad for bad in records if bad.must_be_handled for service in readers[bad.topic]}
    outcome.handled = len(handled)
    for (fuzz_id, service), bad in handled.items():
        if (fuzz_id, service) in seen:
            outcome.wrongly_dead_lettered.append(f"{service} dead-lettered {bad.what} on {bad.topic}")
    outcome.dead_consumers = [name for name, ok in alive().items() if not ok]
    return outcome
