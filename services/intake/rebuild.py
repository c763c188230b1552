"""Rebuild intake's Redis state from Kafka: ``python -m services.intake.rebuild``.

Intake keeps in Redis what it must know to judge a write: each idea's state, the organisations that own it and
who supports it. This forgets those records, reads the topics intake follows from their beginning up to the end
offsets found at start (later events are the running service's business) and applies every event exactly as the
live subscribers do, with a progress bar. Idempotency-Keys and rate-limit counters are left alone (they expire on
their own and no topic holds them). Safe while intake runs: both write the same replay-safe records; a write
about an idea not re-read yet is refused as unknown (404) until it is.

Records that cannot be parsed were dead-lettered when they first arrived; the rebuild counts and skips them.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TextIO

from services.intake.following import follow
from services.intake.settings import IntakeSettings
from services.intake.store import IntakeStore
from shared.redis_pipelining import AutoPipelineRedis
from shared.replay import read_event_batches, rebuild_command, topic_partitions
from shared.service import redis_options
from shared.topics import Topics


@dataclass
class RebuildResult:
    forgotten_keys: int = 0
    events: Counter[str] = field(default_factory=Counter)
    malformed: Counter[str] = field(default_factory=Counter)
    ideas: int = 0
    seconds: float = 0.0

    def describe(self) -> str:
        per_topic = ", ".join(f"{topic}: {n}" for topic, n in sorted(self.events.items())) or "none"
        return "\n".join(
            (
                f"intake rebuild: applied {sum(self.events.values())} events ({per_topic})",
                f"{self.ideas} ideas known again; {sum(self.malformed.values())} unparseable records skipped "
                "(they are in the .dlq topics)",
                f"forgot {self.forgotten_keys} keys first; took {self.seconds:.1f} s",
            )
        )


async def rebuild(settings: IntakeSettings, *, progress: bool = True, stream: TextIO | None = None) -> RebuildResult:
    started = time.monotonic()
    result = RebuildResult()
    models = Topics(settings.kafka.topic_prefix).idea_events()
    redis = AutoPipelineRedis.from_url(settings.redis_url, **redis_options(settings))  # the services' timeouts
    store = IntakeStore(redis, settings.redis_prefix)
    ideas: set[str] = set()
    try:
        # Forget first, then read up to the end offsets: an event that lands meanwhile is applied by the
        # running service, so none is lost between the two.
        await topic_partitions(settings.kafka, list(models))  # Kafka answers before anything is forgotten
        result.forgotten_keys = await store.forget_ideas()
        label = "rebuilding intake's ideas"
        reading = {"label": label, "progress": progress, "stream": stream}
        async for batch in read_event_batches(settings.kafka, models, malformed=result.malformed, **reading):
            for topic, envelope in batch:
                result.events[topic] += 1
                ideas.add(envelope.subject)
            await asyncio.gather(*(follow(store, envelope) for _, envelope in batch))  # one pipeline per loop turn
    finally:
        await redis.aclose()
    result.ideas = len(ideas)
    result.seconds = time.monotonic() - started
    return result


def main(argv: list[str] | None = None) -> int:
    description = "Forget intake's idea records in Redis and rebuild them from the beginning of the topics."
    return rebuild_command(argv, service="intake", description=description, settings=IntakeSettings(), rebuild=rebuild)


if __name__ == "__main__":
    raise SystemExit(main())
