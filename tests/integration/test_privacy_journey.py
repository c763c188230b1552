"""Issue 13 end to end, on the real Kafka, Redis and Keycloak with all four services: Anna, signed in, submits a
named idea, comments on, supports and follows Per's, and sets her preferences.

- every topic of the platform, read raw from the start by a plain consumer, holds neither her address nor her name
  (nor her comment's text) at any time;
- her export shows all of it;
- she asks to be forgotten: afterwards her export is empty, no key or value in Redis names her (a SCAN over every
  key and value of the test), the status page and the officers' inbox say "en tidigare medarbetare", her comment
  reads as removed, and the counts and overview figures are what they were;
- a full rebuild of every service keeps it so."""

from __future__ import annotations

import json

import pytest
from redis.asyncio import Redis

from services.analytics.app import create_app as analytics_app
from services.analytics.rebuild import rebuild as rebuild_analytics
from services.analytics.settings import AnalyticsSettings
from services.intake.app import create_app as intake_app
from services.intake.rebuild import rebuild as rebuild_intake
from services.intake.settings import IntakeSettings
from services.notifications.app import create_app as notifications_app
from services.notifications.rebuild import rebuild as rebuild_notifications
from services.notifications.settings import NotificationsSettings
from services.routing.app import create_app as routing_app
from services.routing.rebuild import rebuild as rebuild_routing
from services.routing.settings import RoutingSettings
from shared.replay import read_topics
from tests.conftest import REDIS_URL
from tests.support.apps import running
from tests.support.identity import ADMIN, ANNA, EMAIL, PER, bearer
from tests.support.kafka import eventually

pytestmark = pytest.mark.kafka

NAME = "Anna Svensson"
COMMENT = "Jag skottar gärna själv, ring mig på 070-4711"
CLUES = (EMAIL[ANNA].encode(), b"Svensson", b"svensson", COMMENT.encode(), b"070-4711")
HERS = {"title": "Laddplatser vid stadshuset", "description": "Fler laddplatser för elbilar vid nya stadshuset."}
PERS = {"title": "Snöröjning av gångbanor", "description": "Gångbanorna vid skolan plogas för sent på morgonen."}
PREFERENCES = {"channels": ["email", "in-app"], "frequency": "daily", "areas": ["boende"], "organisations": []}
FIGURES = ("ideas", "submitters", "anonymous_ideas", "engagement", "by_state", "by_organisation", "by_area")


async def all_topics_raw(kafka_settings) -> list:
    """Every record of every topic of this test (its prefix), from the start."""
    from aiokafka.admin import AIOKafkaAdminClient

    from shared.kafka import client_options

    admin = AIOKafkaAdminClient(**client_options(kafka_settings))
    await admin.start()
    try:
        names = sorted(t for t in await admin.list_topics() if t.startswith(kafka_settings.topic_prefix))
    finally:
        await admin.close()
    return [r async for r in read_topics(kafka_settings, names, progress=False)]


def clues_in_records(records) -> list[str]:
    found = []
    for record in records:
        blob = (record.key or b"") + b" " + (record.value or b"") + b" " + repr(record.headers).encode()
        found += [f"{record.topic}@{record.offset}: {c!r}" for c in CLUES if c in blob]
    return found


async def redis_naming_her(redis: Redis, prefix: str) -> list[str]:
    """Every key and value under the test's prefix that contains a clue (strings, hashes, sets, lists, zsets)."""
    found = []
    async for key in redis.scan_iter(match=f"{prefix}:*", count=1000):
        kind = await redis.type(key)
        if kind == "string":
            values = [await redis.get(key)]
        elif kind == "hash":
            values = [f"{k}={v}" for k, v in (await redis.hgetall(key)).items()]
        elif kind == "set":
            values = list(await redis.smembers(key))
        elif kind == "list":
            values = await redis.lrange(key, 0, -1)
        elif kind == "zset":
            values = [m for m, _ in await redis.zrange(key, 0, -1, withscores=True)]
        else:
            values = []
        text = " ".join([key, *map(str, values)]).encode()
        found += [f"{key}: {c!r}" for c in CLUES if c in text]
    return found


def figures(overview: dict) -> dict:
    return {name: overview[name] for name in FIGURES}


