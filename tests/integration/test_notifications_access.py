"""Who may see and change what in notifications, on the real Kafka, Redis and Keycloak: a person's feed, stream
and preferences are theirs alone (``/api/v1/people/me/...``), digests are sent by admins and never for a day still
to come, and the pages ``/my/feed`` and ``/my/preferences`` work for a person signed in at Keycloak."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest
from fastapi import FastAPI, HTTPException

from services.notifications.app import create_app
from services.notifications.people import own_address
from shared.events import PreferencesChanged
from shared.principal import Principal, Role
from tests.support.apps import running
from tests.support.identity import ADMIN, ANNA, EMAIL, ORIGIN, PER, bearer, signed_in
from tests.support.kafka import eventually, probe, raw_producer
from tests.support.notifications import free_port, publish, routed, sealing

pytestmark = pytest.mark.kafka

ANNAS, PERS = EMAIL[ANNA], EMAIL[PER]


async def anna_has_news(app: FastAPI, api: httpx.AsyncClient, topics, kafka_settings, title: str) -> str:
    """An idea of Anna's is routed; she hears of it in her feed. Returns its id."""
    idea_id = str(uuid.uuid4())
    async with raw_producer(kafka_settings) as producer, sealing(app.state.runtime.settings) as people:
        await publish(producer, topics.submitted, await people.submitted(idea_id, title, email=ANNAS))
        await publish(producer, topics.routed, routed(idea_id, title, [("kirunabostader", None)], ["boende"]))

    async def in_feed():
        items = (await api.get("/api/v1/people/me/feed", headers=bearer(ANNA))).json()["items"]
        return [i for i in items if i["idea_id"] == idea_id]

    await eventually(in_feed, timeout=30)
    return idea_id


async def test_a_persons_feed_stream_and_preferences_are_their_own(settings_for, topics, kafka_settings):
    app = create_app(settings_for(free_port()))
    async with running(app) as api, probe(kafka_settings, topics.preferences) as recorded:
        idea_id = await anna_has_news(app, api, topics, kafka_settings, "Laddplatser vid simhallen")
        mine = (await api.get("/api/v1/people/me/feed", headers=bearer(ANNA))).json()
        assert mine["person"] == ANNAS and mine["items"][0]["idea_id"] == idea_id
        # the old address still answers for one's own e-mail, in any case
        old = await api.get(f"/api/v1/people/{ANNAS.upper()}/feed", headers=bearer(ANNA))
        assert old.status_code == 200 and old.json()["items"] == mine["items"]
        assert (await api.get("/api/v1/people/me/feed", headers=bearer(PER))).json()["items"] == []

        # Anna may not read or change Per's
        for method, path in (
            ("GET", f"/api/v1/people/{PERS}/feed"),
            ("GET", f"/api/v1/people/{PERS}/stream"),
            ("GET", f"/api/v1/people/{PERS}/preferences"),
            ("PUT", f"/api/v1/people/{PERS}/preferences"),
        ):
            answer = await api.request(method, path, headers=bearer(ANNA), json={} if method == "PUT" else None)
            assert answer.status_code == 403, (path, answer.text)
            assert "only see your own" in answer.json()["detail"] and "/api/v1/people/me/" in answer.json()["detail"]

        # nobody signed in, or a token that does not verify: 401 with a challenge
        token = bearer(ANNA)["Authorization"]
        forged = token[:-8] + ("AAAAAAAA" if not token.endswith("AAAAAAAA") else "BBBBBBBB")
        for headers in ({}, {"Authorization": forged}, {"Authorization": "Bearer not-a-token"}):
            for method, path in (
                ("GET", "/api/v1/people/me/feed"),
                ("GET", "/api/v1/people/me/stream"),
                ("GET", "/api/v1/people/me/preferences"),
                ("PUT", "/api/v1/people/me/preferences"),
                ("GET", f"/api/v1/people/{ANNAS}/feed"),
            ):
                answer = await api.request(method, path, headers=headers, json={} if method == "PUT" else None)
                assert answer.status_code == 401, (path, headers, answer.text)
                assert answer.headers["www-authenticate"].startswith("Bearer")

        # Per's own preferences, changed and read back; the change is recorded under his pseudonym, his address
        # and name sealed under his key
        prefs = {"channels": ["in-app"], "frequency": "daily", "areas": ["boende"], "language": "en"}
        changed = await api.put("/api/v1/people/me/preferences", headers=bearer(PER), json=prefs)
        assert changed.status_code == 200, changed.text
        read = (await api.get("/api/v1/people/me/preferences", headers=bearer(PER))).json()
        assert read == changed.json() == {**prefs, "person": PERS, "organisations": []}
        [record] = await recorded.wait_count(1)
        keyring = app.state.runtime.keyring
        event = json.loads(record.value)
        assert record.key == keyring.pseudonym(PERS).encode() and event["data"]["via"] == "api"
        assert PERS.encode() not in record.value and b"Per Niemi" not in record.value
        assert await keyring.open_json(PreferencesChanged.model_validate(event["data"]).contact) == {
            "email": PERS,
            "name": "Per Niemi",
        }
        unknown = await api.put("/api/v1/people/me/preferences", headers=bearer(PER), json={"areas": ["månen"]})
        assert unknown.status_code == 422 and unknown.json()["errors"][0]["field"] == "areas"
        huge = await api.put("/api/v1/people/me/preferences", headers=bearer(PER), json={"areas": ["boende"] * 5000})
        assert huge.status_code == 422 and "areas" in huge.text, huge.text[:300]  # lists are bounded
        assert (await api.get("/api/v1/people/me/preferences", headers=bearer(ANNA))).json()["areas"] == []


