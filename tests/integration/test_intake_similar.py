"""Similar ideas on the web form without JavaScript, against the real Kafka and Redis (issue 18): the first submit
of an idea like an existing one brings the form back with the existing ones and "Skicka ändå", nothing stored;
the second submit stores it; the JSON API never holds an idea back; a withdrawn idea is not suggested; and the
script that suggests while writing is a static file (no inline script)."""

from __future__ import annotations

import json
import re

import pytest

from services.intake.app import create_app as intake_app
from services.intake.settings import IntakeSettings
from tests.support.apps import running
from tests.support.identity import ANNA, bearer
from tests.support.kafka import eventually, probe

pytestmark = pytest.mark.kafka

EXISTING = {
    "title": "Snöröjning av gångbanorna vid skolorna",
    "description": "Gångbanorna vid skolorna plogas för sent på morgonen, så barnen får gå i vägbanan.",
    "anonymous": True,
}
LIKE_IT = {
    "title": "Snöröjning av gångbanorna vid skolan",
    "description": "Gångbanorna vid skolan plogas för sent på morgonen så att barnen får gå i vägbanan.",
}
OTHER = {
    "title": "Fler laddplatser för elbilar vid stadshuset",
    "description": "Personalen vill ladda sina elbilar under arbetsdagen.",
}


@pytest.fixture
def settings(service_settings):
    return service_settings(IntakeSettings, rate_limit_per_minute=1000)


def hidden(page: str, name: str) -> str:
    return re.search(rf'name="{name}" value="([^"]*)"', page).group(1)


async def test_a_first_submit_like_an_existing_idea_shows_it_and_the_second_stores_the_idea(
    settings, topics, kafka_settings
):
    app = intake_app(settings)
    async with running(app) as intake, probe(kafka_settings, topics.submitted) as submitted:
        existing = (await intake.post("/api/v1/ideas", json=EXISTING)).json()["idea_id"]
        api = await intake.post("/api/v1/ideas", json={**LIKE_IT, "anonymous": True})  # the API never holds back
        assert api.status_code == 202
        await submitted.wait_count(2)
        page = (await intake.get("/", headers=bearer(ANNA))).text
        form = {
            **LIKE_IT,
            "lang": "sv",
            "csrf_token": hidden(page, "csrf_token"),
            "submission_id": hidden(page, "submission_id"),
        }
        first = await intake.post("/ideas", data=form, headers=bearer(ANNA))
        assert first.status_code == 200, first.text
        assert "Det finns liknande idéer" in first.text
        assert f'<a href="/ideas/{existing}">{EXISTING["title"]}</a>' in first.text
        assert re.search(r"Likhet \d+ %", first.text) and "Gemensamma ord:" in first.text
        assert (
            '<input type="hidden" name="confirmed" value="1">' in first.text and ">Skicka ändå</button>" in first.text
        )
        assert f'value="{LIKE_IT["title"]}"' in first.text  # what the person wrote is kept
        assert hidden(first.text, "submission_id") == form["submission_id"]

        second = await intake.post("/ideas", data={**form, "confirmed": "1"}, headers=bearer(ANNA))
        assert second.status_code == 201 and "Tack för din idé!" in second.text
        stored = re.search(r'id="idea-id">([^<]+)<', second.text).group(1)
        reload = await intake.post("/ideas", data=form, headers=bearer(ANNA))  # the first post sent again
        assert reload.status_code == 201 and re.search(r'id="idea-id">([^<]+)<', reload.text).group(1) == stored

        other = await intake.post(
            "/ideas", data={**form, **OTHER, "submission_id": "other-submission"}, headers=bearer(ANNA)
        )
        assert other.status_code == 201  # nothing like it: stored at the first submit
        records = await submitted.wait_count(4)
        titles = [json.loads(r.value)["data"]["title"] for r in records]
        assert sorted(titles) == sorted([EXISTING["title"], LIKE_IT["title"], LIKE_IT["title"], OTHER["title"]])


async def test_a_withdrawn_idea_is_no_longer_suggested(settings, topics, kafka_settings):
    app = intake_app(settings)
    async with running(app) as intake:
        mine = await intake.post("/api/v1/ideas", json={**EXISTING, "anonymous": False}, headers=bearer(ANNA))
        idea_id = mine.json()["idea_id"]
        similar = app.state.similar
        assert [s.idea_id for s in await similar.suggest(LIKE_IT["title"], LIKE_IT["description"])] == [idea_id]
        withdrawn = await intake.post(f"/api/v1/ideas/{idea_id}/withdraw", headers=bearer(ANNA))
        assert withdrawn.status_code == 202
        assert await similar.suggest(LIKE_IT["title"], LIKE_IT["description"]) == []
        await eventually(lambda: idea_id not in similar.index)


async def test_the_form_loads_its_suggesting_script_as_a_static_file(settings, topics):
    async with running(intake_app(settings)) as intake:
        page = await intake.get("/en")
        assert '<script src="/static/intake/similar.js" defer></script>' in page.text
        assert not re.search(r"<script(?![^>]*\bsrc=)", page.text)  # no inline script anywhere
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert 'id="similar-live" class="similar" aria-live="polite"' in page.text
        script = await intake.get("/static/intake/similar.js")
        assert script.status_code == 200 and "javascript" in script.headers["content-type"]
        assert "/api/v1/ideas/similar?" in script.text and "innerHTML" not in script.text
