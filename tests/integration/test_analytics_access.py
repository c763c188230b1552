"""Who may see what on analytics, with real tokens from the local Keycloak against the real Kafka and Redis: every
row of the access table both ways, in the JSON API and on the pages (services/analytics/access.py).

| what                                              | who                                                          |
| status page, dashboard, stats, an idea (public),  | anyone: no officer ids, the submitter as "en medarbetare" of |
| every idea's list                                 | their organisation; comments with their authors (issue 18)   |
| an idea with actors, assignees and the            | officers of an organisation it is routed to, the innovation  |
| submitter's name                                  | office, admins; others the public view (not 403)             |
| an organisation's inbox (API and page), with the  | its officers, the innovation office, admins (the API gives   |
| submitters' names, assignees, duplicates          | others the public list; assignment filters: 401/403)         |
| every organisation's inbox                        | the innovation office, admins                                |
| "my ideas" (API and page)                         | the signed-in person: their own named ideas                  |
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from services.analytics.app import create_app
from services.analytics.settings import AnalyticsSettings
from shared.events import (
    EngagementKind,
    Envelope,
    IdeaEngagement,
    IdeaRouted,
    IdeaState,
    IdeaStatusChanged,
    IdeaSubmitted,
    RoutingTarget,
)
from shared.keyring import Keyring
from shared.topics import Topics
from tests.integration.test_analytics_projections import people_keyring
from tests.support.apps import running
from tests.support.identity import ADMIN, ANNA, EMAIL, ERIK, INNOVATION_OFFICE, MARIA, PER, SARA, bearer
from tests.support.kafka import eventually, raw_producer

pytestmark = pytest.mark.kafka

T0 = datetime(2025, 5, 5, 8, 0, tzinfo=UTC)
TV = "a1a1a1a1-0000-4000-8000-000000000001"  # Anna's, routed to tekniska-verken, moved and re-routed by officers
KK = "a2a2a2a2-0000-4000-8000-000000000002"  # Per's, routed to kiruna-kommun
ANON = "a3a3a3a3-0000-4000-8000-000000000003"  # anonymous, routed to kirunabostader
KK2 = "a4a4a4a4-0000-4000-8000-000000000004"  # Anna's again (address in capitals), routed to kiruna-kommun
COMMENT = "Bra tanke, ring mig på 0980-123 45 / Kim"
EVENTS_PER_IDEA = {TV: 5, KK: 2, ANON: 2, KK2: 2}


def ev(payload, minutes: int, n: int) -> Envelope:
    idea = payload.idea_id
    return Envelope.wrap(
        payload,
        source="/tests/access",
        time=T0 + timedelta(minutes=minutes),
        event_id=f"{idea[:8]}-1111-4000-8000-{n:012d}",
    )


async def submitted(keyring: Keyring, idea: str, minutes: int, email: str | None, title: str) -> Envelope:
    person = (await keyring.person_ref(email, "Namn Efternamn", organisation="kiruna-kommun"))[0] if email else None
    payload = IdeaSubmitted(
        idea_id=idea, title=title, description=f"{title}.", submitter=person, anonymous=person is None
    )
    return ev(payload, minutes, 1)


def routed(idea: str, minutes: int, organisation: str, n: int = 2, rerouted_by: str | None = None) -> Envelope:
    payload = IdeaRouted(
        idea_id=idea,
        organisations=(RoutingTarget(organisation=organisation),),
        reason="'test' -> test",
        rerouted_by=rerouted_by,
    )
    return ev(payload, minutes, n)


async def history(topics: Topics, keyring: Keyring) -> list[tuple[str, Envelope]]:
    s, r, c, e = topics.submitted, topics.routed, topics.status_changed, topics.engagement
    commenter, key = await keyring.person_ref(EMAIL[PER], "Per Niemi", organisation="kirunabostader")
    comment = IdeaEngagement(idea_id=TV, kind=EngagementKind.COMMENT, person=commenter, text=key.seal(COMMENT))
    return [
        (s, await submitted(keyring, TV, 0, EMAIL[ANNA], "Värmepumpar i förskolorna")),
        (r, routed(TV, 1, "kiruna-kommun")),
        (r, routed(TV, 2, "tekniska-verken", n=3, rerouted_by=MARIA)),
        (c, ev(IdeaStatusChanged(idea_id=TV, to_state=IdeaState.ACKNOWLEDGED, changed_by=ERIK,
                                 organisation="tekniska-verken"), 3, 4)),
        (e, ev(comment, 4, 5)),
        (s, await submitted(keyring, KK, 10, EMAIL[PER], "Fler bänkar längs Malmvägen")),
        (r, routed(KK, 11, "kiruna-kommun")),
        (s, await submitted(keyring, ANON, 20, None, "Tystare tvättstugor")),
        (r, routed(ANON, 21, "kirunabostader")),
        (s, await submitted(keyring, KK2, 30, EMAIL[ANNA].upper(), "Lånecyklar vid stadshuset")),
        (r, routed(KK2, 31, "kiruna-kommun")),
    ]  # fmt: skip


@contextlib.asynccontextmanager
async def analytics(service_settings, topics, kafka_settings) -> AsyncIterator[httpx.AsyncClient]:
    """Analytics in-process with the history above projected."""
    settings = service_settings(AnalyticsSettings)
    async with running(create_app(settings)) as client, people_keyring(settings) as keyring:
        async with raw_producer(kafka_settings) as producer:
            for topic, envelope in await history(topics, keyring):
                await producer.send_and_wait(topic, envelope.to_bytes(), key=envelope.subject.encode())

        async def complete() -> bool:
            for idea, count in EVENTS_PER_IDEA.items():
                answer = await client.get(f"/api/v1/ideas/{idea}")
                if answer.status_code != 200 or len(answer.json()["timeline"]) != count:
                    return False
            return True

        await eventually(complete, timeout=45, interval=0.25)
        yield client


def ids(answer: httpx.Response) -> list[str]:
    return [item["idea_id"] for item in answer.json()["items"]]


def view(answer: httpx.Response) -> tuple[str, list[str]]:
    assert answer.status_code == 200, answer.text
    return answer.json()["view"], ids(answer)


async def test_every_idea_is_listed_for_anyone_and_an_organisations_inbox_for_its_officers(
    service_settings, topics, kafka_settings
):
    async with analytics(service_settings, topics, kafka_settings) as client:
        tv, kk = "/api/v1/ideas?organisation=tekniska-verken", "/api/v1/ideas?organisation=kiruna-kommun"

        # the organisation's own officer: its inbox; another organisation's ideas: the public list
        assert view(await client.get(tv, headers=bearer(ERIK))) == ("officer", [TV])
        assert view(await client.get(kk, headers=bearer(ERIK))) == ("public", [KK2, KK])
        assert view(await client.get(kk, headers=bearer(MARIA))) == ("officer", [KK2, KK])
        inbox = (await client.get(kk, headers=bearer(MARIA))).json()["items"][0]
        assert inbox["submitter"]["name"] == "Namn Efternamn" and "assignees" in inbox and "similar" in inbox
        # a unit names its organisation: the same rule
        assert view(await client.get("/api/v1/ideas?unit=energi", headers=bearer(MARIA))) == ("public", [])
        assert view(await client.get("/api/v1/ideas?unit=energi", headers=bearer(ERIK))) == ("officer", [])

        # anyone else: every idea, the public items (no one named, no officer's data)
        for headers in ({}, bearer(ANNA), bearer(PER), bearer(SARA)):
            answer = await client.get("/api/v1/ideas", headers=headers)
            assert view(answer) == ("public", [KK2, ANON, KK, TV])
            text = answer.text
            assert "Namn" not in text and "submitter" not in text and "overdue" not in text and "assignee" not in text

        # group-wide: every organisation's inbox, and all of them at once
        for person in (INNOVATION_OFFICE, ADMIN):
            assert view(await client.get(tv, headers=bearer(person))) == ("officer", [TV]), person
            assert view(await client.get("/api/v1/ideas", headers=bearer(person))) == (
                "officer", [KK2, ANON, KK, TV],
            ), person  # fmt: skip

        # the assignment filters are the inbox's: not signed in 401, others 403
        anonymous = await client.get(f"{tv}&assigned=me")
        assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"].startswith("Bearer")
        refused = await client.get(f"{kk}&assigned=none", headers=bearer(ERIK))
        assert refused.status_code == 403 and "kiruna-kommun" in refused.json()["detail"]
        assert set(refused.json()["required_roles"]) >= {"officer", "innovation-office", "admin"}
        everything = await client.get("/api/v1/ideas?assigned=none", headers=bearer(SARA))
        assert everything.status_code == 403 and "innovation office" in everything.json()["detail"]
        assert view(await client.get(f"{tv}&assigned=none", headers=bearer(ERIK))) == ("officer", [TV])
        assert view(await client.get(f"{tv}&assigned=me", headers=bearer(ERIK))) == ("officer", [])
        # a token that does not verify: 401, never the public list
        assert (await client.get(tv, headers={"Authorization": "Bearer not-a-token"})).status_code == 401


async def test_the_inbox_page_sends_strangers_to_sign_in_and_refuses_others_in_their_language(
    service_settings, topics, kafka_settings
):
    async with analytics(service_settings, topics, kafka_settings) as client:
        away = await client.get("/inbox/kiruna-kommun?state=routed")
        assert away.status_code == 303
        assert away.headers["location"] == "/auth/login?next=%2Finbox%2Fkiruna-kommun%3Fstate%3Drouted"

        refused = await client.get("/inbox/kiruna-kommun", headers=bearer(ERIK))
        assert refused.status_code == 403 and refused.headers["content-type"].startswith("text/html")
        assert '<html lang="sv">' in refused.text and "Ingen behörighet" in refused.text
        assert "Kiruna kommun" in refused.text and 'class="site-header"' in refused.text
        assert "Erik Lindberg" in refused.text  # the site header names who is signed in
        english = await client.get("/en/inbox/kiruna-kommun", headers=bearer(ANNA))
        assert english.status_code == 403 and '<html lang="en">' in english.text and "Not allowed" in english.text
        assert "site-header" in english.text

        own = await client.get("/inbox/tekniska-verken", headers=bearer(ERIK))
        assert own.status_code == 200 and f'id="idea-{TV}"' in own.text and 'class="site-header"' in own.text
        assert "Inskickad av" in own.text and "Namn Efternamn" in own.text  # those who act on it see who
        assert EMAIL[ANNA] not in own.text
        assert "token" not in own.text.lower() and "authorization" not in own.text.lower()  # the session acts
        for person in (INNOVATION_OFFICE, ADMIN):
            answer = await client.get("/en/inbox/kiruna-kommun", headers=bearer(person))
            assert answer.status_code == 200 and f'id="idea-{KK2}"' in answer.text, person
            assert "Submitted by" in answer.text and "Namn Efternamn" in answer.text, person
        anonymous = await client.get("/inbox/kirunabostader", headers=bearer(ADMIN))
        assert '<td class="submitter" data-status="anonymous">anonym</td>' in anonymous.text
        assert (await client.get("/inbox/no-such-organisation", headers=bearer(ERIK))).status_code == 404


async def test_an_idea_is_public_without_personal_data_and_its_officers_see_comments_and_actors(
    service_settings, topics, kafka_settings
):
    async with analytics(service_settings, topics, kafka_settings) as client:
        officer_ids = (ERIK, MARIA, "rerouted_by", "changed_by")

        # anyone, and those who do not act on the idea: the public view (comments with their authors: issue 18)
        for headers in ({}, bearer(ANNA), bearer(PER), bearer(SARA), bearer(MARIA)):
            answer = await client.get(f"/api/v1/ideas/{TV}", headers=headers)
            assert answer.status_code == 200
            public = answer.json()
            assert public["view"] == "public" and public["comments"] == 1 and public["state"] == "acknowledged"
            assert public["submitter"] == {"status": "employee", "organisation": "kiruna-kommun"}
            text = json.dumps(public)
            for secret in (*officer_ids, "Namn", "@"):
                assert secret not in text, secret
            assert [t["kind"] for t in public["timeline"]] == [
                "submitted", "routed", "routed", "status-changed", "engagement",
            ]  # fmt: skip
            assert public["timeline"][2]["rerouted"] is True
            assert (public["timeline"][4]["summary"], public["timeline"][4]["author"]) == (COMMENT, "Per Niemi")

        # those who act on it: actors and the submitter's name
        for person in (ERIK, INNOVATION_OFFICE, ADMIN):
            officer = (await client.get(f"/api/v1/ideas/{TV}", headers=bearer(person))).json()
            assert officer["view"] == "officer", person
            assert officer["timeline"][2]["rerouted_by"] == MARIA
            assert officer["timeline"][3]["changed_by"] == ERIK
            assert officer["timeline"][4]["summary"] == COMMENT
            assert EMAIL[PER] not in json.dumps(officer) and EMAIL[ANNA] not in json.dumps(officer)  # no addresses
            assert officer["submitter"]["name"] == "Namn Efternamn", person
        assert (await client.get(f"/api/v1/ideas/{KK}", headers=bearer(MARIA))).json()["view"] == "officer"
        assert (await client.get(f"/api/v1/ideas/{KK}", headers=bearer(ERIK))).json()["view"] == "public"

        # the status page: public, the same for everyone who does not act on the idea
        for url in (f"/ideas/{TV}", f"/en/ideas/{TV}"):
            page = await client.get(url)
            assert page.status_code == 200 and 'class="site-header"' in page.text
            for secret in (*officer_ids, "Namn", "@"):
                assert secret not in page.text, (url, secret)
            assert 'id="sign-in-to-engage"' in page.text and 'id="comment-form"' not in page.text
            assert ("Inskickad av en medarbetare (Kiruna kommun)" in page.text) != url.startswith("/en/"), url
            assert 'id="comments"' in page.text and "Per Niemi" in page.text and "ring mig på 0980" in page.text
        assert "Omdirigerad till" in (await client.get(f"/ideas/{TV}")).text
        assert "Logga in för att stödja, följa eller kommentera" in (await client.get(f"/ideas/{TV}")).text
        signed_in = (await client.get(f"/ideas/{TV}", headers=bearer(PER))).text
        assert f'action="/ideas/{TV}/support"' in signed_in and f'action="/ideas/{TV}/comments"' in signed_in
        assert f'action="/ideas/{TV}/follow"' in signed_in and 'name="anonymous"' in signed_in
        assert 'name="text"' in signed_in and "sign-in-to-engage" not in signed_in
        assert ERIK not in signed_in
        assert "Submitted by an employee (Municipality of Kiruna)" in (await client.get(f"/en/ideas/{TV}")).text
        assert f'action="/en/ideas/{TV}/follow"' in (await client.get(f"/en/ideas/{TV}", headers=bearer(PER))).text
        officer_page = (await client.get(f"/ideas/{TV}", headers=bearer(ERIK))).text
        assert 'id="idea-assignees"' in officer_page and "Bra tanke" in officer_page
        assert "Inskickad av Namn Efternamn" in officer_page

        # the dashboard and the figures: anyone, no personal data
        for url in ("/dashboard", "/en/dashboard", "/api/v1/stats/overview", "/api/v1/stats/participation"):
            answer = await client.get(url)
            assert answer.status_code == 200, url
            assert "@" not in answer.text and ERIK not in answer.text and MARIA not in answer.text, url
        assert 'class="site-header"' in (await client.get("/dashboard")).text
        assert "Anna Svensson" in (await client.get("/dashboard", headers=bearer(ANNA))).text  # who is signed in


async def test_my_ideas_are_the_signed_in_persons_own_named_ideas_newest_first(
    service_settings, topics, kafka_settings
):
    async with analytics(service_settings, topics, kafka_settings) as client:
        anna = await client.get("/api/v1/people/me/ideas", headers=bearer(ANNA))
        assert anna.status_code == 200
        assert ids(anna) == [KK2, TV]  # her address in any case; newest first; never Per's or the anonymous one
        first = anna.json()["items"][0]
        assert first["state"] == "routed" and first["status_url"] == f"/ideas/{KK2}"
        assert first["title"] == "Lånecyklar vid stadshuset"
        assert ids(await client.get("/api/v1/people/me/ideas", headers=bearer(PER))) == [KK]
        assert ids(await client.get("/api/v1/people/me/ideas", headers=bearer(ERIK))) == []
        assert (await client.get("/api/v1/people/me/ideas")).status_code == 401

        page = await client.get("/my/ideas", headers=bearer(ANNA))
        assert page.status_code == 200 and 'class="site-header"' in page.text
        rows = [line for line in page.text.splitlines() if 'data-idea-id="' in line]
        assert [KK2 in rows[0], TV in rows[1], len(rows)] == [True, True, 2]
        assert f'href="/ideas/{KK2}"' in page.text and KK not in page.text and ANON not in page.text
        english = await client.get("/en/my/ideas", headers=bearer(PER))
        assert english.status_code == 200 and "My ideas" in english.text and f'href="/en/ideas/{KK}"' in english.text
        away = await client.get("/en/my/ideas")
        assert away.status_code == 303 and away.headers["location"] == "/auth/login?next=%2Fen%2Fmy%2Fideas"
