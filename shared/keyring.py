"""People's data keys: made on first need, recorded in ``people.keys.v1`` (the record, compacted) before anything
is sealed under them, kept in Redis for every service to read, tombstoned when the person is erased.

Redis (one keyring for the platform, beside the services' own prefixes)::

    <prefix>:people:key:<pseudonym>    hash: record (the PersonKey JSON, wrapped), recorded ("1" once in Kafka)
    <prefix>:people:kek-id             the id of the key-encryption key the keys are wrapped with
    <prefix>:people:keyring-restored   set once the keyring was filled from people.keys.v1 (lost Redis: refilled
                                       before the first key is made, so nobody is given a second key by mistake)

A service that only reads sealed values asks :meth:`Keyring.key` for the key a value names; None means the person
was erased (or came back with a new key): the value reads as erased, and the event is handled all the same.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from redis.asyncio import Redis

from shared.events import Envelope, PersonKey, PersonRef, Sealed, utc_now
from shared.sealing import (
    DataKey,
    KeyEncryptionKey,
    WrongKeyEncryptionKey,
    decode_secret_key,
    open_json,
    open_sealed,
    pseudonym,
    pseudonym_of_key,
)
from shared.settings import KafkaSettings, ServiceSettings

SOURCE = "/shared/keyring"
CACHE_S = 30.0
"""How long a process keeps an unwrapped key (or its absence) in memory: an erasure reaches a process that did not
handle the erasure event itself within this time."""


class KeyWriter(Protocol):
    """Where data keys are recorded: ``people.keys.v1`` (``KafkaKeyWriter``), or a fake in unit tests."""

    async def record(self, key: PersonKey) -> None: ...

    async def tombstone(self, pseudonym: str) -> None: ...


class KeySource(Protocol):
    """Reads ``people.keys.v1`` from the start: each pseudonym's last record (None for a tombstone)."""

    async def last_records(self) -> dict[str, PersonKey | None]: ...


