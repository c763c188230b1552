""" "Mina uppgifter" (services/intake/my_data.py) over ASGI, on the real Kafka, Redis and Keycloak, with a browser's
session signed in on Keycloak's login form: the page tells in Swedish (English on /en) what the platform keeps, the
download is the API's export as a file, and the erasure needs its confirmation box, then publishes the person's
PersonErasureRequested as the API does. Not signed in: off to sign in; Kafka away: a 503 page with Retry-After."""

from __future__ import annotations

import json
import re
import uuid

import pytest

from services.intake.app import create_app as intake_app
from services.intake.settings import IntakeSettings
from shared.events import ErasureRequestedEvent, PersonErasureRequested, event_type
from tests.fakes.common import FakePublisher
from tests.support.apps import running
from tests.support.identity import EMAIL, ORIGIN, PER, bearer, signed_in
from tests.support.kafka import probe

pytestmark = pytest.mark.kafka

FROM_THE_PAGE = {"Origin": ORIGIN}
INLINE = re.compile(r"<style|\sstyle\s*=|<script|\son[a-z]+\s*=", re.I)  # what the pages' policy would block
CONFIRM_MISSING = (
    "Kryssa i rutan ”Jag förstår att det inte går att ångra och vill att mina uppgifter raderas” för att radera dig."
)


@pytest.fixture
def settings(service_settings):
    return service_settings(IntakeSettings, rate_limit_per_minute=1000, smtp_enabled=False)


def token_of(page: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]*)"', page)[1]


async def test_not_signed_in_is_sent_to_sign_in_and_back_to_the_page(settings, topics):
    async with running(intake_app(settings)) as intake:
        for path, back in (
            ("/my/data", "%2Fmy%2Fdata"),
            ("/en/my/data", "%2Fen%2Fmy%2Fdata"),
            ("/my/data/export", "%2Fmy%2Fdata%2Fexport"),
        ):
            answer = await intake.get(path)
            assert answer.status_code == 303 and answer.headers["location"] == f"/auth/login?next={back}", path
        posted = await intake.post("/my/data/erasure", data={"confirm": "yes"})
        assert posted.status_code == 303 and posted.headers["location"] == "/auth/login?next=%2Fmy%2Fdata"


async def test_the_page_tells_what_is_kept_in_swedish_and_in_english(settings, topics):
    app = intake_app(settings)
    async with running(app), signed_in(app, PER, next="/my/data") as browser:
        page = await browser.get("/my/data")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert page.headers["content-security-policy"].startswith("default-src 'self'; script-src 'self'")
        assert page.headers["x-frame-options"] == "DENY" and page.headers["cache-control"] == "no-store"
        body = page.text
        assert '<html lang="sv">' in body and "<h1>Mina uppgifter</h1>" in body
        assert body.index('class="site-header"') < body.index("<main>")  # the site's header first
        assert 'id="signed-in-name">Per Niemi<' in body
        assert '<a href="/my/data">Mina uppgifter</a>' in body  # the header's link among the person's own
        for kept in ("Idéer du har lämnat", "kommentarer", "stöttat", "följer", "inställningar för aviseringar"):
            assert kept in body, kept
        assert "Vilka aviseringar vi har skickat till dig" in body
        assert "Ditt namn, din e-postadress och texten i dina kommentarer sparas krypterade" in body
        assert '<a class="button" id="download" href="/my/data/export">Ladda ner mina uppgifter (JSON)</a>' in body
        assert '<h2 id="erase-title">Radera mig</h2>' in body
        for means in ("”en tidigare medarbetare”", "Kommentaren är borttagen", "Antalet stöd", "ditt flöde"):
            assert means in body, means
        assert 'type="checkbox" id="confirm" name="confirm" value="yes" required' in body
        assert 'action="/my/data/erasure"' in body and 'href="/en/my/data"' in body
        assert not INLINE.search(body), INLINE.search(body)
        assert 'href="/static/intake/form.css"' in body
        assert "Mina uppgifter" in (await browser.get("/static/intake/form.css")).text  # its styles are there

        english = (await browser.get("/en/my/data")).text
        assert '<html lang="en">' in english and "<h1>My data</h1>" in english
        assert '<a href="/en/my/data">My data</a>' in english
        assert "Your name, your e-mail address and the text of your comments are stored encrypted" in english
        assert "Download my data (JSON)" in english and 'href="/en/my/data/export"' in english
        assert "“a former employee” (“en tidigare medarbetare”)" in english
        assert 'action="/en/my/data/erasure"' in english and not INLINE.search(english)