def test_a_token_without_an_e_mail_address_has_no_feed() -> None:
    with pytest.raises(HTTPException) as refused:
        own_address(Principal(id="service-account", roles=frozenset({Role.EMPLOYEE})), None, "feed")
    assert refused.value.status_code == 403 and "carries no e-mail address" in refused.value.detail
    assert own_address(Principal(id="anna", email=ANNAS), ANNAS.upper(), "feed") == ANNAS


async def test_only_admins_send_digests_and_never_for_a_day_to_come(settings_for, topics):
    settings = settings_for(free_port())
    app = create_app(settings)
    today = datetime.now(ZoneInfo(settings.timezone)).date()
    async with running(app) as api:
        unsigned = await api.post(f"/api/v1/digests/{today.isoformat()}")
        assert unsigned.status_code == 401 and "www-authenticate" in unsigned.headers
        refused = await api.post(f"/api/v1/digests/{today.isoformat()}", headers=bearer(ANNA))
        assert refused.status_code == 403 and refused.json()["required_roles"] == ["admin"]
        assert "admin" in refused.json()["detail"]

        tomorrow = today + timedelta(days=1)
        future = await api.post(f"/api/v1/digests/{tomorrow.isoformat()}", headers=bearer(ADMIN))
        assert future.status_code == 422, future.text
        assert future.json()["errors"][0]["field"] == "day"
        assert "a future day's digests cannot be sent" in future.json()["detail"]
        assert not await app.state.handlers.store.digest_done(tomorrow)  # that day's digests are still to go

        for day in (today, today - timedelta(days=1)):
            answer = await api.post(f"/api/v1/digests/{day.isoformat()}", headers=bearer(ADMIN))
            assert answer.status_code == 200 and answer.json() == {"day": day.isoformat(), "queued": 0}


async def test_my_pages_need_sign_in_and_show_my_feed_and_save_my_preferences(settings_for, topics, kafka_settings):
    app = create_app(settings_for(free_port()))
    async with running(app) as api:
        for path in ("/my/feed", "/en/my/feed", "/my/preferences", "/en/my/preferences"):
            answer = await api.get(path)
            assert answer.status_code == 303 and answer.headers["location"].startswith("/auth/login?next=%2F")

        idea_id = await anna_has_news(app, api, topics, kafka_settings, "Bänkar <b>längs</b> älven")
        async with signed_in(app, ANNA) as browser:
            page = await browser.get("/my/feed")
            assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
            assert page.headers["content-security-policy"].startswith("default-src 'self'")
            assert page.headers["x-frame-options"] == "DENY"
            body = page.text
            assert body.index('class="site-header"') < body.index("<main>")  # the site's header first
            assert 'id="signed-in-name">Anna Svensson<' in body and "<h1>Mitt flöde</h1>" in body
            assert f'href="/ideas/{idea_id}"' in body and "&lt;b&gt;längs&lt;/b&gt;" in body and "<b>längs" not in body
            assert '<script src="/my/feed/live.js"' in body and "<script>" not in body  # no inline script
            english = await browser.get("/en/my/feed")
            assert "<h1>My feed</h1>" in english.text and f'href="/en/ideas/{idea_id}"' in english.text
            script = await browser.get("/my/feed/live.js")
            assert script.status_code == 200 and "/api/v1/people/me/stream" in script.text
            assert script.headers["content-type"].startswith("text/javascript")

            form = await browser.get("/my/preferences")
            assert form.status_code == 200 and "Klimat och energi" in form.text and "Kirunabostäder" in form.text
            assert form.headers["x-frame-options"] == "DENY"
            assert "Climate and energy" in (await browser.get("/en/my/preferences")).text

            choice = {
                "channels": ["in-app"],
                "frequency": "daily",
                "areas": ["boende", "klimat-och-energi"],
                "organisations": ["tekniska-verken"],
                "language": "en",
            }
            from_the_page = {"Origin": ORIGIN}
            saved = await browser.post("/my/preferences", data=choice, headers=from_the_page)
            assert saved.status_code == 303 and saved.headers["location"] == "/my/preferences?saved=1"
            again = await browser.get(saved.headers["location"])
            assert "Sparat." in again.text and 'value="boende" checked' in again.text
            stored = (await api.get("/api/v1/people/me/preferences", headers=bearer(ANNA))).json()
            assert {k: stored[k] for k in choice} == {**choice, "areas": ["boende", "klimat-och-energi"]}

            english_save = await browser.post("/en/my/preferences", data=choice, headers=from_the_page)
            assert english_save.headers["location"] == "/en/my/preferences?saved=1"
            assert "Saved." in (await browser.get(english_save.headers["location"])).text

            for field, wrong in (("areas", ["månen"]), ("frequency", "weekly")):
                bad = await browser.post("/my/preferences", data={**choice, field: wrong}, headers=from_the_page)
                assert bad.status_code == 422 and f'id="{field}-error">Okänt val.<' in bad.text, field
                assert 'value="tekniska-verken" checked' in bad.text  # what was chosen stays chosen
            assert (await api.get("/api/v1/people/me/preferences", headers=bearer(ANNA))).json()["areas"] == [
                "boende",
                "klimat-och-energi",
            ]  # nothing was stored

            # a form post with the session cookie from another site's page is refused
            elsewhere = await browser.post("/my/preferences", data=choice, headers={"Origin": "http://evil.example"})
            assert elsewhere.status_code == 403
            # the session reads the person's own feed through the API too (what the page's script listens to)
            assert (await browser.get("/api/v1/people/me/feed")).json()["person"] == ANNAS
