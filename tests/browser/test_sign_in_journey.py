"""The whole site as people use it, in a real headless Chromium: the four services behind the nginx proxy, sign-in
on the real Keycloak's own login page, the real Kafka and Redis.

Anna signs in, submits an idea in her name, finds it on "my ideas" and in her feed, supports and comments on
Per's idea, and signs out; Erik (Tekniska Verken) sees his organisation's inbox and is refused Kiruna kommun's."""

from __future__ import annotations

import json
import re

import httpx
import pytest

from shared.sealing import pseudonym
from shared.settings import ServiceSettings
from tests.support.identity import EMAIL, PER, bearer
from tests.support.kafka import probe
from tests.support.site import shows, sign_in, the_site

pytestmark = pytest.mark.kafka


async def test_people_sign_in_take_part_and_see_only_what_is_theirs(
    page, service_settings, topics, kafka_settings, tmp_path, artifacts
):
    async with (
        the_site(service_settings, tmp_path) as site,
        probe(kafka_settings, topics.engagement) as engagement,
        probe(kafka_settings, topics.status_changed) as changes,
    ):
        # Per's idea, submitted through the site's API with his token
        async with httpx.AsyncClient(base_url=site, timeout=30) as api:
            answer = await api.post(
                "/api/v1/ideas",
                headers=bearer(PER),
                json={"title": "Laddplatser vid hyreshusen", "description": "Hyresgästerna vill ladda elbilar."},
            )
            assert answer.status_code == 202, answer.text
            per_idea = answer.json()["idea_id"]

        # Anna signs in on Keycloak's page and submits an idea in her name
        await page.goto(site + "/")
        await sign_in(page, "anna.svensson")
        assert await page.text_content("#signed-in-name") == "Anna Svensson"
        assert await page.text_content("#submitter-name") == "Anna Svensson"
        assert await page.text_content("#submitter-email") == EMAIL["anna.svensson"]
        assert not await page.is_checked("#anonymous")
        await page.fill("#title", "Längre öppettider i simhallen")
        await page.fill("#description", "Många vill simma efter jobbet; öppna till klockan 21.")
        await page.get_by_role("button", name="Skicka idén").click()
        await page.wait_for_selector("#idea-id")
        anna_idea = await page.text_content("#idea-id")
        await page.screenshot(path=str(artifacts / "journey-receipt.png"))

        # ... finds it on "my ideas" and hears in her feed where it went
        await shows(page, site + "/my/ideas", "Längre öppettider i simhallen")
        assert anna_idea in await page.content()
        await shows(page, site + "/my/feed", "Längre öppettider i simhallen")
        await page.screenshot(path=str(artifacts / "journey-feed.png"))

        # ... supports and comments on Per's idea from its status page
        await shows(page, f"{site}/ideas/{per_idea}", "Laddplatser vid hyreshusen")
        await page.click("#support-form button")
        await page.wait_for_url(f"**/ideas/{per_idea}**")
        await page.fill("#comment-text", "Bra idé, det behövs vid fler hus!")
        await page.click("#comment-form button")
        await page.wait_for_url(f"**/ideas/{per_idea}**")
        records = await engagement.wait_for(lambda rs: len([r for r in rs if r.key == per_idea.encode()]) >= 2)
        taken_part = [json.loads(r.value)["data"] for r in records if r.key == per_idea.encode()]
        anna = pseudonym(ServiceSettings().pseudonym_pepper.get_secret_value().encode(), EMAIL["anna.svensson"])
        assert {(e["kind"], e["person"]["pseudonym"]) for e in taken_part} == {("support", anna), ("comment", anna)}
        for record in records:  # in Kafka she is her pseudonym; her name, address and comment are sealed
            assert b"anna.svensson" not in record.value.lower() and b"Anna Svensson" not in record.value
            assert "Bra idé, det behövs".encode() not in record.value
        await shows(page, f"{site}/ideas/{per_idea}", '<span id="idea-supporters">1</span>')
        await shows(page, f"{site}/ideas/{per_idea}", "Bra idé, det behövs")  # read by another consumer batch
        public = await page.content()
        # her address is never shown; her comment is, with her name as its author (issue 18)
        leaks = [public[max(0, m.start() - 300) : m.end() + 80] for m in re.finditer(r"anna\.svensson", public)]
        assert leaks == [], leaks
        assert "Anna Svensson" in await page.locator("#comments").inner_text()

        # ... and signs out, here and at Keycloak
        await page.click("#sign-out")
        await page.wait_for_selector("#sign-in")
        mine = await page.goto(site + "/my/ideas")
        assert "/realms/kiruna/" in page.url, "signed out: 'my ideas' sends to the sign-in page"
        assert mine is not None and mine.ok

        # Erik sees Tekniska Verken's inbox and is refused Kiruna kommun's
        await page.goto(site + "/")
        await sign_in(page, "erik.lindberg")
        own = await page.goto(site + "/inbox/tekniska-verken")
        assert own is not None and own.status == 200
        await page.screenshot(path=str(artifacts / "journey-inbox.png"))
        # ... and acknowledges Per's idea there: the page calls intake on the same site with his session
        action = page.locator(f'form.action[data-idea-id="{per_idea}"]')
        await action.wait_for(state="visible")
        await action.locator('select[name="to_state"]').select_option("acknowledged")
        await action.locator("button").click()
        change = json.loads((await changes.wait_count(1))[0].value)["data"]
        assert (change["idea_id"], change["to_state"], change["changed_by"]) == (
            per_idea,
            "acknowledged",
            "erik.lindberg",
        )
        other = await page.goto(site + "/inbox/kiruna-kommun")
        assert other is not None and other.status == 403
        assert page.js_errors == []
