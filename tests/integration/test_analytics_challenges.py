"""Challenges on analytics against the real Kafka and Redis: ``ChallengeOpened`` events on ``challenges.v1`` and
ideas answering them (``IdeaSubmitted.challenge_id``) seen in ``GET /api/v1/challenges`` (open and closed, newest
first, filtered) and ``GET /api/v1/challenges/{id}`` (its ideas and figures), on the pages ``/challenges`` and
``/challenges/{id}`` in Swedish and English without JavaScript ("Svara på utmaningen" while open, "Stängd <date>"
once closed), on an idea's page and in the list of every idea; bad input 422 naming the field, unknown 404; the
rebuild restores them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from services.analytics.app import create_app
from services.analytics.rebuild import rebuild
from services.analytics.settings import AnalyticsSettings
from shared.events import ChallengeAudience, ChallengeOpened, Envelope, IdeaRouted, IdeaSubmitted, RoutingTarget
from tests.integration.test_analytics_projections import people_keyring
from tests.support.apps import running
from tests.support.identity import EMAIL, PER
from tests.support.kafka import eventually, raw_producer

pytestmark = pytest.mark.kafka

NOW = datetime.now(UTC)
OPEN = str(uuid.uuid4())  # tekniska-verken asks its staff; open for a month more
CLOSED = str(uuid.uuid4())  # the innovation office asked the group; closed yesterday
IDEAS = [str(uuid.uuid4()) for _ in range(4)]


def opened(challenge_id: str, question: str, organisation: str, audience, opens: datetime, closes: datetime):
    payload = ChallengeOpened(
        challenge_id=challenge_id,
        question=question,
        description="Beskriv gärna hur idén kan prövas.",
        organisation=organisation,
        audience=tuple(ChallengeAudience(organisation=o, unit=u) for o, u in audience),
        areas=("klimat-och-energi",),
        opens_at=opens,
        closes_at=closes,
        opened_by="erik.lindberg",
    )
    return Envelope.wrap(payload, source="/tests/challenges", time=opens)


async def test_challenges_their_ideas_and_figures_on_the_api_and_the_pages(service_settings, topics, kafka_settings):
    settings = service_settings(AnalyticsSettings)
    async with running(create_app(settings)) as client, people_keyring(settings) as keyring:
        anna, _ = await keyring.person_ref("anna.svensson@kiruna.se", "Anna Svensson", organisation="kiruna-kommun")
        per, _ = await keyring.person_ref(EMAIL[PER], "Per Niemi", organisation="kirunabostader")
        first = opened(
            OPEN, "Hur minskar vi energianvändningen i våra lokaler?", "tekniska-verken", [("tekniska-verken", None)],
            NOW - timedelta(days=3), NOW + timedelta(days=30),
        )  # fmt: skip
        second = opened(
            CLOSED, "Hur blir flytten av stadskärnan enklare?", "innovationsplattformen", [],
            NOW - timedelta(days=40), NOW - timedelta(days=1),
        )  # fmt: skip
        answers = [(IDEAS[0], OPEN, anna), (IDEAS[1], OPEN, anna), (IDEAS[2], OPEN, None), (IDEAS[3], CLOSED, per)]
        async with raw_producer(kafka_settings) as producer:
            for event in (first, second, first):  # the first one redelivered
                await producer.send_and_wait(topics.challenges, event.to_bytes(), key=event.subject.encode())
            for n, (idea, challenge, person) in enumerate(answers):
                submitted = IdeaSubmitted(
                    idea_id=idea, title=f"Svar {n}: släck lamporna i förråden", description="Rörelsevakter.",
                    submitter=person, anonymous=person is None, challenge_id=challenge,
                )  # fmt: skip
                routing = IdeaRouted(
                    idea_id=idea, organisations=(RoutingTarget(organisation="tekniska-verken"),), reason="energi"
                )
                for topic, payload, minutes in ((topics.submitted, submitted, n), (topics.routed, routing, n + 0.5)):
                    event = Envelope.wrap(payload, source="/tests", time=NOW - timedelta(days=2, minutes=-minutes))
                    await producer.send_and_wait(topic, event.to_bytes(), key=idea.encode())

        async def projected() -> bool:
            for challenge, count in ((OPEN, 3), (CLOSED, 1)):
                found = (await client.get(f"/api/v1/challenges/{challenge}")).json()
                if found.get("figures", {}).get("ideas") != count:
                    return False
                if any(i["state"] != "routed" for i in found["ideas"]):
                    return False
            return True

        await eventually(projected, timeout=60, interval=0.3)

        # --- the API --------------------------------------------------------------------------------------------
        listed = (await client.get("/api/v1/challenges")).json()
        assert [(c["challenge_id"], c["open"], c["ideas"]) for c in listed["items"]] == [
            (OPEN, True, 3),
            (CLOSED, False, 1),
        ]
        assert "opened_by" not in str(listed) and "erik.lindberg" not in str(listed)
        assert [c["challenge_id"] for c in (await client.get("/api/v1/challenges?open=false")).json()["items"]] == [
            CLOSED
        ]
        assert [c["challenge_id"] for c in (await client.get("/api/v1/challenges?open=true")).json()["items"]] == [OPEN]
        kk = (await client.get("/api/v1/challenges?organisation=kiruna-kommun")).json()["items"]
        assert [c["challenge_id"] for c in kk] == [CLOSED]  # the whole group was asked; tekniska-verken's own is not
        one = (await client.get(f"/api/v1/challenges/{OPEN}")).json()
        assert one["question"] == "Hur minskar vi energianvändningen i våra lokaler?" and one["open"] is True
        assert one["audience"] == [{"organisation": "tekniska-verken", "unit": None}]
        assert [i["idea_id"] for i in one["ideas"]] == [IDEAS[2], IDEAS[1], IDEAS[0]]
        figures = one["figures"]
        assert (figures["ideas"], figures["participants"], figures["anonymous_ideas"]) == (3, 1, 1)
        assert figures["organisations"] == {"tekniska-verken": 3} and figures["by_state"]["routed"] == 3
        assert "Anna" not in str(one)
        idea = (await client.get(f"/api/v1/ideas/{IDEAS[0]}")).json()
        assert idea["challenge_id"] == OPEN and idea["challenge"]["question"].startswith("Hur minskar")
        assert idea["challenge"]["open"] is True
        in_list = (await client.get(f"/api/v1/ideas?challenge={CLOSED}")).json()["items"]
        assert [i["idea_id"] for i in in_list] == [IDEAS[3]]

        # --- the pages ------------------------------------------------------------------------------------------
        page = await client.get("/challenges")
        assert page.status_code == 200 and "<script" not in page.text
        assert f'href="/?challenge={OPEN}"' in page.text and "Svara på utmaningen" in page.text
        closed_on = (NOW - timedelta(days=1)).astimezone(ZoneInfo("Europe/Stockholm")).strftime("%Y-%m-%d")
        assert f"Stängd {closed_on}" in page.text and f'href="/?challenge={CLOSED}"' not in page.text
        open_page = await client.get(f"/challenges/{OPEN}")
        assert open_page.status_code == 200 and 'id="answer-challenge"' in open_page.text
        assert 'id="cf-participants">1<' in open_page.text and f'id="idea-{IDEAS[0]}"' in open_page.text
        closed_page = await client.get(f"/challenges/{CLOSED}")
        assert f"Stängd {closed_on}" in closed_page.text and 'id="answer-challenge"' not in closed_page.text
        english = await client.get(f"/en/challenges/{OPEN}")
        assert english.status_code == 200 and f'href="/en?challenge={OPEN}"' in english.text
        assert "Answer the challenge" in english.text and '<html lang="en">' in english.text
        assert f"Closed {closed_on}" in (await client.get("/en/challenges?open=false")).text
        idea_page = await client.get(f"/ideas/{IDEAS[0]}")
        assert f'href="/challenges/{OPEN}"' in idea_page.text and "Svarar på utmaningen" in idea_page.text
        assert (await client.get("/ideas")).status_code == 200
        filtered = await client.get(f"/ideas?challenge={OPEN}")
        assert f'id="idea-{IDEAS[3]}"' not in filtered.text and f'id="idea-{IDEAS[0]}"' in filtered.text

        # --- unknown and bad ------------------------------------------------------------------------------------
        unknown = str(uuid.uuid4())
        missing = await client.get(f"/api/v1/challenges/{unknown}?lang=en")
        assert missing.status_code == 404 and "No challenge" in missing.json()["detail"]
        assert set(missing.json()["messages"]) == {"sv", "en"}
        assert (await client.get(f"/challenges/{unknown}")).status_code == 404
        assert "Det finns ingen utmaning" in (await client.get("/challenges/nope")).text
        for url, field in {
            "/api/v1/challenges/not-a-uuid": "challenge_id",
            "/api/v1/challenges?open=maybe": "open",
            "/api/v1/challenges?organisation=nowhere": "organisation",
            f"/api/v1/ideas?challenge={unknown}": "challenge",
        }.items():
            answer = await client.get(url)
            assert answer.status_code == 422, url
            assert field in [e["field"] for e in answer.json()["errors"]], (url, answer.json())

        # --- the rebuild restores them --------------------------------------------------------------------------
        asked = ["/api/v1/challenges", f"/api/v1/challenges/{OPEN}", f"/api/v1/challenges/{CLOSED}"]
        before = [(await client.get(url)).json() for url in asked]
        store = client._transport.app.state.read_model.store
        await store.wipe()
        assert (await client.get("/api/v1/challenges")).json()["items"] == []
        result = await rebuild(settings, progress=False)
        assert result.challenges == 2 and result.events[topics.challenges] == 3
        assert [(await client.get(url)).json() for url in asked] == before
