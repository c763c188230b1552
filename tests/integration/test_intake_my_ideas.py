"""The submitter's edits and withdrawals at intake against the real Kafka, Redis and Keycloak (issue 18): through
the JSON API (202, 403 with the reason, 409 naming the state) and the form posts of the "my ideas" page (303 back
with done=... or error=...)."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import pytest

from services.intake.app import create_app as intake_app
from services.intake.settings import IntakeSettings
from shared.events import EditedEvent, StatusChangedEvent
from tests.support.apps import running
from tests.support.identity import ANNA, EMAIL, INNOVATION_OFFICE, PER, bearer
from tests.support.kafka import probe

pytestmark = pytest.mark.kafka

IDEA = {"title": "Snöröjning av gångbanorna", "description": "Börja med gångbanorna vid skolorna."}
ORIGIN = {"Origin": "http://testserver"}  # a form post comes from the site's own pages


@pytest.fixture
def settings(service_settings):
    return service_settings(IntakeSettings, rate_limit_per_minute=1000)


def query(answer) -> dict[str, str]:
    assert answer.status_code == 303, answer.text
    parts = urlsplit(answer.headers["location"])
    return {"path": parts.path, **{k: v[0] for k, v in parse_qs(parts.query).items()}}


async def test_the_submitter_edits_until_an_officer_acknowledges_and_nobody_else_does(settings, topics, kafka_settings):
    app = intake_app(settings)
    async with running(app) as intake, probe(kafka_settings, topics.edited) as edited:
        keyring = app.state.runtime.keyring
        idea_id = (await intake.post("/api/v1/ideas", json=IDEA, headers=bearer(ANNA))).json()["idea_id"]
        anonymous = (await intake.post("/api/v1/ideas", json={**IDEA, "anonymous": True}, headers=bearer(ANNA))).json()
        url = f"/api/v1/ideas/{idea_id}"
        answer = await intake.patch(url, json={"title": "Snöröjning av gångbanorna vid skolorna"}, headers=bearer(ANNA))
        assert answer.status_code == 202, answer.text
        [record] = await edited.wait_count(1)
        event = EditedEvent.parse(record.value)
        assert event.id == answer.json()["event_id"] and record.key.decode() == idea_id
        assert (event.data.title, event.data.description) == (
            "Snöröjning av gångbanorna vid skolorna",
            IDEA["description"],
        )
        assert event.data.edited_by == keyring.pseudonym(EMAIL[ANNA]) and "anna" not in record.value.decode().lower()

        other = await intake.patch(url, json={"title": "Per tar över"}, headers=bearer(PER))
        assert other.status_code == 403 and "submitter" in other.json()["detail"]
        nobodys = await intake.patch(
            f"/api/v1/ideas/{anonymous['idea_id']}", json={"title": "Min"}, headers=bearer(ANNA)
        )
        assert nobodys.status_code == 403 and "anonymous" in nobodys.json()["detail"]
        assert (await intake.patch(url, json={"title": "ab"}, headers=bearer(ANNA))).json()["errors"][0][
            "field"
        ] == "title"
        assert (await intake.patch(url, json={"title": "Utan inloggning"})).status_code == 401

        acknowledged = await intake.post(
            f"{url}/status", json={"to_state": "acknowledged"}, headers=bearer(INNOVATION_OFFICE)
        )
        assert acknowledged.status_code == 202
        late = await intake.patch(url, json={"title": "För sent nu"}, headers=bearer(ANNA))
        assert late.status_code == 409 and late.json()["current_state"] == "acknowledged"
        assert "acknowledged" in late.json()["detail"]
        last = await intake.patch(  # marks the end: nothing refused was published
            f"/api/v1/ideas/{(await intake.post('/api/v1/ideas', json=IDEA, headers=bearer(ANNA))).json()['idea_id']}",
            json={"description": "Sista"},
            headers=bearer(ANNA),
        )
        assert last.status_code == 202
        await edited.wait_count(2)
        assert [json.loads(r.value)["id"] for r in edited.records] == [event.id, last.json()["event_id"]]


async def test_the_submitter_withdraws_an_open_idea_once_and_nobody_else_may(settings, topics, kafka_settings):
    app = intake_app(settings)
    async with running(app) as intake, probe(kafka_settings, topics.status_changed) as changes:
        keyring = app.state.runtime.keyring
        idea_id = (await intake.post("/api/v1/ideas", json=IDEA, headers=bearer(ANNA))).json()["idea_id"]
        url = f"/api/v1/ideas/{idea_id}/withdraw"
        assert (await intake.post(url, json={}, headers=bearer(PER))).status_code == 403
        too_long = await intake.post(url, json={"reason": "x" * 1001}, headers=bearer(ANNA))
        assert too_long.status_code == 422 and too_long.json()["errors"][0]["field"] == "reason"
        answer = await intake.post(url, json={"reason": "Löst på annat sätt"}, headers=bearer(ANNA))
        assert answer.status_code == 202, answer.text
        again = await intake.post(url, headers=bearer(ANNA))
        assert again.status_code == 409 and again.json()["current_state"] == "withdrawn"
        officer = await intake.post(
            f"/api/v1/ideas/{idea_id}/status", json={"to_state": "acknowledged"}, headers=bearer(INNOVATION_OFFICE)
        )
        assert officer.status_code == 409 and officer.json()["allowed_transitions"] == []  # withdrawn is final
        [record] = await changes.wait_count(1)
        event = StatusChangedEvent.parse(record.value)
        assert (event.data.from_state, event.data.to_state, event.data.reason) == (
            "submitted",
            "withdrawn",
            "Löst på annat sätt",
        )
        assert event.data.changed_by == keyring.pseudonym(EMAIL[ANNA]) and event.id == answer.json()["event_id"]


async def test_the_my_ideas_page_posts_edit_and_withdraw_and_comes_back_with_the_outcome(
    settings, topics, kafka_settings
):
    async with (
        running(intake_app(settings)) as intake,
        probe(kafka_settings, topics.edited) as edited,
        probe(kafka_settings, topics.status_changed) as changes,
    ):
        idea_id = (await intake.post("/api/v1/ideas", json=IDEA, headers=bearer(ANNA))).json()["idea_id"]
        anna = {**bearer(ANNA), **ORIGIN}
        done = await intake.post(
            f"/ideas/{idea_id}/edit", data={"title": "Snöröjning vid skolorna", "description": "Ny text"}, headers=anna
        )
        assert query(done) == {"path": "/my/ideas", "done": "edited", "idea": idea_id}
        short = await intake.post(f"/en/ideas/{idea_id}/edit", data={"title": "ab"}, headers=anna)
        assert query(short) == {"path": "/en/my/ideas", "error": "invalid-title", "idea": idea_id}
        someone_else = await intake.post(f"/ideas/{idea_id}/withdraw", data={}, headers={**bearer(PER), **ORIGIN})
        assert query(someone_else)["error"] == "not-yours"
        withdrawn = await intake.post(f"/ideas/{idea_id}/withdraw", data={"reason": "Dubblett"}, headers=anna)
        assert query(withdrawn) == {"path": "/my/ideas", "done": "withdrawn", "idea": idea_id}
        late = await intake.post(f"/ideas/{idea_id}/edit", data={"title": "För sent"}, headers=anna)
        assert query(late)["error"] == "not-editable"
        missing = await intake.post("/ideas/3f2b8c4e-0000-4000-8000-000000000000/withdraw", headers=anna)
        assert query(missing)["error"] == "not-found"
        [edit] = await edited.wait_count(1)
        assert EditedEvent.parse(edit.value).data.description == "Ny text"
        [change] = await changes.wait_count(1)
        assert StatusChangedEvent.parse(change.value).data.reason == "Dubblett"
        signed_out = await intake.post(f"/ideas/{idea_id}/withdraw", headers=ORIGIN)  # off to sign in, then the page
        assert signed_out.status_code == 303 and signed_out.headers["location"] == "/auth/login?next=%2Fmy%2Fideas"
