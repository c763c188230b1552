"""Issue 18 as people live it, in a real headless Chromium: the four services behind the nginx proxy, sign-in on
Keycloak's own page, the real Kafka and Redis.

Maria (an officer of Kiruna kommun) opens a challenge; Anna sees it on the form, answers it, is shown Sara's
similar idea while she writes and submits anyway; Erik (Tekniska Verken) sees the suggested duplicate in his inbox
and merges Anna's idea into Sara's; Anna sees the merge on "my ideas" and on her idea's page; Per comments on and
supports Sara's idea from its page."""

from __future__ import annotations

import json
from datetime import date, timedelta

import httpx
import pytest

from tests.support.identity import PASSWORD, SARA, bearer
from tests.support.kafka import probe
from tests.support.site import shows, sign_in, the_site

pytestmark = pytest.mark.kafka

QUESTION = "Hur minskar vi energianvändningen i våra lokaler?"
SARAS_IDEA = (
    "Sänk temperaturen i kommunens lokaler på nätterna",
    "Värmen står på fullt i skolor och kontor när ingen är där. Sänk inomhustemperaturen nattetid och på helger "
    "med styrning av fjärrvärmen, så sparar vi energi.",
)
ANNAS_IDEA = (
    "Lägre inomhustemperatur nattetid i lokalerna",
    "Vi kunde sänka temperaturen i skolorna och kontoren på natten och under helgerna när lokalerna står tomma; "
    "det sparar energi och fjärrvärme.",
)


async def keycloak_login(page, username: str) -> None:
    """On Keycloak's own login page, where a page that needs a sign-in sends a person."""
    await page.wait_for_selector("#kc-login")
    await page.fill("#username", username)
    await page.fill("#password", PASSWORD)
    await page.click("#kc-login")


async def sign_out(page) -> None:
    await page.click("#sign-out")
    await page.wait_for_selector("#sign-in")


