"""Rebuild routing's state in Redis from Kafka: ``python -m services.routing.rebuild``.

Routing keeps in Redis the text of each idea (to learn from a re-route), which ideas the innovation office
re-routed, and what the router learnt from those re-routes. This reads routing.commands.v1 (the latest re-route of
each idea counts), forgets those records, then reads ideas.submitted.v2 for the ideas' text and hints and
ideas.edited.v1 for the submitters' corrections, each from their
beginning up to the end offsets found at start, with a progress bar, and learns every re-route again. The records
of events already handled are left alone (a redelivered event still changes nothing).

Routing holds nothing about people: it reads an idea's title and text and never its submitter (sealed in the
event), so its rebuild needs no keys and has no erasure to apply again (its subscriber on people.erasures.v1 only
acknowledges each request).

Records that cannot be parsed were dead-lettered when they first arrived; the rebuild counts and skips them.
A running routing picks up what was learnt at its next refresh (``ROUTING_FEEDBACK_REFRESH_INTERVAL_S``).
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TextIO

from services.routing.handlers import feedback_entry
from services.routing.settings import RoutingSettings
from services.routing.store import RoutingStore
from shared.events import EditedEvent, RerouteCommand, SubmittedEvent
from shared.replay import read_event_batches, rebuild_command
from shared.service import redis_client
from shared.topics import Topics


@dataclass
class RebuildResult:
    relearnt: int = 0
    """Re-routes learnt again (those whose idea's text was found)."""
    reroutes: int = 0
    ideas: int = 0
    edits: int = 0
    malformed: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    def describe(self) -> str:
        return "\n".join(
            (
                f"routing rebuild: {self.relearnt} re-routes learnt again ({self.reroutes} re-routed ideas, "
                f"{self.ideas} ideas' text read, {self.edits} corrections); "
                f"{sum(self.malformed.values())} unparseable records skipped (they are in the .dlq topics)",
                f"took {self.seconds:.1f} s; restart routing (or wait for its next refresh) to use them",
            )
        )


async def rebuild(settings: RoutingSettings, *, progress: bool = True, stream: TextIO | None = None) -> RebuildResult:
    started = time.monotonic()
    result = RebuildResult()
    topics = Topics(settings.kafka.topic_prefix)
    redis = redis_client(settings)  # with the services' timeouts: a hung Redis stops the rebuild, never hangs it
    store = RoutingStore(redis, settings.redis_prefix, effect_ttl_s=settings.effect_key_ttl_s)
    reading = {"progress": progress, "stream": stream, "malformed": result.malformed}
    try:
        reroutes: dict[str, RerouteCommand] = {}
        commands = {topics.routing_commands: RerouteCommand}
        async for batch in read_event_batches(settings.kafka, commands, label="re-routes", **reading):
            for _, command in batch:
                reroutes[command.subject] = command  # the latest re-route of an idea is the one that counts
        await store.clear()
        texts: dict[str, tuple[str, str]] = {}
        submitted = {topics.submitted: SubmittedEvent}
        async for batch in read_event_batches(settings.kafka, submitted, label="ideas' text", **reading):
            for _, event in batch:
                idea = event.data
                hints = {"areas": list(idea.area_hints), "organisations": list(idea.organisation_hints)}
                await store.remember_text(idea.idea_id, idea.title, idea.description, hints)
                result.ideas += 1
                if idea.idea_id in reroutes:
                    texts[idea.idea_id] = (idea.title, idea.description)
        edits = {topics.edited: EditedEvent}  # the submitters' corrections: the text an idea has now
        async for batch in read_event_batches(settings.kafka, edits, label="corrections", **reading):
            for _, event in batch:
                await store.edit(event.data.idea_id, event.data.title, event.data.description)
                result.edits += 1
        for idea_id, command in reroutes.items():
            await store.mark_rerouted(idea_id)
            if idea_id in texts:
                await store.save_feedback(idea_id, feedback_entry(command, *texts[idea_id]))
            else:
                await store.hold_feedback(idea_id, feedback_entry(command, "", ""))
    finally:
        await redis.aclose()
    result.reroutes = len(reroutes)
    result.relearnt = sum(1 for idea_id in reroutes if idea_id in texts)
    result.seconds = time.monotonic() - started
    return result


def main(argv: list[str] | None = None) -> int:
    description = "Forget routing's records in Redis and learn every re-route again from the beginning of the topics."
    return rebuild_command(
        argv, service="routing", description=description, settings=RoutingSettings(), rebuild=rebuild
    )


if __name__ == "__main__":
    raise SystemExit(main())