async def test_the_download_is_the_export_of_the_api_as_a_file(settings, topics):
    app = intake_app(settings)
    async with running(app) as intake, signed_in(app, PER, next="/my/data") as browser:
        per = bearer(PER)
        idea = {"title": "Cykelställ under tak vid Folkets hus", "description": "Cyklarna snöar igen varje natt."}
        answer = await intake.post("/api/v1/ideas", json=idea, headers={**per, "Idempotency-Key": str(uuid.uuid4())})
        assert answer.status_code == 202
        idea_id = answer.json()["idea_id"]
        comment = await intake.post(f"/api/v1/ideas/{idea_id}/comments", json={"text": "Gärna med lås!"}, headers=per)
        assert comment.status_code == 202

        from_the_api = (await intake.get("/api/v1/people/me/export", headers=per)).json()
        for path, filename in (("/my/data/export", "mina-uppgifter.json"), ("/en/my/data/export", "my-data.json")):
            download = await browser.get(path)
            assert download.status_code == 200, download.text
            assert download.headers["content-disposition"] == f'attachment; filename="{filename}"'
            assert download.headers["content-type"] == "application/json"
            assert download.headers["cache-control"] == "no-store"
            document = download.json()
            assert {k: v for k, v in document.items() if k != "exported_at"} == {
                k: v for k, v in from_the_api.items() if k != "exported_at"
            }
            assert (document["person"]["email"], document["person"]["name"]) == (EMAIL[PER], "Per Niemi")
            assert [(i["idea_id"], i["title"]) for i in document["ideas"]] == [(idea_id, idea["title"])]
            assert [c["text"] for c in document["comments"]] == ["Gärna med lås!"]


async def test_erasure_needs_its_confirmation_then_is_requested_as_the_api_does(settings, topics, kafka_settings):
    app = intake_app(settings)
    async with (
        running(app) as intake,
        signed_in(app, PER, next="/my/data") as browser,
        probe(kafka_settings, topics.people_erasures) as erasures,
    ):
        keyring = app.state.runtime.keyring
        page = (await browser.get("/my/data")).text

        refused = await browser.post("/my/data/erasure", data={"csrf_token": token_of(page)}, headers=FROM_THE_PAGE)
        assert refused.status_code == 422 and refused.headers["content-type"].startswith("text/html")
        assert f'<p class="error" id="confirm-error">{CONFIRM_MISSING} Ingenting har raderats.</p>' in refused.text
        assert 'aria-invalid="true" aria-describedby="confirm-error"' in refused.text
        assert '<li><a href="#confirm">' in refused.text  # the error summary leads to the box
        english = await browser.post(
            "/en/my/data/erasure", data={"csrf_token": token_of(page), "confirm": ""}, headers=FROM_THE_PAGE
        )
        assert english.status_code == 422 and "Tick the box “I understand that this cannot be undone" in english.text

        forged = await browser.post(
            "/my/data/erasure", data={"csrf_token": "forged", "confirm": "yes"}, headers=FROM_THE_PAGE
        )
        assert forged.status_code == 403 and "Formuläret hade gått ut. Ingenting har raderats." in forged.text
        elsewhere = await browser.post(
            "/my/data/erasure",
            data={"csrf_token": token_of(page), "confirm": "yes"},
            headers={"Origin": "http://evil.example"},
        )
        assert elsewhere.status_code == 403  # a session's post from another site's page (shared/identity.py)

        done = await browser.post(
            "/my/data/erasure", data={"csrf_token": token_of(page), "confirm": "yes"}, headers=FROM_THE_PAGE
        )
        assert done.status_code == 202, done.text
        assert '<h1 tabindex="-1">Din begäran är mottagen</h1>' in done.text
        assert "Din begäran är mottagen och sparad." in done.text
        assert done.headers["content-security-policy"].startswith("default-src 'self'")
        event_id = re.search(r'id="erasure-id">([^<]+)<', done.text)[1]

        [record] = await erasures.wait_count(1)
        erasure = ErasureRequestedEvent.parse(record.value)
        assert erasure.id == event_id and erasure.type == event_type(PersonErasureRequested)
        assert erasure.data.pseudonym == keyring.pseudonym(EMAIL[PER]) == record.key.decode()
        assert (erasure.data.requested_by, erasure.data.admin) == ("person", None)
        assert EMAIL[PER].encode() not in record.value and b"Niemi" not in record.value
        # the refusals published nothing: the one request is the last
        assert [json.loads(r.value)["id"] for r in erasures.records] == [event_id]
        # the API's own answer to the same person is the same use case (a repeat changes nothing)
        assert (await intake.post("/api/v1/people/me/erasure", headers=bearer(PER))).status_code == 202


async def test_kafka_away_is_a_503_page_with_retry_after(service_settings, topics):
    publisher = FakePublisher()
    publisher.unavailable = True  # Kafka does not acknowledge the erasure
    settings = service_settings(IntakeSettings, smtp_enabled=False, export_timeout_s=1e-6, retry_after_s=17)
    app = intake_app(settings, publisher=publisher)
    async with running(app), signed_in(app, PER, next="/my/data") as browser:
        await app.state.runtime.keyring.key_for(EMAIL[PER])  # Per has a key: the export must read the event log
        page = (await browser.get("/my/data")).text
        asked = await browser.post(
            "/my/data/erasure", data={"csrf_token": token_of(page), "confirm": "yes"}, headers=FROM_THE_PAGE
        )
        assert asked.status_code == 503 and asked.headers["retry-after"] == "17"
        assert "Vi kan inte ta emot din begäran just nu" in asked.text and "Ingenting har raderats." in asked.text
        assert 'class="site-header"' in asked.text and asked.headers["content-type"].startswith("text/html")
        assert publisher.count == 0

        download = await browser.get("/my/data/export")
        assert download.status_code == 503 and download.headers["retry-after"] == "17"
        assert "content-disposition" not in download.headers and "Vi kan inte ta fram dina uppgifter" in download.text
        english = await browser.get("/en/my/data/export")
        assert english.status_code == 503 and "We cannot put your data together right now" in english.text
