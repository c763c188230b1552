"""Rebuild analytics' projections from Kafka: ``python -m services.analytics.rebuild``.

First fills the people's keyring from ``people.keys.v1`` (``Keyring.restore``: erased people's keys are gone),
then wipes every analytics key under the Redis prefix, reads every projected topic and ``people.erasures.v1`` from
their beginning up to the end offsets it finds at start (events that arrive later are the running service's
business), adds each event to its idea's timeline exactly as the live subscribers do (a sealed value whose key is
gone is kept as erased, so no "my ideas" or name comes back for an erased person), keeps every challenge
(``challenges.v1``) as opened, recomputes every idea's projection once, carries every merged idea's supporters
and followers over to the idea it went into, and applies every erasure again (the last of each person). Prints
the counts and exits. Safe to run while the service runs: both write the same idempotent entries. The replicas'
in-memory indexes (search, similar ideas: ``mirror.py``) see the wipe and reload themselves.

Records that cannot be parsed were dead-lettered when they first arrived; the rebuild counts and skips them.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, TextIO

from tqdm import tqdm

from services.analytics.challenges import challenge_record
from services.analytics.domain import timeline_entry
from services.analytics.handlers import carry_merged, forget
from services.analytics.people import live_keys
from services.analytics.settings import AnalyticsSettings
from services.analytics.store import ProjectionStore
from services.analytics.subscribers import projected_topics
from shared.events import ChallengeOpenedEvent, ErasureRequestedEvent, IdeaState
from shared.keyring import Keyring
from shared.replay import read_event_batches, rebuild_command, topic_partitions
from shared.service import redis_client
from shared.topics import Topics


@dataclass
class RebuildResult:
    wiped_keys: int = 0
    events: Counter[str] = field(default_factory=Counter)
    duplicates: int = 0
    malformed: Counter[str] = field(default_factory=Counter)
    missing_topics: list[str] = field(default_factory=list)
    partitions: int = 0
    ideas: int = 0
    challenges: int = 0
    merges_carried: int = 0
    """Merged ideas whose supporters and followers were carried over to the idea they went into."""
    keys_restored: int = 0
    keys_removed: int = 0
    erasures: int = 0
    """Erasure requests replayed (the last of each person applied again)."""
    seconds: float = 0.0

    def describe(self) -> str:
        per_topic = ", ".join(f"{topic}: {n}" for topic, n in sorted(self.events.items())) or "none"
        lines = [
            f"people's keys restored from Kafka: {self.keys_restored} live, {self.keys_removed} erased ones removed",
            f"replayed {sum(self.events.values())} events from {self.partitions} partitions ({per_topic})",
            f"projected {self.ideas} ideas and {self.challenges} challenges; {self.merges_carried} merges carried "
            f"over; {self.duplicates} duplicate events ignored; "
            f"{sum(self.malformed.values())} unparseable records skipped (they are in the .dlq topics)",
            f"{self.erasures} erasure requests applied again",
            f"wiped {self.wiped_keys} keys first; took {self.seconds:.1f} s",
        ]
        if self.missing_topics:
            lines.append(f"topics not found (nothing to replay): {', '.join(self.missing_topics)}")
        return "\n".join(lines)


async def rebuild(settings: AnalyticsSettings, *, progress: bool = True, stream: TextIO | None = None) -> RebuildResult:
    """Restore the keyring, then wipe and rebuild the projections from the beginning of every topic; in-process."""
    stream = stream or sys.stderr
    started = time.monotonic()
    result = RebuildResult()
    topics = Topics(settings.kafka.topic_prefix)
    models: dict[str, Any] = {
        **projected_topics(topics),
        topics.challenges: ChallengeOpenedEvent,
        topics.people_erasures: ErasureRequestedEvent,
    }
    redis = redis_client(settings)  # with the services' timeouts: a hung Redis fails the rebuild, never hangs it
    keyring = Keyring.from_settings(redis, settings, topics.people_keys)  # as the service's (shared/service.py)
    store = ProjectionStore(redis, settings.redis_prefix)
    try:
        partitions = await topic_partitions(settings.kafka, list(models))  # Kafka answers before anything is wiped
        result.keys_restored, result.keys_removed = await keyring.restore()
        result.wiped_keys = await store.wipe()
        result.partitions = len(partitions)
        result.missing_topics = [topic for topic in models if topic not in {tp.topic for tp in partitions}]
        touched: set[str] = set()
        erasures: dict[str, ErasureRequestedEvent] = {}
        reading = {"progress": progress, "stream": stream}
        async for batch in read_event_batches(settings.kafka, models, malformed=result.malformed, **reading):
            ideas = []
            for topic, envelope in batch:
                if topic == topics.people_erasures:
                    last = erasures.get(envelope.data.pseudonym)
                    if last is None or last.time <= envelope.time:
                        erasures[envelope.data.pseudonym] = envelope
                    result.erasures += 1
                    continue
                if topic == topics.challenges:
                    result.events[topic] += 1
                    if await store.record_challenge(challenge_record(envelope.model_dump(mode="json"))):
                        result.challenges += 1
                    continue
                result.events[topic] += 1
                touched.add(envelope.subject)
                ideas.append((envelope.subject, envelope.model_dump(mode="json")))
            live = await live_keys(keyring, (dumped for _, dumped in ideas))
            added = await store.add_entries((idea_id, timeline_entry(dumped, live)) for idea_id, dumped in ideas)
            result.duplicates += len(ideas) - added
        merged = []
        with tqdm(total=len(touched), desc="projecting ideas", unit="idea", file=stream, disable=not progress) as bar:
            for idea_id in sorted(touched):
                if (summary := await store.refresh(idea_id)) is not None:
                    result.ideas += 1
                    if summary.state == IdeaState.MERGED.value:
                        merged.append(idea_id)
                bar.update(1)
        for idea_id in merged:
            await carry_merged(store, idea_id)
            result.merges_carried += 1
        for event in erasures.values():
            await forget(store, keyring, event)
    finally:
        await keyring.close()
        await redis.aclose()
    result.seconds = time.monotonic() - started
    return result


def main(argv: list[str] | None = None) -> int:
    description = (
        "Restore the people's keys, wipe analytics' Redis keys and rebuild them from the beginning of every topic "
        "(the people's erasures included)."
    )
    return rebuild_command(
        argv, service="analytics", description=description, settings=AnalyticsSettings(), rebuild=rebuild
    )


if __name__ == "__main__":
    raise SystemExit(main())
