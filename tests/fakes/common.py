"""Fakes every service's handlers share: the publisher port (shared/publishing.py) and a clock."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.events import Envelope, PersonRef, Sealed
from shared.kafka import KafkaUnavailable
from shared.sealing import DataKey, open_json, open_sealed, pseudonym, pseudonym_of_key


class FakePublisher:
    """Records every envelope per topic. ``unavailable = True`` makes it refuse as Kafka does when it is away."""

    def __init__(self) -> None:
        self.published: dict[str, list[Envelope[Any]]] = defaultdict(list)
        self.unavailable = False

    async def publish(self, topic: str, envelope: Envelope[Any]) -> None:
        await asyncio.sleep(0)  # the acknowledgement takes a while: others run meanwhile
        if self.unavailable:
            raise KafkaUnavailable(f"Kafka did not acknowledge {envelope.type} on {topic}: fake outage")
        self.published[topic].append(envelope)

    async def after_stored(self, effect) -> None:
        await effect()

    def on(self, topic: str) -> list[Envelope[Any]]:
        """What was published on ``topic``, in order."""
        return list(self.published.get(topic, ()))

    @property
    def count(self) -> int:
        return sum(len(envelopes) for envelopes in self.published.values())


class FixedClock:
    """A clock that returns the same moment until told to move on."""

    def __init__(self, now: datetime = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


class FakeKeyring:
    """The people's keyring (shared/keyring.py) in memory, with the real sealing: the same methods handlers use.
    ``erase`` drops a person's key, so their sealed values read as erased (None) afterwards."""

    def __init__(self, pepper: bytes = b"test-pseudonym-pepper") -> None:
        self.pepper = pepper
        self.keys: dict[str, DataKey] = {}
        self.recorded: list[str] = []
        self.tombstoned: list[str] = []

    def pseudonym(self, person: str) -> str:
        return pseudonym(self.pepper, person)

    async def key_for(self, person: str) -> DataKey:
        name = self.pseudonym(person)
        if name not in self.keys:
            self.keys[name] = DataKey.new(name)
            self.recorded.append(self.keys[name].key_id)
        return self.keys[name]

    async def current(self, pseudonym_: str) -> DataKey | None:
        return self.keys.get(pseudonym_)

    async def key(self, key_id: str) -> DataKey | None:
        owner = pseudonym_of_key(key_id)
        key = self.keys.get(owner or "")
        return key if key is not None and key.key_id == key_id else None

    async def open(self, sealed: Sealed | None) -> str | None:
        return None if sealed is None else open_sealed(await self.key(sealed.key), sealed)

    async def open_json(self, sealed: Sealed | None) -> dict[str, Any] | None:
        return None if sealed is None else open_json(await self.key(sealed.key), sealed)

    async def person_ref(
        self, email: str, name: str | None, *, organisation: str | None = None, unit: str | None = None
    ) -> tuple[PersonRef, DataKey]:
        key = await self.key_for(email)
        sealed = key.seal_json({"name": name, "email": email.strip().lower()})
        return PersonRef(pseudonym=key.pseudonym, sealed=sealed, organisation=organisation, unit=unit), key

    async def erase(self, pseudonym_: str) -> bool:
        self.tombstoned.append(pseudonym_)
        return self.keys.pop(pseudonym_, None) is not None

    def forget_cached(self, pseudonym_: str) -> None:
        pass
