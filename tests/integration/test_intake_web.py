"""The web form over HTTP (no browser): CSRF protection, errors next to fields, text never becomes markup."""

from __future__ import annotations

import json
import re

import pytest

from services.intake.app import create_app as intake_app
from services.intake.settings import IntakeSettings
from shared.events import SubmittedEvent
from tests.support.apps import running
from tests.support.identity import EMAIL, PER, bearer
from tests.support.kafka import probe

pytestmark = pytest.mark.kafka


def hidden(page: str, name: str) -> str:
    return re.search(rf'name="{name}" value="([^"]*)"', page).group(1)


async def test_the_form_refuses_a_post_without_its_csrf_token(service_settings, topics, kafka_settings):
    async with running(intake_app(service_settings(IntakeSettings))) as intake:
        page = (await intake.get("/")).text
        answer = await intake.post(
            "/ideas",
            data={
                "title": "Snöröjning",
                "anonymous": "on",
                "lang": "sv",
                "csrf_token": "forged",
                "submission_id": hidden(page, "submission_id"),
            },
        )
        assert answer.status_code == 403 and "Formuläret hade gått ut" in answer.text


async def test_errors_are_shown_next_to_their_fields_in_the_pages_language(service_settings, topics):
    async with running(intake_app(service_settings(IntakeSettings))) as intake:
        for path, expected in (("/", "Måste ha minst 3 tecken."), ("/en", "Must have at least 3 characters.")):
            page = (await intake.get(path)).text
            answer = await intake.post(
                "/ideas",
                data={
                    "title": "ab",
                    "anonymous": "on",
                    "lang": "sv" if path == "/" else "en",
                    "csrf_token": hidden(page, "csrf_token"),
                    "submission_id": hidden(page, "submission_id"),
                },
            )
            assert answer.status_code == 422
            assert f'<p class="error" id="title-error">{expected}</p>' in answer.text
            assert 'aria-invalid="true"' in answer.text
            assert 'value="ab"' in answer.text  # what the person typed is kept


async def test_markup_in_an_idea_is_stored_as_text_and_never_rendered(service_settings, topics, kafka_settings):
    async with (
        running(intake_app(service_settings(IntakeSettings))) as intake,
        probe(kafka_settings, topics.submitted) as submitted,
    ):
        page = (await intake.get("/")).text
        title = '<script>alert("x")</script> Snö ❄️'
        form = {
            "title": title,
            "description": "<b>fet</b>",
            "anonymous": "on",
            "lang": "sv",
            "csrf_token": hidden(page, "csrf_token"),
            "submission_id": hidden(page, "submission_id"),
        }
        answer = await intake.post("/ideas", data=form)
        assert answer.status_code == 201 and "Tack för din idé!" in answer.text
        event = json.loads((await submitted.wait_count(1))[0].value)["data"]
        assert event["title"] == title and event["description"] == "<b>fet</b>" and event["channel"] == "web"
        assert "submitter" not in event or event["submitter"] is None
        # the same submission sent twice (a reload) is the same idea
        again = await intake.post("/ideas", data=form)
        assert re.search(r'id="idea-id">([^<]+)<', again.text).group(1) == event["idea_id"]
        refused = await intake.post(
            "/ideas",
            data={
                "title": title,
                "lang": "sv",
                "csrf_token": hidden(page, "csrf_token"),
                "submission_id": "another",
            },
        )
        assert refused.status_code == 401 and "Logga in för att lämna en idé i ditt namn" in refused.text
        assert "&lt;script&gt;" in refused.text and "<script>" not in refused.text


async def test_the_form_submits_in_the_signed_in_persons_name(service_settings, topics, kafka_settings):
    app = intake_app(service_settings(IntakeSettings))
    async with running(app) as intake, probe(kafka_settings, topics.submitted) as submitted:
        keyring = app.state.runtime.keyring
        signed_out = (await intake.get("/")).text
        assert 'id="sign-in"' in signed_out and "submitter-name" not in signed_out
        page = (await intake.get("/", headers=bearer(PER))).text
        assert '<strong id="submitter-name">Per Niemi</strong>' in page and 'id="sign-out"' in page
        answer = await intake.post(
            "/ideas",
            headers=bearer(PER),
            data={
                "title": "Bättre belysning i trapphusen",
                "name": "Erik Lindberg",  # not a field of the form: the submitter is the signed-in person
                "lang": "sv",
                "csrf_token": hidden(page, "csrf_token"),
                "submission_id": hidden(page, "submission_id"),
            },
        )
        assert answer.status_code == 201
        [record] = await submitted.wait_count(1)
        submitter = SubmittedEvent.parse(record.value).data.submitter
        assert submitter.organisation == "kirunabostader" and submitter.pseudonym == keyring.pseudonym(EMAIL[PER])
        assert await keyring.open_json(submitter.sealed) == {"name": "Per Niemi", "email": EMAIL[PER]}
        assert "niemi" not in record.value.decode().lower()  # sealed: neither the name nor the address in the clear
