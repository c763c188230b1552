"""The in-memory fake of analytics' projection store (tests/fakes/analytics.py) answers as the Redis store does:
the same events through the same handlers, the same answers from both. Needs Redis."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from services.analytics.domain import submitter_key
from services.analytics.handlers import AnalyticsHandlers
from services.analytics.store import ProjectionStore
from shared.metrics import ServiceMetrics
from tests.conftest import REDIS_URL
from tests.fakes.analytics import FakeProjectionStore
from tests.unit.test_analytics_handlers import at, engage, new_id, routed, status, submitted

pytestmark = pytest.mark.kafka


async def answers(store) -> dict:
    """Run one story through the handlers into ``store`` and collect what the read side asks of it."""
    handlers = AnalyticsHandlers(store, ServiceMetrics.create("analytics"))
    a, b, c = ids = [new_id() for _ in range(3)]
    story = [
        submitted(a, at(0)),
        routed(a, at(0, 1), "innovationsplattformen"),
        submitted(b, at(1), email=None),
        routed(b, at(1, 1), "kirunabostader/forvaltning", areas=("boende",)),
        status(a, at(2), "acknowledged"),
        routed(a, at(3), "tekniska-verken/energi", "kirunabostader", by="sara"),
        engage(a, at(4), "support", "per@kiruna.se"),
        submitted(c, at(5)),
        status(b, at(6), "declined", reason="Nej"),
    ]
    for event in story:
        await handlers.record("ideas.v1", [event])
    await handlers.record("ideas.v1", story[:2])  # redelivered
    name = {idea: f"idea-{n}" for n, idea in enumerate(ids)}
    found = {
        "all": await store.idea_ids(),
        "tekniska-verken": await store.idea_ids(organisation="tekniska-verken"),
        "triage": await store.idea_ids(organisation="innovationsplattformen"),
        "unit": await store.idea_ids(unit="kirunabostader/forvaltning"),
        "boende+declined": await store.idea_ids(area="boende", state="declined"),
        "acknowledged": await store.idea_ids(state="acknowledged"),
        "anna": await store.submitted_by(submitter_key("anna.svensson@kiruna.se")),
    }
    result = {key: [name[i] for i in value] for key, value in found.items()}
    result["summaries"] = sorted(
        (name[s.idea_id], s.state, s.organisations, s.units, s.supporters) for s in await store.summaries()
    )
    result["entries"] = sorted(e["event_id"] for e in await store.entries(a)) == sorted(
        e.id for e in story if e.subject == a
    )
    result["counts"] = await store.counts()
    result["refresh unknown"] = await store.refresh(new_id())
    return result


async def test_the_fake_store_answers_as_the_redis_store(redis_prefix):
    redis = Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        real = await answers(ProjectionStore(redis, redis_prefix))
    finally:
        await redis.aclose()
    fake = await answers(FakeProjectionStore())
    assert fake == real
    assert real["all"] == ["idea-2", "idea-1", "idea-0"] and real["anna"] == ["idea-2", "idea-0"]
    assert real["triage"] == [] and real["boende+declined"] == ["idea-1"]