async def test_a_person_is_sealed_everywhere_exported_whole_and_erased_for_good(
    service_settings, topics, kafka_settings, redis_prefix
):
    settings = {
        "intake": service_settings(IntakeSettings, smtp_enabled=False),
        "routing": service_settings(RoutingSettings),
        "notifications": service_settings(NotificationsSettings),
        "analytics": service_settings(AnalyticsSettings),
    }
    anna, per, admin = bearer(ANNA), bearer(PER), bearer(ADMIN)
    redis = Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        async with (
            running(intake_app(settings["intake"])) as intake,
            running(routing_app(settings["routing"])),
            running(notifications_app(settings["notifications"])) as notifications,
            running(analytics_app(settings["analytics"])) as analytics,
        ):
            mine = (await intake.post("/api/v1/ideas", json=HERS, headers=anna)).json()["idea_id"]
            pers = (await intake.post("/api/v1/ideas", json=PERS, headers=per)).json()["idea_id"]

            async def routed(idea_id: str):
                """Routed and submitted, both projected: analytics reads ideas.routed and ideas.submitted with two
                consumers, and the routing may come first (its submitter then is not known yet)."""
                answer = await analytics.get(f"/api/v1/ideas/{idea_id}", headers=admin)
                if answer.status_code != 200:  # 404: not projected yet
                    return None
                idea = answer.json()
                submitter = idea["submitter"] or {}  # None until the submission is projected
                return idea if idea["state"] == "routed" and submitter.get("status") == "employee" else None

            organisation = (await eventually(lambda: routed(mine), timeout=60))["organisations"][0]["organisation"]
            await eventually(lambda: routed(pers), timeout=60)
            said = await intake.post(f"/api/v1/ideas/{pers}/comments", json={"text": COMMENT}, headers=anna)
            assert said.status_code == 202, said.text
            assert (await intake.post(f"/api/v1/ideas/{pers}/support", headers=anna)).status_code == 202
            assert (await intake.post(f"/api/v1/ideas/{pers}/follow", headers=anna)).status_code == 202
            put = await notifications.put("/api/v1/people/me/preferences", json=PREFERENCES, headers=anna)
            assert put.status_code == 200, put.text

            async def engaged():
                idea = await routed(pers)
                if idea is None:
                    return None
                counts = (idea.get("comments"), idea.get("supporters"), idea.get("followers"))
                return (
                    idea if json.dumps(idea, ensure_ascii=False).count(COMMENT) == 1 and counts == (1, 1, 1) else None
                )

            engaged_idea = await eventually(engaged, timeout=60)

            async def feed():
                items = (await notifications.get("/api/v1/people/me/feed", headers=anna)).json()["items"]
                return items or None

            await eventually(feed, timeout=60)

            async def export_whole():
                body = (await intake.get("/api/v1/people/me/export", headers=anna)).json()
                complete = (
                    body["ideas"]
                    and body["comments"]
                    and body["supports"]
                    and body["follows"]
                    and body["preferences"]
                    and body["notifications"]
                )
                return body if complete else None

            export = await eventually(export_whole, timeout=60)
            assert export["person"]["email"] == EMAIL[ANNA] and export["person"]["name"] == NAME
            assert [i["idea_id"] for i in export["ideas"]] == [mine]
            assert [c["text"] for c in export["comments"]] == [COMMENT]
            assert [s["idea_id"] for s in export["supports"]] == [pers]
            assert [f["idea_id"] for f in export["follows"]] == [pers]
            assert export["preferences"]["frequency"] == "daily"

            # Kafka, read raw from the start: nothing of her in the clear, on any topic (ours: the test's prefix)
            assert clues_in_records(await all_topics_raw(kafka_settings)) == []
            before = figures((await analytics.get("/api/v1/stats/overview")).json())
            counts_before = {k: v for k, v in engaged_idea.items() if k in ("comments", "supporters", "followers")}

            asked = await intake.post("/api/v1/people/me/erasure", headers=anna)
            assert asked.status_code == 202, asked.text

            async def export_empty():
                body = (await intake.get("/api/v1/people/me/export", headers=anna)).json()
                parts = ("ideas", "comments", "supports", "follows", "notifications")
                return body if body["person"] is None and all(body[p] == [] for p in parts) else None

            await eventually(export_empty, timeout=60)

            async def former_employee():
                officer_view = await analytics.get(f"/api/v1/ideas/{mine}", headers=admin)
                public_page = await analytics.get(f"/ideas/{mine}")
                inbox_page = await analytics.get(f"/inbox/{organisation}", headers=admin)
                done = (
                    officer_view.json()["submitter"]["status"] == "former-employee"
                    and "en tidigare medarbetare" in public_page.text
                    and NAME not in inbox_page.text
                    and "en tidigare medarbetare" in inbox_page.text
                )
                return officer_view.json() if done else None

            await eventually(former_employee, timeout=60)
            others = (await analytics.get(f"/api/v1/ideas/{pers}", headers=admin)).json()
            assert (
                COMMENT not in json.dumps(others, ensure_ascii=False)
                and "Kommentaren är borttagen" in (await analytics.get(f"/ideas/{pers}", headers=admin)).text
            )
            assert {k: v for k, v in others.items() if k in counts_before} == counts_before

            leftovers: list[str] = []

            async def redis_forgot():
                leftovers[:] = await redis_naming_her(redis, redis_prefix)
                return not leftovers

            try:
                await eventually(redis_forgot, timeout=60)
            except AssertionError:
                raise AssertionError(f"Redis still names her: {leftovers}") from None
            assert figures((await analytics.get("/api/v1/stats/overview")).json()) == before
            assert clues_in_records(await all_topics_raw(kafka_settings)) == []

        # every service rebuilt from the topics: still erased, the same figures
        for service, rebuild in (
            ("intake", rebuild_intake),
            ("routing", rebuild_routing),
            ("notifications", rebuild_notifications),
            ("analytics", rebuild_analytics),
        ):
            await rebuild(settings[service], progress=False)
        assert await redis_naming_her(redis, redis_prefix) == []
        async with (
            running(intake_app(settings["intake"])) as intake,
            running(analytics_app(settings["analytics"])) as analytics,
        ):
            assert (await analytics.get(f"/api/v1/ideas/{mine}", headers=admin)).json()["submitter"]["status"] == (
                "former-employee"
            )
            assert "en tidigare medarbetare" in (await analytics.get(f"/ideas/{mine}")).text
            assert figures((await analytics.get("/api/v1/stats/overview")).json()) == before
            assert await export_empty_now(intake, anna)
    finally:
        await redis.aclose()


async def export_empty_now(intake, anna) -> bool:
    body = (await intake.get("/api/v1/people/me/export", headers=anna)).json()
    return body["person"] is None and not any(body[p] for p in ("ideas", "comments", "supports", "follows"))
