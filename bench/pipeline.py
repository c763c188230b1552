"""End-to-end latency: from the 202 of an idea to its routed event, its first notification and its analytics
projection. A plain aiokafka consumer reads ``ideas.routed.v1`` and ``notifications.sent.v2`` (matching on the
Kafka key, which is the idea id: no parsing), and the analytics summaries are read from Redis in one pipelined
round trip every few milliseconds."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer
from redis.asyncio import Redis

from bench.stack import Space, partitions_of
from bench.stats import latency_summary
from shared.kafka import client_options
from shared.settings import KafkaSettings

STAGES = ("routed", "notified", "projected")


@dataclass
class StageLatency:
    p50_ms: float
    p99_ms: float
    max_ms: float
    seen: int
    missing: int


class Tracker:
    def __init__(self, kafka: KafkaSettings, space: Space, redis_url: str, *, poll_s: float = 0.01) -> None:
        self.kafka = kafka
        self.space = space
        self.redis = Redis.from_url(redis_url)
        self.poll_s = poll_s
        self.accepted: dict[str, float] = {}
        self.seen: dict[str, dict[str, float]] = {stage: {} for stage in STAGES}
        self.unprojected: set[str] = set()
        self._tasks: list[asyncio.Task] = []
        topics = space.topics
        self._stage_of = {topics.routed: "routed", topics.notifications_sent: "notified"}
        self._summary_prefix = f"{space.redis_prefix}:analytics:idea:"

    async def start(self) -> None:
        self.consumer = AIOKafkaConsumer(**client_options(self.kafka), group_id=None, enable_auto_commit=False)
        await self.consumer.start()
        partitions = await partitions_of(self.kafka, list(self._stage_of))
        self.consumer.assign(partitions)
        await self.consumer.seek_to_end(*partitions)
        self._tasks = [asyncio.create_task(self._consume()), asyncio.create_task(self._poll_analytics())]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.consumer.stop()
        await self.redis.aclose()

    def on_accepted(self, body: bytes, at: float) -> None:
        idea_id = json.loads(body)["idea_id"]
        self.accepted[idea_id] = at
        self.unprojected.add(idea_id)

    def reset(self) -> None:
        self.accepted.clear()
        self.unprojected.clear()
        for seen in self.seen.values():
            seen.clear()

    async def _consume(self) -> None:
        stage_of = self._stage_of
        while True:
            batches = await self.consumer.getmany(timeout_ms=200)
            now = time.monotonic()
            for tp, records in batches.items():
                seen = self.seen[stage_of[tp.topic]]
                for record in records:
                    if record.key is not None:
                        seen.setdefault(record.key.decode(), now)

    async def _poll_analytics(self) -> None:
        seen = self.seen["projected"]
        while True:
            started = time.monotonic()
            if self.unprojected:
                ids = list(self.unprojected)[:2000]
                values = await self.redis.mget([f"{self._summary_prefix}{i}:summary" for i in ids])
                now = time.monotonic()
                for idea_id, raw in zip(ids, values, strict=True):
                    if raw and json.loads(raw).get("state") not in (None, "", "submitted"):
                        seen[idea_id] = now
                        self.unprojected.discard(idea_id)
            await asyncio.sleep(max(self.poll_s, time.monotonic() - started))

    def complete(self) -> bool:
        return all(all(i in self.seen[s] for s in STAGES) for i in self.accepted)

    async def wait_complete(self, timeout_s: float) -> float:
        """Wait until every accepted idea went through every stage (or the timeout); returns the wait."""
        started = time.monotonic()
        while time.monotonic() - started < timeout_s and not self.complete():  # noqa: ASYNC110 (polling)
            await asyncio.sleep(0.1)
        return time.monotonic() - started

    def latencies(self) -> dict[str, StageLatency]:
        out = {}
        for stage in STAGES:
            seen = self.seen[stage]
            values = [max(0.0, seen[i] - t) for i, t in self.accepted.items() if i in seen]
            s = latency_summary(values)
            out[stage] = StageLatency(
                s["p50_ms"], s["p99_ms"], s["max_ms"], len(values), len(self.accepted) - len(values)
            )
        return out
