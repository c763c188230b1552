"""Search and similar ideas at 20,000 ideas: summaries with varied Swedish text written straight into a fresh Redis
prefix (as bench/analytics_scale.py does), the service's own app over ASGI. Every replica loads every idea's text
into its in-memory indexes (services/analytics/mirror.py) at start; then a stemmed search of every idea
(``GET /api/v1/ideas?q=``) costs set operations on the words' postings and a suggestion
(``GET /api/v1/ideas/similar``) the engine's inverted index: neither reads every idea's text. The figures are
printed; only generous bounds are asserted, so that a busy machine cannot fail the test. Needs Redis (Kafka is
not used)."""

from __future__ import annotations

import random
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from services.analytics.app import create_app
from services.analytics.domain import IdeaSummary
from services.analytics.settings import AnalyticsSettings
from services.analytics.store import ProjectionStore
from shared.service import redis_client
from shared.settings import KafkaSettings
from tests.conftest import REDIS_URL
from tests.support.kafka import eventually

pytestmark = pytest.mark.kafka

WORDS = (
    "snöröjningen gångbanorna skolan fjärrvärmen badhuset laddstolpar hyresgästerna tvättstugan förskolan "
    "belysningen cykelvägarna busshållplatsen biblioteket solceller återvinningen parkeringen ventilationen "
    "kommunhuset gruvan stadsflytten lekplatsen matsalen hemtjänsten brandlarmet vattenledningen sopsorteringen "
    "fiberkabeln trapphuset balkongerna snöskotern isbanan skidspåret fritidsgården äldreboendet kontoret"
).split()
VERBS = "bättre fler tidigare billigare tystare varmare säkrare enklare snabbare".split()
IDEAS = 20_000


def summary(number: int, rnd: random.Random) -> IdeaSummary:
    created = datetime(2025, 1, 1, 8, tzinfo=UTC) + timedelta(minutes=number)
    words = rnd.sample(WORDS, 3)
    title = f"{rnd.choice(VERBS).capitalize()} {words[0]} vid {words[1]}"
    description = f"Idé {number}: {' '.join(rnd.sample(WORDS, 6))} och {words[2]} {rnd.choice(VERBS)}."
    return IdeaSummary(
        idea_id=str(uuid.UUID(int=rnd.getrandbits(128), version=4)),
        created_at=created.isoformat(),
        submitted=True,
        title=title,
        description=description,
        state="routed",
        state_since=created.isoformat(),
        organisations=["kiruna-kommun"],
        history=[("submitted", created.isoformat()), ("routed", created.isoformat())],
    )


async def timed(client: httpx.AsyncClient, url: str, params: dict, times: int = 30) -> tuple[float, float, dict]:
    spent = []
    for _ in range(times):
        started = time.perf_counter()
        answer = await client.get(url, params=params)
        spent.append((time.perf_counter() - started) * 1000)
        assert answer.status_code == 200, answer.text
    spent.sort()
    return statistics.median(spent), spent[int(0.95 * (len(spent) - 1))], answer.json()


async def test_search_and_similar_ideas_stay_fast_at_20000_ideas(redis_prefix):
    settings = AnalyticsSettings(
        kafka=KafkaSettings(bootstrap_servers="127.0.0.1:1"),
        redis_url=REDIS_URL,
        redis_prefix=redis_prefix,
        metrics_interval_s=3600,
    )
    redis = redis_client(settings)
    try:
        store = ProjectionStore(redis, redis_prefix)
        rnd = random.Random(18)
        await store.write_summaries(summary(n, rnd) for n in range(IDEAS))
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            mirror = app.state.mirror
            started = time.perf_counter()
            await eventually(lambda: len(mirror.known) == IDEAS, timeout=180, interval=0.2)
            loaded_s = time.perf_counter() - started
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://scale", timeout=60) as client:
                search = await timed(client, "/api/v1/ideas", {"q": "snöröjning skola", "page_size": 20})
                similar = await timed(
                    client,
                    "/api/v1/ideas/similar",
                    {"title": "Tidigare snöröjning vid skolan", "description": "Gångbanorna vid skolan plogas sent"},
                )
        print(
            f"\n{IDEAS} ideas: indexes loaded in {loaded_s:.1f} s; search median {search[0]:.1f} ms, p95 "
            f"{search[1]:.1f} ms ({search[2]['total']} matches); similar median {similar[0]:.1f} ms, p95 "
            f"{similar[1]:.1f} ms ({len(similar[2]['suggestions'])} suggestions)"
        )
        assert search[2]["total"] > 100 and len(search[2]["items"]) == 20
        assert similar[2]["suggestions"]
        assert search[1] < 1000 and similar[1] < 1000  # generous: the point is the printed figures
    finally:
        await redis.aclose()
