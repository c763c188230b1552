"""``python -m services.routing.rebuild``: rebuild routing's state in Redis (ideas' text, re-routes and what the
router learnt from them) from the topics routing.commands.v1 and ideas.submitted.v1, with a progress bar."""

from __future__ import annotations

import asyncio
import json

from redis.asyncio import Redis

from services.routing.handlers import feedback_entry
from services.routing.settings import RoutingSettings
from services.routing.store import RoutingStore
from shared.events import RerouteCommand
from shared.replay import read_topics
from shared.topics import Topics


async def rebuild(settings: RoutingSettings) -> int:
    """Returns how many re-routes were learnt again."""
    topics = Topics(settings.kafka.topic_prefix)
    redis = Redis.from_url(settings.redis_url, decode_responses=True)
    store = RoutingStore(redis, settings.redis_prefix)
    try:
        reroutes: dict[str, RerouteCommand] = {}
        async for record in read_topics(settings.kafka, [topics.routing_commands], label="re-routes"):
            try:
                command = RerouteCommand.parse(record.value)
            except ValueError:
                continue  # it went to the dead-letter topic when it was consumed
            reroutes[command.subject] = command  # the latest re-route of an idea is the one that counts
        await store.clear()
        texts: dict[str, tuple[str, str]] = {}
        async for record in read_topics(settings.kafka, [topics.submitted], label="ideas' text"):
            try:
                data = json.loads(record.value)["data"]
                idea_id, text = data["idea_id"], (data.get("title", ""), data.get("description", ""))
            except (ValueError, KeyError, TypeError):
                continue  # it went to the dead-letter topic when it was consumed
            await store.remember_text(idea_id, *text)
            if idea_id in reroutes:
                texts[idea_id] = text
        for idea_id, command in reroutes.items():
            await store.mark_rerouted(idea_id)
            if idea_id in texts:
                await store.save_feedback(idea_id, feedback_entry(command, *texts[idea_id]))
            else:
                await store.hold_feedback(idea_id, feedback_entry(command, "", ""))
        return sum(1 for idea_id in reroutes if idea_id in texts)
    finally:
        await redis.aclose()


def main() -> int:
    settings = RoutingSettings()
    learnt = asyncio.run(rebuild(settings))
    print(
        f"routing: {learnt} re-routes learnt again from {settings.kafka.bootstrap_servers}; restart routing "
        f"(or wait for its next refresh) to use them"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