class Keyring:
    def __init__(
        self,
        redis: Redis,
        *,
        prefix: str,
        kek: KeyEncryptionKey,
        pepper: bytes,
        writer: KeyWriter,
        source: KeySource,
        cache_s: float = CACHE_S,
        clock: Callable[[], float] = time.monotonic,
        logger: logging.Logger | None = None,
    ) -> None:
        self.redis = redis
        self.prefix = f"{prefix}:people"
        self.kek = kek
        self.pepper = pepper
        self.writer = writer
        self.source = source
        self.cache_s = cache_s
        self.clock = clock
        self.logger = logger or logging.getLogger("keyring")
        self._cache: dict[str, tuple[DataKey, float]] = {}
        self._wrapped: dict[str, tuple[str, DataKey]] = {}
        """Each person's wrapped record as :meth:`key_for` last read it from Redis, with its key unwrapped."""
        self._restored = False
        self._restore_lock = asyncio.Lock()

    @classmethod
    def from_settings(cls, redis: Redis, settings: ServiceSettings, topic: str, **options: Any) -> Keyring:
        return cls(
            redis,
            prefix=settings.redis_prefix,
            kek=KeyEncryptionKey(decode_secret_key(settings.people_kek.get_secret_value(), "PEOPLE_KEK")),
            pepper=settings.pseudonym_pepper.get_secret_value().encode(),
            writer=KafkaKeyWriter(settings.kafka, topic),
            source=KafkaKeySource(settings.kafka, topic),
            **options,
        )

    def _key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    def pseudonym(self, person: str) -> str:
        """The pseudonym of a person (their e-mail address)."""
        return pseudonym(self.pepper, person)

    # --- the key-encryption key -----------------------------------------------------------------------------

    async def check(self) -> None:
        """Refuse (:class:`WrongKeyEncryptionKey`, naming PEOPLE_KEK) when the keys in this Redis were wrapped with
        another key-encryption key; record this one's id when none is recorded yet."""
        await self.redis.set(self._key("kek-id"), self.kek.kek_id, nx=True)
        recorded = await self.redis.get(self._key("kek-id"))
        if recorded is not None and _text(recorded) != self.kek.kek_id:
            raise WrongKeyEncryptionKey(
                f"{self.kek.setting} is not the key-encryption key the people's data keys were wrapped with (their "
                f"kek id is {_text(recorded)}, {self.kek.setting} gives {self.kek.kek_id}): set {self.kek.setting} "
                "to the group's value"
            )

    # --- keys -----------------------------------------------------------------------------------------------

    async def key_for(self, person: str, *, since: datetime | None = None) -> DataKey:
        """The person's current data key, made (and recorded in Kafka) if they have none. Use it to seal.
        ``since``: when a key made now counts from (its ``created``; now unless the migration says otherwise)."""
        await self.restore_if_lost()
        name = self.pseudonym(person)
        redis_key = self._key("key", name)
        # Most people act again: read their key first (one round trip; nothing made, wrapped and thrown away)
        stored = await self.redis.hgetall(redis_key)
        if not _field(stored, "record"):
            made = DataKey.new(name, now=since or utc_now())
            record = self.kek.wrap(made)
            if await self.redis.hsetnx(redis_key, "record", record.model_dump_json()):
                await self._record(redis_key, record)
                self._remember(name, made)
                return made
            stored = await self.redis.hgetall(redis_key)  # made meanwhile by another request or process
        raw = _field(stored, "record") or ""
        if _field(stored, "recorded") != "1":  # its maker may have died before recording it: record it again
            await self._record(redis_key, PersonKey.model_validate_json(raw))
        key = self._unwrapped(name, raw)
        self._remember(name, key)
        return key

    def _unwrapped(self, name: str, raw: str) -> DataKey:
        """The data key of a wrapped record as Redis holds it. Redis is read every time (an erasure elsewhere must
        be seen at once when sealing); only the parsing and unwrapping of the same record is not done again."""
        known = self._wrapped.get(name)
        if known is not None and known[0] == raw:
            return known[1]
        key = self.kek.unwrap(PersonKey.model_validate_json(raw))
        self._wrapped[name] = (raw, key)
        return key

    async def _record(self, redis_key: str, record: PersonKey) -> None:
        await self.writer.record(record)
        await self.redis.hset(redis_key, "recorded", "1")

    async def current(self, pseudonym_: str, *, fresh: bool = False) -> DataKey | None:
        """The person's current key, or None when they have none (never acted, or erased). A key found is kept
        in memory for ``cache_s``; an absence is not (a key made meanwhile in another process must be seen)."""
        cached = self._cache.get(pseudonym_)
        if not fresh and cached is not None and cached[1] > self.clock():
            return cached[0]
        await self.restore_if_lost()
        raw = await self.redis.hget(self._key("key", pseudonym_), "record")
        if not raw:
            self.forget_cached(pseudonym_)
            return None
        key = self.kek.unwrap(PersonKey.model_validate_json(_text(raw)))
        self._remember(pseudonym_, key)
        return key

    async def key(self, key_id: str) -> DataKey | None:
        """The key a sealed value names, or None when it is gone (the person was erased)."""
        owner = pseudonym_of_key(key_id)
        if owner is None:
            return None
        key = await self.current(owner)
        if key is not None and key.key_id != key_id:  # made anew in another process since it was kept here?
            key = await self.current(owner, fresh=True)
        return key if key is not None and key.key_id == key_id else None

    async def open(self, sealed: Sealed | None) -> str | None:
        """A sealed value's text; None when there is none or its person was erased."""
        if sealed is None:
            return None
        return open_sealed(await self.key(sealed.key), sealed)

    async def open_json(self, sealed: Sealed | None) -> dict[str, Any] | None:
        if sealed is None:
            return None
        return open_json(await self.key(sealed.key), sealed)

    async def person_ref(
        self,
        email: str,
        name: str | None,
        *,
        organisation: str | None = None,
        unit: str | None = None,
        since: datetime | None = None,
    ) -> tuple[PersonRef, DataKey]:
        """A person as an event names them (pseudonym, and name and address sealed), with the key used."""
        key = await self.key_for(email, since=since)
        sealed = key.seal_json({"name": name, "email": email.strip().lower()})
        return PersonRef(pseudonym=key.pseudonym, sealed=sealed, organisation=organisation, unit=unit), key

    def _remember(self, pseudonym_: str, key: DataKey) -> None:
        if len(self._cache) > 10_000:
            self._cache.clear()
            self._wrapped.clear()
        self._cache[pseudonym_] = (key, self.clock() + self.cache_s)

    def forget_cached(self, pseudonym_: str) -> None:
        self._cache.pop(pseudonym_, None)
        self._wrapped.pop(pseudonym_, None)

    # --- erasure --------------------------------------------------------------------------------------------

    async def erase(self, pseudonym_: str) -> bool:
        """Tombstone the person's key in Kafka (the record), then drop it here. True when there was a key.
        An unknown person is tombstoned all the same (nothing to tell apart); a repeat changes nothing."""
        had = bool(await self.redis.exists(self._key("key", pseudonym_)))
        await self.writer.tombstone(pseudonym_)
        await self.redis.delete(self._key("key", pseudonym_))
        self.forget_cached(pseudonym_)
        return had

    # --- restoring from Kafka -------------------------------------------------------------------------------

    async def restore_if_lost(self) -> None:
        """Fill the keyring from people.keys.v1 when this Redis has never been filled (it was lost or is new)."""
        if self._restored:
            return
        if await self.redis.exists(self._key("keyring-restored")):
            self._restored = True
            return
        async with self._restore_lock:
            if not self._restored:
                await self.restore()

    async def restore(self) -> tuple[int, int]:
        """Make Redis hold exactly the live keys of people.keys.v1: keys made here but not yet recorded stay, and
        so do keys made while the topic was being read (by another service meanwhile). Returns (keys restored,
        keys removed)."""
        started = utc_now()
        records = await self.source.last_records()
        restored = removed = 0
        for name, record in records.items():
            redis_key = self._key("key", name)
            held = await self._held(redis_key)
            if record is None:  # tombstoned: gone, unless made anew while the topic was being read
                if held is not None and held.created < started:
                    removed += await self.redis.delete(redis_key)
                    self.forget_cached(name)
                continue
            self.kek.unwrap(record)  # a wrong key-encryption key stops here, naming the setting
            if held is None or held.created <= record.created:  # a newer key held here is the person's now
                await self.redis.hset(redis_key, mapping={"record": record.model_dump_json(), "recorded": "1"})
            restored += 1
        async for raw in self.redis.scan_iter(match=self._key("key", "*"), count=500):
            name = _text(raw).rsplit(":", 1)[-1]
            recorded = _text(await self.redis.hget(raw, "recorded") or "") == "1"
            held = await self._held(raw)
            if name not in records and recorded and held is not None and held.created < started:
                removed += await self.redis.delete(raw)  # tombstoned, and the tombstone compacted away since
                self.forget_cached(name)
        await self.redis.set(self._key("keyring-restored"), "1")
        self._restored = True
        self.logger.info("people's keys restored from Kafka", extra={"restored": restored, "removed": removed})
        return restored, removed

    async def _held(self, redis_key: str) -> PersonKey | None:
        raw = await self.redis.hget(redis_key, "record")
        return PersonKey.model_validate_json(_text(raw)) if raw else None

    async def close(self) -> None:
        close = getattr(self.writer, "close", None)
        if close is not None:
            await close()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _field(mapping: dict[Any, Any], name: str) -> str | None:
    value = mapping.get(name.encode(), mapping.get(name))
    return None if value is None else _text(value)


