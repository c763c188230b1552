"""Rebuild intake's Redis state from Kafka: ``python -m services.intake.rebuild``.

Intake keeps in Redis what it must know to judge a write: each idea's state, the organisations that own it, its
text, its submitter (by pseudonym), the challenge it answers, its assignees and who supports it (by pseudonym); and
the challenges. The rebuild first fills the people's keyring from ``people.keys.v1`` (the record of every live data
key; an erased person's key is a tombstone there), then forgets the idea records, challenges and support markers,
replays ``people.erasures.v1`` (forgetting what intake holds about each erased person: the Idempotency-Key records
of their named ideas), and reads the topics intake follows from their beginning up to the end offsets found at
start (later events are the running service's business), applying every event exactly as the live subscribers do,
with a progress bar. A support marks its person, and an idea is linked to its submitter, only while their key is
live, so a rebuild after an erasure leaves the person erased. Each running replica's similar-ideas index catches up
with the rebuilt texts by itself (services/intake/similar.py). Idempotency-Keys and rate-limit counters are
otherwise left alone (they expire on their own and no topic holds them). Safe while intake runs: both write the
same replay-safe records; a write about an idea not re-read yet is refused as unknown (404) until it is.

Records that cannot be parsed were dead-lettered when they first arrived; the rebuild counts and skips them.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TextIO

from services.intake.following import follow, followed
from services.intake.settings import IntakeSettings
from services.intake.store import IntakeStore
from shared.events import EngagementKind, ErasureRequestedEvent, IdeaEngagement
from shared.keyring import Keyring
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
    keys_restored: int = 0
    keys_removed: int = 0
    erasures: int = 0
    erased_supports: int = 0
    seconds: float = 0.0

    def describe(self) -> str:
        per_topic = ", ".join(f"{topic}: {n}" for topic, n in sorted(self.events.items())) or "none"
        return "\n".join(
            (
                f"intake rebuild: people's keys restored from Kafka: {self.keys_restored} live, "
                f"{self.keys_removed} erased ones removed from Redis",
                f"applied {sum(self.events.values())} events ({per_topic})",
                f"{self.ideas} ideas known again; {self.erasures} erasure requests replayed; "
                f"{self.erased_supports} supports of erased people not marked; "
                f"{sum(self.malformed.values())} unparseable records skipped (they are in the .dlq topics)",
                f"forgot {self.forgotten_keys} keys first; took {self.seconds:.1f} s",
            )
        )


async def rebuild(settings: IntakeSettings, *, progress: bool = True, stream: TextIO | None = None) -> RebuildResult:
    started = time.monotonic()
    result = RebuildResult()
    topics = Topics(settings.kafka.topic_prefix)
    models = followed(topics)
    redis = AutoPipelineRedis.from_url(settings.redis_url, **redis_options(settings))  # the services' timeouts
    store = IntakeStore(redis, settings.redis_prefix)
    keyring = Keyring.from_settings(redis, settings, topics.people_keys)
    ideas: set[str] = set()
    try:
        # Forget first, then read up to the end offsets: an event that lands meanwhile is applied by the
        # running service, so none is lost between the two.
        await topic_partitions(settings.kafka, list(models))  # Kafka answers before anything is forgotten
        result.keys_restored, result.keys_removed = await keyring.restore()
        result.forgotten_keys = await store.forget_ideas()
        reading = {"progress": progress, "stream": stream}
        erasures = {topics.people_erasures: ErasureRequestedEvent}
        label = "replaying people's erasures"
        async for batch in read_event_batches(
            settings.kafka, erasures, malformed=result.malformed, label=label, **reading
        ):
            for _, envelope in batch:
                result.erasures += 1
                pseudonym = envelope.data.pseudonym
                current = await keyring.current(pseudonym)
                if current is None or current.created <= envelope.time:  # not a person who came back since
                    await store.forget_person(pseudonym)
                keyring.forget_cached(pseudonym)
        label = "rebuilding intake's ideas"
        async for batch in read_event_batches(
            settings.kafka, models, malformed=result.malformed, label=label, **reading
        ):
            for topic, envelope in batch:
                result.events[topic] += 1
                ideas.add(envelope.subject)
            result.erased_supports += sum([await _erased_support(keyring, envelope) for _, envelope in batch], start=0)
            await asyncio.gather(*(follow(store, keyring, envelope) for _, envelope in batch))  # one pipeline per turn
    finally:
        await keyring.close()
        await redis.aclose()
    result.ideas = len(ideas)
    result.seconds = time.monotonic() - started
    return result


async def _erased_support(keyring: Keyring, envelope) -> int:
    """1 for a support whose person's key is gone (it marks no one), else 0."""
    data = envelope.data
    if isinstance(data, IdeaEngagement) and data.kind is EngagementKind.SUPPORT:
        return int(await keyring.key(data.person.sealed.key) is None)
    return 0


def main(argv: list[str] | None = None) -> int:
    description = (
        "Restore the people's keys, forget intake's idea records and support markers in Redis, replay the people's "
        "erasures and rebuild the records from the beginning of the topics."
    )
    return rebuild_command(argv, service="intake", description=description, settings=IntakeSettings(), rebuild=rebuild)


if __name__ == "__main__":
    raise SystemExit(main())
