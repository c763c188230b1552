"""An erasure on analytics, on the real Kafka and Redis with the real keyring and real tokens from the local
Keycloak: Anna submits a named idea and comments on, supports and follows another; she asks to be forgotten (her
key tombstoned and a PersonErasureRequested on people.erasures.v1, as intake does it). Then:

- the overview figures (every figure) are what they were before, and so are the per-idea counts;
- the inbox and the idea's status page say "en tidigare medarbetare" / "a former employee" where they named her,
  her comment "Kommentaren är borttagen", and her "my ideas" is empty;
- Redis (a SCAN over analytics' keys and values, and the keyring's) holds neither her address nor her name nor
  her comment's text, before or after, and no sealed value of hers after;
- a rebuild (``python -m services.analytics.rebuild``) keeps all of it so;
- when she comes back she gets a fresh key and starts from nothing, and a rebuild keeps that too."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from redis.asyncio import Redis

from services.analytics.app import create_app
from services.analytics.queries import FIGURES
from services.analytics.rebuild import rebuild
from services.analytics.settings import AnalyticsSettings
from shared.events import (
    EngagementKind,
    Envelope,
    IdeaEngagement,
    IdeaRouted,
    IdeaState,
    IdeaStatusChanged,
    IdeaSubmitted,
    PersonErasureRequested,
    RoutingTarget,
)
from shared.keyring import Keyring
from shared.topics import Topics
from tests.conftest import REDIS_URL
from tests.integration.test_analytics_projections import people_keyring
from tests.support.apps import running
from tests.support.identity import ANNA, EMAIL, ERIK, INNOVATION_OFFICE, PER, bearer
from tests.support.kafka import eventually, raw_producer

pytestmark = pytest.mark.kafka

T0 = datetime(2025, 9, 1, 7, 0, tzinfo=UTC)
MINE = "e1e1e1e1-0000-4000-8000-000000000001"  # Anna's, routed to tekniska-verken
OTHER = "e2e2e2e2-0000-4000-8000-000000000002"  # Per's: Anna comments, supports and follows it
ANON = "e3e3e3e3-0000-4000-8000-000000000003"  # anonymous
LATER = "e4e4e4e4-0000-4000-8000-000000000004"  # Anna's, after she came back
NAME = "Anna Svensson"
COMMENT = "Jag kan hjälpa till med laddboxarna, 4711"
SECRETS = (EMAIL[ANNA], NAME, "Svensson", COMMENT, "laddboxarna")
EVENTS = {MINE: 3, OTHER: 6, ANON: 2}  # timeline entries per idea once projected


def ev(payload, minutes: int, n: int) -> Envelope:
    return Envelope.wrap(
        payload,
        source="/tests/erasure",
        time=T0 + timedelta(minutes=minutes),
        event_id=f"{payload.idea_id[:8]}-2222-4000-8000-{n:012d}",
    )


def routed(idea: str, minutes: int) -> Envelope:
    return ev(
        IdeaRouted(idea_id=idea, organisations=(RoutingTarget(organisation="tekniska-verken"),), reason="test"),
        minutes,
        2,
    )


async def submitted(keyring: Keyring, idea: str, minutes: int, email: str | None, title: str) -> Envelope:
    person = None
    if email:
        name = NAME if email == EMAIL[ANNA] else "Per Niemi"
        person = (await keyring.person_ref(email, name, organisation="kiruna-kommun", unit="kultur-och-fritid"))[0]
    payload = IdeaSubmitted(idea_id=idea, title=title, description=f"{title}.", submitter=person, anonymous=not email)
    return ev(payload, minutes, 1)


async def engaged(keyring: Keyring, minutes: int, kind: str, email: str, n: int, text: str | None = None):
    person, key = await keyring.person_ref(email, NAME if email == EMAIL[ANNA] else "Per Niemi")
    sealed = key.seal(text) if text else None
    return ev(IdeaEngagement(idea_id=OTHER, kind=EngagementKind(kind), person=person, text=sealed), minutes, n)


async def history(topics: Topics, keyring: Keyring) -> list[tuple[str, Envelope]]:
    s, r, c, e = topics.submitted, topics.routed, topics.status_changed, topics.engagement
    acknowledged = IdeaStatusChanged(
        idea_id=MINE, to_state=IdeaState.ACKNOWLEDGED, changed_by=ERIK, organisation="tekniska-verken"
    )
    return [
        (s, await submitted(keyring, MINE, 0, EMAIL[ANNA], "Lånecyklar vid stadshuset")),
        (r, routed(MINE, 1)),
        (c, ev(acknowledged, 2, 3)),
        (s, await submitted(keyring, OTHER, 10, EMAIL[PER], "Laddstolpar vid hyreshusen")),
        (r, routed(OTHER, 11)),
        (e, await engaged(keyring, 12, "comment", EMAIL[ANNA], 3, COMMENT)),
        (e, await engaged(keyring, 13, "support", EMAIL[ANNA], 4)),
        (e, await engaged(keyring, 14, "follow", EMAIL[ANNA], 5)),
        (e, await engaged(keyring, 15, "support", EMAIL[PER], 6)),
        (s, await submitted(keyring, ANON, 20, None, "Tystare tvättstugor")),
        (r, routed(ANON, 21)),
    ]


async def publish(kafka_settings, script: list[tuple[str, Envelope]]) -> None:
    async with raw_producer(kafka_settings) as producer:
        for topic, envelope in script:
            await producer.send_and_wait(topic, envelope.to_bytes(), key=envelope.subject.encode())


async def redis_text(redis: Redis, prefix: str) -> str:
    """Every key and value of analytics (and of the people's keyring) under the prefix, as one text (SCAN)."""
    found: list[str] = []
    for pattern in (f"{prefix}:analytics:*", f"{prefix}:people:*"):
        async for key in redis.scan_iter(match=pattern, count=1000):
            kind = await redis.type(key)
            if kind == "string":
                value = await redis.get(key)
            elif kind == "hash":
                value = await redis.hgetall(key)
            elif kind == "set":
                value = await redis.smembers(key)
            elif kind == "zset":
                value = await redis.zrange(key, 0, -1, withscores=True)
            elif kind == "list":
                value = await redis.lrange(key, 0, -1)
            else:
                value = kind
            found.append(f"{key} {value}")
    return "\n".join(found)


async def names_no_one(redis: Redis, prefix: str) -> str:
    text = await redis_text(redis, prefix)
    assert text, "nothing scanned"
    for secret in SECRETS:
        assert secret.lower() not in text.lower(), secret
    return text


async def figures(client: httpx.AsyncClient) -> dict[str, str]:
    return {name: (await client.get(f"/api/v1/stats/{name}")).text for name in FIGURES}


async def counts(client: httpx.AsyncClient) -> list[tuple[int, int, int]]:
    ideas = [(await client.get(f"/api/v1/ideas/{idea}")).json() for idea in EVENTS]
    return [(idea["supporters"], idea["comments"], idea["followers"]) for idea in ideas]


async def mine(client: httpx.AsyncClient) -> list[str]:
    answer = await client.get("/api/v1/people/me/ideas", headers=bearer(ANNA))
    return [item["idea_id"] for item in answer.json()["items"]]


async def shows_her_as_a_former_employee(client: httpx.AsyncClient) -> None:
    office, erik = bearer(INNOVATION_OFFICE), bearer(ERIK)
    inbox = await client.get("/inbox/tekniska-verken", headers=erik)
    assert "en tidigare medarbetare" in inbox.text and NAME not in inbox.text
    assert "a former employee" in (await client.get("/en/inbox/tekniska-verken", headers=office)).text
    officer_page = (await client.get(f"/ideas/{MINE}", headers=erik)).text
    assert "Inskickad av en tidigare medarbetare" in officer_page and NAME not in officer_page
    assert "Inskickad av en tidigare medarbetare" in (await client.get(f"/ideas/{MINE}")).text  # public
    assert "Submitted by a former employee" in (await client.get(f"/en/ideas/{MINE}")).text
    assert (await client.get(f"/api/v1/ideas/{MINE}", headers=office)).json()["submitter"] == {
        "status": "former-employee"
    }
    other = (await client.get(f"/ideas/{OTHER}", headers=erik)).text
    assert "Kommentaren är borttagen" in other and COMMENT not in other
    assert "The comment was removed" in (await client.get(f"/en/ideas/{OTHER}", headers=erik)).text
    [comment] = [
        item
        for item in (await client.get(f"/api/v1/ideas/{OTHER}", headers=office)).json()["timeline"]
        if item.get("engagement") == "comment"
    ]
    assert comment["removed"] is True and comment["summary"] == ""
    anonymous = (await client.get(f"/api/v1/ideas/{ANON}", headers=office)).json()
    assert anonymous["submitter"] == {"status": "anonymous"}  # anonymous stays anonymous
    assert await mine(client) == []


async def test_an_erasure_leaves_the_figures_and_names_no_one_even_after_a_rebuild(
    service_settings, topics, kafka_settings
):
    settings = service_settings(AnalyticsSettings)
    prefix = settings.redis_prefix
    redis = Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        async with running(create_app(settings)) as client, people_keyring(settings) as keyring:
            await publish(kafka_settings, await history(topics, keyring))

            async def projected() -> bool:
                for idea, length in EVENTS.items():
                    answer = await client.get(f"/api/v1/ideas/{idea}")
                    if answer.status_code != 200 or len(answer.json()["timeline"]) != length:
                        return False
                return True

            await eventually(projected, timeout=45, interval=0.25)

            # before: she is named to those who act on her idea, "en medarbetare" to anyone else
            pseudonym = keyring.pseudonym(EMAIL[ANNA])
            inbox = await client.get("/inbox/tekniska-verken", headers=bearer(ERIK))
            assert NAME in inbox.text
            assert f"Inskickad av {NAME}" in (await client.get(f"/ideas/{MINE}", headers=bearer(ERIK))).text
            public = (await client.get(f"/ideas/{MINE}")).text
            assert "Inskickad av en medarbetare (Kiruna kommun)" in public and NAME not in public
            assert COMMENT in (await client.get(f"/ideas/{OTHER}", headers=bearer(ERIK))).text
            assert await mine(client) == [MINE]
            figures_before, counts_before = await figures(client), await counts(client)
            assert counts_before == [(0, 0, 0), (2, 1, 1), (0, 0, 0)]
            held = await names_no_one(redis, prefix)
            assert f"{pseudonym}." in held  # her sealed values (ciphertext), under her key

            # the erasure, as intake makes it: her key tombstoned, then the request on people.erasures.v1
            request = Envelope.wrap(PersonErasureRequested(pseudonym=pseudonym, requested_by="person"), source="/t")
            assert await keyring.erase(pseudonym)
            async with raw_producer(kafka_settings) as producer:
                await producer.send_and_wait(topics.people_erasures, request.to_bytes(), key=pseudonym.encode())

            async def forgotten() -> bool:
                person_set = await redis.exists(f"{prefix}:analytics:person:{pseudonym}:ideas")
                return not person_set and f"{pseudonym}." not in await redis_text(redis, prefix)

            await eventually(forgotten, timeout=30, interval=0.2)
            await shows_her_as_a_former_employee(client)
            assert await figures(client) == figures_before and await counts(client) == counts_before
            assert f"{pseudonym}." not in await names_no_one(redis, prefix)  # no sealed value of hers is kept

            # a rebuild keeps her erased, with the same figures
            result = await rebuild(settings, progress=False)
            assert result.erasures == 1 and result.ideas == 3 and result.keys_removed == 0
            await shows_her_as_a_former_employee(client)
            assert await figures(client) == figures_before and await counts(client) == counts_before
            assert f"{pseudonym}." not in await names_no_one(redis, prefix)

            # she comes back: a fresh key, and "my ideas" starts from nothing
            await publish(kafka_settings, [(topics.submitted, await submitted(keyring, LATER, 60, EMAIL[ANNA], "Ny"))])
            assert (await keyring.current(pseudonym)).created > request.time

            async def only_the_new_one() -> bool:
                return await mine(client) == [LATER]

            await eventually(only_the_new_one, timeout=30, interval=0.2)
            assert (await client.get(f"/api/v1/ideas/{MINE}")).json()["submitter"] == {"status": "former-employee"}
            result = await rebuild(settings, progress=False)  # the old erasure replayed: her new idea stays hers
            assert result.erasures == 1 and result.ideas == 4
            assert await mine(client) == [LATER]
            named = (await client.get(f"/api/v1/ideas/{LATER}", headers=bearer(INNOVATION_OFFICE))).json()["submitter"]
            assert named == {"status": "employee", "organisation": "kiruna-kommun", "name": NAME}
            assert "Inskickad av en tidigare medarbetare" in (await client.get(f"/ideas/{MINE}")).text
    finally:
        await redis.aclose()