class KafkaKeyWriter:
    """Records keys (and tombstones: a null value, which a CloudEvents publisher cannot write) with a producer of
    its own: acks=all, idempotent, started on first use."""

    def __init__(self, settings: KafkaSettings, topic: str) -> None:
        self.settings = settings
        self.topic = topic
        self._producer: Any = None
        self._lock = asyncio.Lock()

    async def _started(self) -> Any:
        async with self._lock:
            if self._producer is None:
                from aiokafka import AIOKafkaProducer

                from shared.kafka import client_options

                producer = AIOKafkaProducer(
                    **client_options(self.settings), acks="all", enable_idempotence=True, linger_ms=0
                )
                try:
                    await producer.start()
                except BaseException:
                    await producer.stop()
                    raise
                self._producer = producer
        return self._producer

    async def _send(self, key: str, value: bytes | None) -> None:
        from shared.kafka import KafkaUnavailable

        producer = await self._started()
        try:
            async with asyncio.timeout(self.settings.publish_timeout_s):
                await producer.send_and_wait(self.topic, value=value, key=key.encode())
        except Exception as exc:
            raise KafkaUnavailable(f"Kafka did not acknowledge the key of {key} on {self.topic}: {exc!r}") from exc

    async def record(self, key: PersonKey) -> None:
        envelope = Envelope.wrap(key, source=SOURCE, event_id=key.key_id, time=key.created)
        await self._send(key.pseudonym, envelope.to_bytes())

    async def tombstone(self, pseudonym_: str) -> None:
        await self._send(pseudonym_, None)

    async def close(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None


class KafkaKeySource:
    def __init__(self, settings: KafkaSettings, topic: str, *, progress: bool = False) -> None:
        self.settings = settings
        self.topic = topic
        self.progress = progress

    async def last_records(self) -> dict[str, PersonKey | None]:
        from shared.replay import read_topics

        last: dict[str, PersonKey | None] = {}
        async for record in read_topics(
            self.settings, [self.topic], label="restoring people's keys", progress=self.progress
        ):
            if record.key is None:
                continue
            name = record.key.decode()
            if record.value is None:
                last[name] = None
                continue
            try:
                last[name] = Envelope[PersonKey].parse(record.value).data
            except ValueError:
                logging.getLogger("keyring").warning(
                    "unreadable record in people.keys.v1 skipped", extra={"pseudonym": name}
                )
        return last
