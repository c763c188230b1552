"""Fakes every service's handlers share: the publisher port (shared/publishing.py) and a clock."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.events import Envelope
from shared.kafka import KafkaUnavailable


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
