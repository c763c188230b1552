"""The people's keyring on the real Kafka and Redis: keys recorded before use, one key per person under a race,
erasure by tombstone, restoring from Kafka after Redis is lost, a wrong key-encryption key refused by name, and
compaction removing a tombstoned key from people.keys.v1 on the local broker."""

from __future__ import annotations

import asyncio
import base64
import time

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from pydantic import SecretStr
from redis.asyncio import Redis

from shared.events import Envelope, PersonKey
from shared.kafka import client_options
from shared.keyring import Keyring
from shared.replay import read_topics
from shared.sealing import WrongKeyEncryptionKey
from shared.settings import ServiceSettings
from tests.conftest import REDIS_URL

pytestmark = pytest.mark.asyncio(loop_scope="function")

ANNA = "Anna.Svensson@kiruna.se"


@pytest.fixture
async def redis():
    client = Redis.from_url(REDIS_URL, decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture
def settings(kafka_settings, redis_prefix) -> ServiceSettings:
    return ServiceSettings(kafka=kafka_settings, REDIS_URL=REDIS_URL, REDIS_KEY_PREFIX=redis_prefix)


@pytest.fixture
async def keyring(redis, settings, topics):
    ring = Keyring.from_settings(redis, settings, topics.people_keys)
    yield ring
    await ring.close()


async def read_all(kafka_settings, topic: str) -> list:
    """Every record of the topic from its beginning, as a plain reader sees it (no consumer group)."""
    return [record async for record in read_topics(kafka_settings, [topic], progress=False)]


async def test_a_key_is_recorded_in_kafka_before_it_is_used_and_names_nobody(keyring, kafka_settings, topics):
    key = await keyring.key_for(ANNA)
    records = await read_all(kafka_settings, topics.people_keys)
    assert [r.key.decode() for r in records] == [key.pseudonym]
    assert b"anna" not in records[0].value.lower() and b"svensson" not in records[0].value.lower()
    assert Envelope[PersonKey].parse(records[0].value).data.key_id == key.key_id
    assert (await keyring.key_for(ANNA.lower())).key_id == key.key_id  # the same person, the same key


async def test_concurrent_first_uses_make_one_key(keyring):
    keys = await asyncio.gather(*(keyring.key_for(ANNA) for _ in range(20)))
    assert len({k.key_id for k in keys}) == 1


async def test_a_key_made_in_another_process_is_seen_at_once_where_its_absence_was_asked(redis, settings, topics):
    """An absence is never remembered: Kim's first idea, sealed by intake's keyring, reads by her name in
    analytics' keyring, which had found no key of hers a moment before (the key, once found, is kept 30 s)."""
    here = Keyring.from_settings(redis, settings, topics.people_keys)
    there = Keyring.from_settings(redis, settings, topics.people_keys)
    try:
        kim = "kim.kallio@kiruna.se"
        assert await here.current(here.pseudonym(kim)) is None
        ref, _ = await there.person_ref(kim, "Kim Kallio")
        assert (await here.open_json(ref.sealed)) == {"name": "Kim Kallio", "email": kim}
        await there.erase(ref.pseudonym)
        back, _ = await there.person_ref(kim, "Kim Kallio")  # she comes back: a new key, also seen at once
        assert (await here.open_json(back.sealed))["name"] == "Kim Kallio"
    finally:
        await here.close()
        await there.close()


async def test_sealing_reads_redis_every_time_so_an_erasure_elsewhere_is_seen_at_once(redis, settings, topics):
    """key_for reads the person's key from Redis on every use (only the unwrapping of the same record is not done
    again): once another process erased her and she came back, the next seal is under her new key, not the one
    this process used a moment before; and a key whose maker died before recording it is recorded on next use."""
    here = Keyring.from_settings(redis, settings, topics.people_keys)
    there = Keyring.from_settings(redis, settings, topics.people_keys)
    try:
        first = await here.key_for(ANNA)
        again = await here.key_for(ANNA)
        assert again == first  # read from Redis, the same record: the same key
        await there.erase(first.pseudonym)
        back = await there.key_for(ANNA)
        seal = await here.key_for(ANNA)
        assert seal.key_id == back.key_id != first.key_id
        ref, _ = await here.person_ref(ANNA, "Anna Svensson")
        assert ref.sealed.key == back.key_id
        await redis.hdel(here._key("key", back.pseudonym), "recorded")  # as if its maker died before recording it
        assert (await here.key_for(ANNA)).key_id == back.key_id
        assert await redis.hget(here._key("key", back.pseudonym), "recorded") == "1"
    finally:
        await here.close()
        await there.close()


async def test_erasure_tombstones_the_key_and_sealed_values_read_as_erased(keyring, redis, kafka_settings, topics):
    ref, key = await keyring.person_ref(ANNA, "Anna Svensson")
    assert await keyring.open_json(ref.sealed) == {"name": "Anna Svensson", "email": ANNA.lower()}
    assert await keyring.erase(ref.pseudonym) is True
    assert await keyring.open_json(ref.sealed) is None
    assert await keyring.key(key.key_id) is None
    records = await read_all(kafka_settings, topics.people_keys)
    assert records[-1].key.decode() == ref.pseudonym and records[-1].value is None  # the tombstone
    assert await keyring.erase(ref.pseudonym) is False  # a repeat changes nothing
    back = await keyring.key_for(ANNA)  # a person who comes back starts from nothing
    assert back.key_id != key.key_id and await keyring.open_json(ref.sealed) is None


async def test_a_lost_redis_is_refilled_from_kafka_and_erased_people_stay_erased(redis, settings, topics, redis_prefix):
    first = Keyring.from_settings(redis, settings, topics.people_keys)
    anna = await first.key_for(ANNA)
    per = await first.key_for("per.niemi@kiruna.se")
    await first.erase(per.pseudonym)
    await first.close()
    await redis.delete(*[k async for k in redis.scan_iter(match=f"{redis_prefix}:*")])  # Redis lost

    second = Keyring.from_settings(redis, settings, topics.people_keys)
    try:
        assert (await second.key(anna.key_id)) == anna  # restored before anything is read or made
        assert await second.key(per.key_id) is None
        assert (await second.key_for(ANNA)).key_id == anna.key_id  # not a second key for Anna
    finally:
        await second.close()


async def test_a_wrong_key_encryption_key_is_refused_by_name(redis, settings, topics, keyring):
    await keyring.check()
    await keyring.key_for(ANNA)
    other = base64.b64encode(b"another key-encryption key, 32b!").decode()
    wrong = Keyring.from_settings(
        redis, settings.model_copy(update={"people_kek": SecretStr(other)}), topics.people_keys
    )
    try:
        with pytest.raises(WrongKeyEncryptionKey, match="PEOPLE_KEK"):
            await wrong.check()
        with pytest.raises(WrongKeyEncryptionKey, match="PEOPLE_KEK"):
            await wrong.restore()
    finally:
        await wrong.close()


async def test_compaction_removes_a_tombstoned_key_from_the_topic(kafka_settings, topics, keyring):
    """The local broker's cleaner (log.cleaner.backoff.ms 15 s by default) removes the record of an erased key.
    The production settings (shared/topics.py PEOPLE_KEYS_CONFIG) differ only in their times; here they are short
    so the test does not wait ten minutes."""
    topic = f"{kafka_settings.topic_prefix}people.keys.compaction"
    fast = {
        "cleanup.policy": "compact",
        "segment.ms": "200",
        "max.compaction.lag.ms": "200",
        "min.cleanable.dirty.ratio": "0.01",
        "delete.retention.ms": "200",
    }
    admin = AIOKafkaAdminClient(**client_options(kafka_settings))
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 1, 1, topic_configs=fast)])
    finally:
        await admin.close()
    key = await keyring.key_for(ANNA)
    record = keyring.kek.wrap(key)
    producer = AIOKafkaProducer(**client_options(kafka_settings), acks="all")
    await producer.start()
    try:
        value = Envelope.wrap(record, source="/tests").to_bytes()
        await producer.send_and_wait(topic, value=value, key=key.pseudonym.encode())
        await producer.send_and_wait(topic, value=None, key=key.pseudonym.encode())
        started = time.monotonic()
        deadline = started + 120
        while True:  # later writes close the segment (intake writes one every segment.ms / 2 in production)
            await producer.send_and_wait(topic, value=b"{}", key=b"-")
            left = [r for r in await read_all(kafka_settings, topic) if r.key == key.pseudonym.encode()]
            if not any(r.value for r in left):
                break
            assert time.monotonic() < deadline, f"the erased key is still in {topic} after 120 s: {left}"
            await asyncio.sleep(1.0)
        took = time.monotonic() - started
        print(f"\ncompaction removed the erased key's record in {took:.1f} s with {fast}")
    finally:
        await producer.stop()