async def test_a_challenge_is_answered_a_duplicate_is_merged_and_people_take_part(
    page, service_settings, topics, kafka_settings, tmp_path, artifacts
):
    async with (
        the_site(service_settings, tmp_path) as site,
        probe(kafka_settings, topics.challenges) as challenges,
        probe(kafka_settings, topics.submitted) as submitted,
        probe(kafka_settings, topics.status_changed) as changes,
        probe(kafka_settings, topics.engagement) as engagement,
    ):
        # Sara's idea is already there (through the API with her token)
        async with httpx.AsyncClient(base_url=site, timeout=30) as api:
            answer = await api.post(
                "/api/v1/ideas", headers=bearer(SARA), json={"title": SARAS_IDEA[0], "description": SARAS_IDEA[1]}
            )
            assert answer.status_code == 202, answer.text
            saras = answer.json()["idea_id"]
        await shows(page, f"{site}/ideas/{saras}", SARAS_IDEA[0])  # the read side has it

        # Maria, an officer of Kiruna kommun, opens a challenge for her organisation
        await page.goto(site + "/challenges/new")  # sends her to sign in, and back
        await keycloak_login(page, "maria.nilsson")
        await page.wait_for_selector("#question")
        await page.fill("#question", QUESTION)
        await page.fill("#description", "Alla förvaltningar: var slösar vi med värme och el?")
        await page.check("#audience-kiruna-kommun")
        await page.check("#area-klimat-och-energi")
        await page.fill("#closes_at", (date.today() + timedelta(days=30)).isoformat())
        await page.get_by_role("button", name="Öppna utmaningen").click()
        await page.wait_for_selector("#challenge-link")
        [opened] = [json.loads(r.value)["data"] for r in await challenges.wait_count(1)]
        challenge = opened["challenge_id"]
        assert (opened["question"], opened["organisation"], opened["opened_by"]) == (
            QUESTION,
            "kiruna-kommun",
            "maria.nilsson",
        )
        await page.screenshot(path=str(artifacts / "idea-work-challenge-opened.png"))
        await sign_out(page)

        # Anna sees the challenge on the form and answers it; Sara's idea is suggested while she writes
        await page.goto(site + "/")
        await sign_in(page, "anna.svensson")
        await shows(page, site + "/", QUESTION)
        await page.select_option("#challenge", challenge)
        await page.fill("#title", ANNAS_IDEA[0])
        await page.fill("#description", ANNAS_IDEA[1])
        suggestion = page.locator(f'#similar-live .suggestion a[href$="/ideas/{saras}"]')
        await suggestion.wait_for(state="visible", timeout=30_000)
        assert await suggestion.text_content() == SARAS_IDEA[0]
        await page.screenshot(path=str(artifacts / "idea-work-similar-while-writing.png"))
        # ... she sends it: the form asks once more, listing the similar idea, and she submits anyway
        await page.click("#submit")
        await page.wait_for_selector(f'#similar-ideas .suggestion[data-idea-id="{saras}"]')
        await page.get_by_role("button", name="Skicka ändå").click()
        await page.wait_for_selector("#idea-id")
        annas = await page.text_content("#idea-id")
        records = await submitted.wait_for(lambda rs: any(r.key == annas.encode() for r in rs))
        [stored] = [json.loads(r.value)["data"] for r in records if r.key == annas.encode()]
        assert stored["challenge_id"] == challenge
        await sign_out(page)

        # Erik (Tekniska Verken: the idea is about district heating) sees the suggested duplicate in his inbox and
        # merges Anna's idea into Sara's
        await page.goto(site + "/")
        await sign_in(page, "erik.lindberg")
        row = page.locator(f"#idea-{annas}")
        await shows(page, site + "/inbox/tekniska-verken", f'data-suggested-id="{saras}"')
        suggested = row.locator(f'li[data-suggested-id="{saras}"]')
        assert SARAS_IDEA[0] in await suggested.inner_text()
        await page.screenshot(path=str(artifacts / "idea-work-inbox-duplicate.png"))
        await suggested.locator("form.merge button").click()
        change = await changes.wait_for(lambda rs: any(r.key == annas.encode() for r in rs))
        [merged] = [json.loads(r.value)["data"] for r in change if r.key == annas.encode()]
        assert (merged["to_state"], merged["merged_into"], merged["changed_by"]) == ("merged", saras, "erik.lindberg")
        await sign_out(page)

        # Anna sees the merge on "my ideas" and on her idea's page
        await page.goto(site + "/")
        await sign_in(page, "anna.svensson")
        await shows(page, site + "/my/ideas", 'data-state="merged"')
        mine = page.locator(f"#idea-{annas}")
        assert SARAS_IDEA[0] in await mine.locator(".merged-into").inner_text()
        await page.screenshot(path=str(artifacts / "idea-work-my-ideas-merged.png"))
        await page.goto(f"{site}/ideas/{annas}")
        assert await page.locator("#idea-state").get_attribute("data-state") == "merged"
        assert await page.locator("#idea-merged-into a").get_attribute("href") == f"/ideas/{saras}"
        await sign_out(page)

        # Per comments on Sara's idea and supports it from its page
        await page.goto(f"{site}/ideas/{saras}")
        await page.click("#sign-in-to-engage")
        await keycloak_login(page, "per.niemi")
        await page.wait_for_selector("#support-form")
        await page.click("#support-form button")
        await page.wait_for_url(f"**/ideas/{saras}**")
        await page.fill("#comment-text", "Vi gör samma sak i Kirunabostäders trapphus!")
        await page.click("#comment-form button")
        await page.wait_for_url(f"**/ideas/{saras}**")
        taken = await engagement.wait_for(
            lambda rs: (
                {json.loads(r.value)["data"]["kind"] for r in rs if r.key == saras.encode()} >= {"support", "comment"}
            )
        )
        assert taken
        await shows(page, f"{site}/ideas/{saras}", "Vi gör samma sak i Kirunabostäders trapphus!")
        author = page.locator("#comments .comment .author")
        assert "Per Niemi" in await author.all_inner_texts()
        await page.screenshot(path=str(artifacts / "idea-work-per-takes-part.png"))
        assert page.js_errors == []
