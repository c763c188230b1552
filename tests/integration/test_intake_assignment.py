"""Assignment, officers' answers and merges at intake against the real Kafka, Redis and Keycloak (issue 18): the
JSON API and the inbox's form posts (assign, merge; 303 back to ``next``), comments shown as "anonym" or as the
organisation's answer, and a merge carrying the merged idea's supports over to its target."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import pytest

from services.intake.app import create_app as intake_app
from services.intake.settings import IntakeSettings
from shared.events import AssignedEvent, EngagementEvent, Envelope, IdeaRouted, RoutingTarget
from tests.support.apps import running
from tests.support.identity import ANNA, EMAIL, ERIK, INNOVATION_OFFICE, PER, SARA, bearer
from tests.support.kafka import eventually, probe, raw_producer

pytestmark = pytest.mark.kafka

IDEA = {"title": "Värmepumpar i Kirunabostäders hus", "description": "Byt oljepannorna.", "anonymous": True}
ORIGIN = {"Origin": "http://testserver"}


@pytest.fixture
def settings(service_settings):
    return service_settings(IntakeSettings, rate_limit_per_minute=1000)


async def routed_idea(intake, app, kafka_settings, topics, *organisations: str) -> str:
    """An idea, routed (as routing would) to ``organisations``, once intake knows where it went."""
    idea_id = (await intake.post("/api/v1/ideas", json=IDEA)).json()["idea_id"]
    event = Envelope.wrap(
        IdeaRouted(
            idea_id=idea_id, organisations=tuple(RoutingTarget(organisation=o) for o in organisations), reason="t"
        ),
        source="/tests",
    )
    async with raw_producer(kafka_settings) as producer:
        await producer.send_and_wait(topics.routed, event.to_bytes(), key=idea_id.encode())

    async def owned():
        record = await app.state.intake.store.idea(idea_id)
        return record is not None and record.organisations == set(organisations)

    await eventually(owned)
    return idea_id


def query(answer) -> dict[str, str]:
    assert answer.status_code == 303, answer.text
    parts = urlsplit(answer.headers["location"])
    return {"path": parts.path, **{k: v[0] for k, v in parse_qs(parts.query).items()}}


async def test_an_officer_assigns_their_organisations_idea_to_one_of_its_officers(settings, topics, kafka_settings):
    app = intake_app(settings)
    async with running(app) as intake, probe(kafka_settings, topics.assignments) as assignments:
        idea_id = await routed_idea(intake, app, kafka_settings, topics, "tekniska-verken", "kirunabostader")
        url = f"/api/v1/ideas/{idea_id}/assignment"
        first = await intake.post(url, json={"assignee": "karin.heikki"}, headers=bearer(ERIK))
        assert first.status_code == 202, first.text
        same = await intake.post(url, json={"assignee": "karin.heikki"}, headers=bearer(ERIK))
        assert same.status_code == 200 and same.json()["event_id"] is None
        not_theirs = await intake.post(url, json={"assignee": "sara.pekkari"}, headers=bearer(ERIK))
        assert not_theirs.status_code == 409
        assert "'sara.pekkari' is not an officer of tekniska-verken" in not_theirs.json()["detail"]
        elsewhere = await intake.post(
            url, json={"organisation": "kiruna-kommun", "assignee": "maria.nilsson"}, headers=bearer(INNOVATION_OFFICE)
        )
        assert elsewhere.status_code == 409 and "not routed to kiruna-kommun" in elsewhere.json()["detail"]
        other_org = await intake.post(
            url, json={"organisation": "tekniska-verken", "assignee": "karin.heikki"}, headers=bearer(SARA)
        )
        assert other_org.status_code == 403 and "may not assign" in other_org.json()["detail"]
        employee = await intake.post(url, json={"assignee": "karin.heikki"}, headers=bearer(ANNA))
        assert employee.status_code == 403 and "officer" in employee.json()["detail"]
        missing = await intake.post(url, json={"organisation": "tekniska-verken"}, headers=bearer(ERIK))
        assert missing.status_code == 422 and missing.json()["errors"][0]["field"] == "assignee"
        mine = await intake.post(url, json={"assignee": "me"}, headers=bearer(ERIK))
        sara = await intake.post(url, json={"assignee": "me"}, headers=bearer(SARA))
        assert (mine.status_code, sara.status_code) == (202, 202)
        records = await assignments.wait_count(3)
        events = [AssignedEvent.parse(r.value).data for r in records]
        assert sorted((e.organisation, e.assignee, e.previous, e.assigned_by) for e in events) == [
            ("kirunabostader", "sara.pekkari", None, "sara.pekkari"),
            ("tekniska-verken", "erik.lindberg", "karin.heikki", "erik.lindberg"),
            ("tekniska-verken", "karin.heikki", None, "erik.lindberg"),
        ]
        assert all(r.key.decode() == idea_id for r in records)


async def test_the_inbox_posts_assign_and_merge_and_comes_back_to_next(settings, topics, kafka_settings):
    app = intake_app(settings)
    async with (
        running(app) as intake,
        probe(kafka_settings, topics.assignments) as assignments,
        probe(kafka_settings, topics.status_changed) as changes,
    ):
        duplicate = await routed_idea(intake, app, kafka_settings, topics, "tekniska-verken")
        target = await routed_idea(intake, app, kafka_settings, topics, "tekniska-verken")
        erik = {**bearer(ERIK), **ORIGIN}
        inbox = "/inbox/tekniska-verken?assigned=none&page=2"
        assigned = await intake.post(
            f"/ideas/{duplicate}/assign",
            data={"organisation": "tekniska-verken", "assignee": "me", "next": inbox},
            headers=erik,
        )
        assert query(assigned) == {
            "path": "/inbox/tekniska-verken",
            "assigned": "none",
            "page": "2",
            "done": "assigned",
            "idea": duplicate,
        }
        refused = await intake.post(
            f"/ideas/{duplicate}/assign", data={"assignee": "sara.pekkari", "next": inbox}, headers=erik
        )
        assert query(refused)["error"] == "assignee-not-an-officer"
        away = await intake.post(
            f"/ideas/{duplicate}/assign", data={"assignee": "me", "next": "https://evil.example/x"}, headers=erik
        )
        assert query(away)["path"] == "/"  # only a path on this site
        no_reason = await intake.post(
            f"/ideas/{duplicate}/merge", data={"merged_into": target, "next": inbox}, headers=erik
        )
        assert query(no_reason)["error"] == "invalid-reason"
        merged = await intake.post(
            f"/ideas/{duplicate}/merge",
            data={"merged_into": target, "reason": "Samma idé", "next": inbox},
            headers=erik,
        )
        assert query(merged)["done"] == "merged"
        [assignment] = await assignments.wait_count(1)
        assert AssignedEvent.parse(assignment.value).data.assignee == "erik.lindberg"
        [change] = await changes.wait_count(1)
        assert json.loads(change.value)["data"]["merged_into"] == target


async def test_comments_are_anonym_or_the_organisations_answer_and_a_merge_carries_supports_over(
    settings, topics, kafka_settings
):
    app = intake_app(settings)
    async with running(app) as intake, probe(kafka_settings, topics.engagement) as engagement:
        duplicate = await routed_idea(intake, app, kafka_settings, topics, "tekniska-verken")
        target = await routed_idea(intake, app, kafka_settings, topics, "tekniska-verken")
        answer = await intake.post(
            f"/api/v1/ideas/{target}/comments", json={"text": "Vi utreder"}, headers=bearer(ERIK)
        )
        anonym = await intake.post(
            f"/api/v1/ideas/{target}/comments", json={"text": "Bra", "anonymous": True}, headers=bearer(SARA)
        )
        page = await intake.post(
            f"/en/ideas/{target}/comments", data={"text": "Ja!", "anonymous": "on"}, headers={**bearer(PER), **ORIGIN}
        )
        assert (answer.status_code, anonym.status_code) == (202, 202)
        assert page.status_code == 303 and page.headers["location"] == f"/en/ideas/{target}?done=comments#take-part"
        for idea_id in (duplicate, target):
            assert (await intake.post(f"/api/v1/ideas/{idea_id}/support", headers=bearer(PER))).status_code == 202
        assert (await intake.post(f"/api/v1/ideas/{duplicate}/support", headers=bearer(ANNA))).status_code == 202
        records = await engagement.wait_count(6)
        events = [EngagementEvent.parse(r.value).data for r in records]
        comments = [e for e in events if e.kind == "comment"]  # one idea's: in the order they were written
        assert [(c.official, c.anonymous) for c in comments] == [
            ("tekniska-verken", False),
            (None, True),  # Sara is an officer, but of another organisation
            (None, True),
        ]
        merged = await intake.post(
            f"/api/v1/ideas/{duplicate}/status",
            json={"to_state": "merged", "merged_into": target, "reason": "Samma idé"},
            headers=bearer(ERIK),
        )
        assert merged.status_code == 202

        store, keyring = app.state.intake.store, app.state.runtime.keyring
        anna = keyring.pseudonym(EMAIL[ANNA])
        await eventually(lambda: store.redis.sismember(f"{store.prefix}:supporters:{target}", anna))  # the follower
        again = await intake.post(f"/api/v1/ideas/{target}/support", headers=bearer(ANNA))
        assert again.status_code == 200 and "already" in again.json()["detail"]  # her support carried over
        per_again = await intake.post(f"/api/v1/ideas/{target}/support", headers=bearer(PER))
        assert per_again.status_code == 200  # Per supported both: still one
