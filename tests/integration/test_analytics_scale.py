"""``GET /api/v1/stats/overview`` stays flat as ideas grow: 1,000 and then 20,000 idea summaries written straight
into a fresh Redis prefix (bench/analytics_scale.py, which also prints the figures), the service's own app over
ASGI. The first request after a change computes the figure (O(ideas): printed, not asserted); the requests
after it are served from the figures' cache (services/analytics/cache.py) and must not grow with the ideas.
Only a generous bound is asserted, so that a busy machine cannot fail it. Needs Redis (Kafka is not used)."""

from __future__ import annotations

import pytest

from bench.analytics_scale import measure
from tests.conftest import REDIS_URL

pytestmark = pytest.mark.kafka


async def test_the_overview_answers_as_fast_at_20000_ideas_as_at_1000(redis_prefix):
    # the business gauges' loop reads every idea too: kept out of this measurement (its own bound: metrics.py)
    small, large = await measure(REDIS_URL, redis_prefix, sizes=(1000, 20000), requests=50, metrics_interval_s=3600)
    for t in (small, large):
        print(
            f"overview at {t.ideas} ideas: first request {t.first_ms:.1f} ms (computed), "
            f"then median {t.median_ms:.1f} ms, p95 {t.p95_ms:.1f} ms (cached)"
        )
    assert large.p95_ms <= 3 * small.p95_ms + 50
