"""Analytics' figures as ideas grow: ``python -m bench.analytics_scale [--sizes 1000 20000] [--requests 50]``.

Writes idea summaries straight into a fresh Redis prefix through the projection store (pipelines, no events),
runs analytics' factory app in-process (its real routes, Redis, figures' cache and background tasks; Kafka is
pointed at nothing, since the figures come from Redis alone), and times ``GET /api/v1/stats/overview`` over ASGI:
the first request at each size on its own (a change of the projection empties the cache, so the first request
pays the full O(ideas) computation), then ``--requests`` more (median and 95th percentile). Prints one line per
size and, last::

    overview_ms_1000=<median> overview_ms_20000=<median> overview_p95_ms_1000=<n> ... overview_first_ms_20000=<n>

``--cache-s 0`` measures without the cache (every request computes). The prefix is deleted at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import secrets
import statistics
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from redis.asyncio import Redis  # noqa: E402

from services.analytics.app import create_app  # noqa: E402
from services.analytics.domain import IdeaSummary  # noqa: E402
from services.analytics.settings import AnalyticsSettings  # noqa: E402
from services.analytics.store import ProjectionStore  # noqa: E402
from shared.redis_keys import delete_matching  # noqa: E402
from shared.settings import KafkaSettings  # noqa: E402

PATH = ["submitted", "routed", "acknowledged", "in-assessment", "accepted", "in-pilot", "implemented", "spread"]
ORGANISATIONS = {
    "kiruna-kommun": ["samhallsbyggnad", "kultur-och-fritid"],
    "tekniska-verken": ["energi", "vatten-och-avlopp"],
    "kirunabostader": ["forvaltning", "uthyrning"],
}
AREAS = ["stadsomvandling", "klimat-och-energi", "digitalisering", "boende", "trafik-och-mobilitet"]


def summary(number: int, rnd: random.Random) -> IdeaSummary:
    """A plausible idea: submitted some time in 2025, routed to one or two organisations, somewhere along the
    lifecycle (some declined), a few supporters and comments."""
    created = datetime(2025, 1, 1, 8, tzinfo=UTC) + timedelta(minutes=rnd.randrange(365 * 24 * 60))
    organisations = sorted(rnd.sample(list(ORGANISATIONS), rnd.choice([1, 1, 1, 2])))
    units = sorted(f"{o}/{rnd.choice(ORGANISATIONS[o])}" for o in organisations)
    steps = PATH[: rnd.randint(1, len(PATH))]
    if len(steps) > 2 and rnd.random() < 0.2:
        steps[-1] = "declined"
    history, at = [], created
    for state in steps:
        history.append((state, at.isoformat()))
        at += timedelta(hours=rnd.randrange(1, 24 * 20))
    submitter = rnd.choice(list(ORGANISATIONS))
    return IdeaSummary(
        idea_id=str(uuid.UUID(int=rnd.getrandbits(128), version=4)),
        created_at=created.isoformat(),
        submitted=True,
        title=f"Idé nummer {number}",
        description="Fjärrvärmen och snöröjningen i stadsomvandlingen. " * 4,
        state=history[-1][0],
        state_since=history[-1][1],
        organisations=organisations,
        units=units,
        areas=sorted(rnd.sample(AREAS, rnd.choice([1, 1, 2]))),
        submitter_key=f"{rnd.randrange(5000):032x}",  # a pseudonym (HMAC-SHA256, 32 hex)
        submitter_organisation=submitter,
        submitter_unit=rnd.choice(ORGANISATIONS[submitter]),
        history=history,
        supporters=rnd.randrange(8),
        comments=rnd.randrange(4),
        followers=rnd.randrange(3),
        notifications={"delivered": rnd.randrange(1, 5)},
        spread_to=["kirunabostader"] if history[-1][0] == "spread" else [],
    )


@dataclass
class Timing:
    ideas: int
    first_ms: float
    median_ms: float
    p95_ms: float


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


async def time_overview(client: httpx.AsyncClient, ideas: int, requests: int) -> Timing:
    """The first request alone, then ``requests`` more."""
    times = []
    for _ in range(requests + 1):
        started = time.perf_counter()
        answer = await client.get("/api/v1/stats/overview")
        times.append((time.perf_counter() - started) * 1000)
        answer.raise_for_status()
        if answer.json()["ideas"] != ideas:
            raise AssertionError(f"overview counts {answer.json()['ideas']} ideas, {ideas} written")
    rest = times[1:]
    return Timing(ideas, times[0], statistics.median(rest), p95(rest))


async def measure(
    redis_url: str,
    prefix: str,
    *,
    sizes: tuple[int, ...] = (1000, 20000),
    requests: int = 50,
    cache_s: float | None = None,
    metrics_interval_s: float | None = None,
) -> list[Timing]:
    """Seed ``prefix`` up to each size in turn (adding ideas) and time the overview at each."""
    overrides: dict = {"kafka": KafkaSettings(bootstrap_servers="127.0.0.1:1"), "redis_url": redis_url}
    overrides |= {"redis_prefix": prefix, "group_id": f"{prefix}-analytics"}
    if cache_s is not None:
        overrides["figures_cache_s"] = cache_s
    if metrics_interval_s is not None:
        overrides["metrics_interval_s"] = metrics_interval_s
    app = create_app(AnalyticsSettings(**overrides))
    redis = Redis.from_url(redis_url, decode_responses=True)
    store = ProjectionStore(redis, prefix)
    rnd = random.Random(14)
    timings: list[Timing] = []
    written = 0
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://bench", timeout=120) as client:
                for size in sizes:
                    written += await store.write_summaries(summary(n, rnd) for n in range(written, size))
                    timings.append(await time_overview(client, size, requests))
    finally:
        await delete_matching(redis, f"{prefix}:*")
        await redis.aclose()
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 20000])
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--cache-s", type=float, default=None, help="ANALYTICS_FIGURES_CACHE_S (0: no cache)")
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    args = parser.parse_args()
    prefix = f"bench-analytics-{secrets.token_hex(4)}"
    timings = asyncio.run(
        measure(args.redis_url, prefix, sizes=tuple(args.sizes), requests=args.requests, cache_s=args.cache_s)
    )
    for t in timings:
        print(
            f"{t.ideas:>6} ideas: first request {t.first_ms:8.1f} ms, then median {t.median_ms:6.1f} ms, "
            f"p95 {t.p95_ms:6.1f} ms ({args.requests} requests)",
            file=sys.stderr,
        )
    line = [f"overview_ms_{t.ideas}={t.median_ms:.1f}" for t in timings]
    line += [f"overview_p95_ms_{t.ideas}={t.p95_ms:.1f}" for t in timings]
    line += [f"overview_first_ms_{t.ideas}={t.first_ms:.1f}" for t in timings]
    print(" ".join(line))


if __name__ == "__main__":
    main()
