"""Challenges at intake against the real Kafka, Redis and Keycloak (issue 18): opening one through the API and the
officers' page, the refusals (403, 422 naming the field), answering one (its hints; 422 unknown, 409 closed
saying when) through the API and the form, and the form offering the challenges that ask the viewer."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from services.intake.app import create_app as intake_app
from services.intake.settings import IntakeSettings
from shared.events import ChallengeOpened, ChallengeOpenedEvent, Envelope, SubmittedEvent
from tests.support.apps import running
from tests.support.identity import ANNA, ERIK, INNOVATION_OFFICE, PER, bearer
from tests.support.kafka import eventually, probe, raw_producer

pytestmark = pytest.mark.kafka

QUESTION = "Hur minskar vi energianvändningen i våra lokaler?"
NEXT_MONTH = (datetime.now(UTC) + timedelta(days=30)).date().isoformat()


@pytest.fixture
def settings(service_settings):
    return service_settings(IntakeSettings, rate_limit_per_minute=1000)


def hidden(page: str, name: str) -> str:
    return re.search(rf'name="{name}" value="([^"]*)"', page).group(1)


async def published_challenge(kafka_settings, topics, **fields) -> ChallengeOpened:
    """A challenge as another replica of intake (or an earlier run) published it."""
    now = datetime.now(UTC)
    values = {
        "challenge_id": str(uuid.uuid4()),
        "question": QUESTION,
        "organisation": "innovationsplattformen",
        "opens_at": now - timedelta(days=10),
        "closes_at": now + timedelta(days=10),
        "opened_by": "innovation.office",
    }
    challenge = ChallengeOpened.model_validate({**values, **fields})
    event = Envelope.wrap(challenge, source="/tests")
    async with raw_producer(kafka_settings) as producer:
        await producer.send_and_wait(topics.challenges, event.to_bytes(), key=event.subject.encode())
    return challenge


async def test_an_officer_opens_a_challenge_for_their_organisation_and_it_is_published(
    settings, topics, kafka_settings
):
    async with running(intake_app(settings)) as intake, probe(kafka_settings, topics.challenges) as challenges:
        body = {"question": QUESTION, "areas": ["klimat-och-energi"], "closes_at": NEXT_MONTH, "language": "sv"}
        answer = await intake.post("/api/v1/challenges", json=body, headers={**bearer(ERIK), "X-Correlation-ID": "c-9"})
        assert answer.status_code == 202, answer.text
        accepted = answer.json()
        [record] = await challenges.wait_count(1)
        event = ChallengeOpenedEvent.parse(record.value)
        assert record.key.decode() == event.subject == accepted["challenge_id"] and event.id == accepted["event_id"]
        assert event.correlationid == "c-9" and event.type == "se.kiruna.innovation.challenge.opened.v1"
        assert (event.data.organisation, event.data.opened_by) == ("tekniska-verken", "erik.lindberg")
        assert [(a.organisation, a.unit) for a in event.data.audience] == [("tekniska-verken", None)]
        assert event.data.closes_at.isoformat() == accepted["closes_at"].replace("Z", "+00:00")
        assert accepted["url"].endswith(f"/challenges/{accepted['challenge_id']}")


async def test_a_challenge_outside_the_rules_is_refused_naming_the_field(settings, topics, kafka_settings):
    yesterday = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    good = {"question": QUESTION, "closes_at": NEXT_MONTH}
    async with running(intake_app(settings)) as intake, probe(kafka_settings, topics.challenges) as challenges:
        for body, field in (
            ({**good, "closes_at": yesterday}, "closes_at"),
            ({**good, "question": ""}, "question"),
            ({**good, "question": "Energi?"}, "question"),
            ({**good, "audience": [{"organisation": "kirunabostader"}]}, "audience.0.organisation"),
            ({**good, "audience": [{"organisation": "tekniska-verken", "unit": "uthyrning"}]}, "audience.0.unit"),
            ({**good, "areas": ["rymden"]}, "areas.0"),
            ({**good, "closes_at": "snart"}, "closes_at"),
        ):
            refused = await intake.post("/api/v1/challenges", json=body, headers=bearer(ERIK))
            assert refused.status_code == 422, (body, refused.text)
            assert refused.json()["errors"][0]["field"] == field, refused.json()
        employee = await intake.post("/api/v1/challenges", json=good, headers=bearer(ANNA))
        assert employee.status_code == 403 and "officer" in employee.json()["detail"]
        assert (await intake.post("/api/v1/challenges", json=good)).status_code == 401
        # the innovation office asks anyone; marks the end: nothing before it was published
        office = await intake.post(
            "/api/v1/challenges",
            json={**good, "audience": [{"organisation": "kirunabostader"}]},
            headers=bearer(INNOVATION_OFFICE),
        )
        assert office.status_code == 202
        [record] = await challenges.wait_count(1)
        assert json.loads(record.value)["data"]["organisation"] == "innovationsplattformen"


async def test_an_idea_answers_an_open_challenge_and_not_an_unknown_or_closed_one(settings, topics, kafka_settings):
    app = intake_app(settings)
    async with running(app) as intake, probe(kafka_settings, topics.submitted) as submitted:
        opened = await intake.post(
            "/api/v1/challenges",
            json={"question": QUESTION, "areas": ["klimat-och-energi"], "closes_at": NEXT_MONTH},
            headers=bearer(ERIK),
        )
        challenge_id = opened.json()["challenge_id"]
        idea = {"title": "Styr ventilationen efter närvaro", "anonymous": True, "challenge_id": challenge_id}
        answer = await intake.post("/api/v1/ideas", json=idea)
        assert answer.status_code == 202, answer.text
        [record] = await submitted.wait_count(1)
        event = SubmittedEvent.parse(record.value)
        assert event.data.challenge_id == challenge_id
        assert (event.data.area_hints, event.data.organisation_hints) == (("klimat-och-energi",), ("tekniska-verken",))

        unknown = await intake.post("/api/v1/ideas", json={**idea, "challenge_id": str(uuid.uuid4())})
        assert unknown.status_code == 422 and unknown.json()["errors"][0]["field"] == "challenge_id"
        closed = await published_challenge(
            kafka_settings, topics, closes_at=datetime(2025, 1, 31, 22, 59, 59, tzinfo=UTC)
        )
        store = app.state.intake.store
        await eventually(lambda: store.challenge(closed.challenge_id))  # intake follows challenges.v1
        late = await intake.post(
            "/api/v1/ideas", json={**idea, "challenge_id": closed.challenge_id}, headers={"Idempotency-Key": "k-late-1"}
        )
        assert late.status_code == 409, late.text
        assert late.json()["closed_at"] == "2025-01-31T22:59:59+00:00" and "closed" in late.json()["detail"]
        assert late.json()["errors"][0]["field"] == "challenge_id"
        other = await intake.post("/api/v1/ideas", json={**idea, "challenge_id": None})  # marks the end
        await submitted.wait_for(lambda rs: any(json.loads(r.value)["subject"] == other.json()["idea_id"] for r in rs))
        assert len(submitted.records) == 2


async def test_the_form_offers_the_challenges_that_ask_the_viewer_and_says_when_one_closed(
    settings, topics, kafka_settings
):
    app = intake_app(settings)
    async with running(app) as intake, probe(kafka_settings, topics.submitted) as submitted:
        group = await published_challenge(kafka_settings, topics)
        housing = await published_challenge(
            kafka_settings,
            topics,
            question="Hur sparar vi vatten i lägenheterna?",
            audience=({"organisation": "kirunabostader"},),
        )
        store = app.state.intake.store
        await eventually(lambda: store.challenge(housing.challenge_id))
        await eventually(lambda: store.challenge(group.challenge_id))
        anonymous = (await intake.get("/")).text
        assert "Svarar på utmaning" in anonymous and group.challenge_id in anonymous
        assert housing.challenge_id not in anonymous  # not asked
        per = (await intake.get(f"/en?challenge={housing.challenge_id}", headers=bearer(PER))).text
        assert "Answers a challenge" in per
        assert f'<option value="{housing.challenge_id}" selected>' in per and group.challenge_id in per

        form = {
            "title": "Snålspolande duschar i alla lägenheter",
            "lang": "sv",
            "challenge": housing.challenge_id,
            "csrf_token": hidden(per, "csrf_token"),
            "submission_id": hidden(per, "submission_id"),
            "confirmed": "1",
        }
        answer = await intake.post("/ideas", data=form, headers=bearer(PER))
        assert answer.status_code == 201, answer.text
        [record] = await submitted.wait_count(1)
        assert SubmittedEvent.parse(record.value).data.challenge_id == housing.challenge_id

        closed = await published_challenge(
            kafka_settings, topics, closes_at=datetime(2025, 1, 31, 22, 59, 59, tzinfo=UTC)
        )
        await eventually(lambda: store.challenge(closed.challenge_id))
        late = await intake.post(
            "/ideas", data={**form, "challenge": closed.challenge_id, "submission_id": "another-1"}, headers=bearer(PER)
        )
        assert late.status_code == 409
        assert '<p class="error" id="challenge-error">Utmaningen stängdes 2025-01-31 23:59' in late.text
        unknown = await intake.post(
            "/ideas", data={**form, "challenge": str(uuid.uuid4()), "submission_id": "another-2"}, headers=bearer(PER)
        )
        assert unknown.status_code == 422 and "Den utmaningen finns inte." in unknown.text


async def test_an_officer_opens_a_challenge_on_the_page_with_errors_next_to_the_fields(
    settings, topics, kafka_settings
):
    async with running(intake_app(settings)) as intake, probe(kafka_settings, topics.challenges) as challenges:
        employee = await intake.get("/challenges/new", headers=bearer(ANNA))
        assert (
            employee.status_code == 403
            and "Bara handläggare" in employee.text
            and "<form method" not in employee.text[employee.text.index("<main>") :]
        )
        signed_out = await intake.get("/challenges/new")
        assert signed_out.status_code in (302, 303, 307) and "/auth/login" in signed_out.headers["location"]
        page = (await intake.get("/en/challenges/new", headers=bearer(ERIK))).text
        assert "Open a challenge" in page and 'value="tekniska-verken/energi"' in page
        assert 'value="kirunabostader"' not in page  # an officer asks only their own organisation
        form = {
            "question": QUESTION,
            "description": "<b>lokalerna</b>",
            "audience": ["tekniska-verken/energi", "tekniska-verken/stadsnat"],
            "areas": ["klimat-och-energi"],
            "closes_at": "2020-01-01",
            "language": "sv",
            "csrf_token": hidden(page, "csrf_token"),
            "submission_id": hidden(page, "submission_id"),
        }
        past = await intake.post("/en/challenges/new", data=form, headers=bearer(ERIK))
        assert past.status_code == 422
        assert '<p class="error" id="closes_at-error">That date has passed.</p>' in past.text
        assert 'value="tekniska-verken/energi" checked' in past.text and "&lt;b&gt;lokalerna&lt;/b&gt;" in past.text
        forged = await intake.post("/en/challenges/new", data={**form, "csrf_token": "x"}, headers=bearer(ERIK))
        assert forged.status_code == 403
        done = await intake.post("/en/challenges/new", data={**form, "closes_at": NEXT_MONTH}, headers=bearer(ERIK))
        assert done.status_code == 201 and "The challenge is open" in done.text
        link = re.search(r'id="challenge-link" href="/en/challenges/([^"]+)"', done.text).group(1)
        again = await intake.post("/en/challenges/new", data={**form, "closes_at": NEXT_MONTH}, headers=bearer(ERIK))
        assert again.status_code == 201 and link in again.text  # the same form sent twice: one challenge
        [record] = await challenges.wait_count(1)
        event = ChallengeOpenedEvent.parse(record.value)
        assert event.subject == link and event.data.description == "<b>lokalerna</b>"
        assert [(a.organisation, a.unit) for a in event.data.audience] == [
            ("tekniska-verken", "energi"),
            ("tekniska-verken", "stadsnat"),
        ]
