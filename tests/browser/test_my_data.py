""" "Mina uppgifter" in a real headless Chromium, on the whole site (the four services behind nginx, sign-in on
Keycloak's own page, the real Kafka and Redis): Per finds the page in the header's menu, it loads with no violation
of the pages' Content-Security-Policy and its stylesheet applies, he downloads his data as a file, cannot erase
himself without ticking the confirmation box, ticks it and is erased; his idea's status page then shows it as by
"en tidigare medarbetare"."""

from __future__ import annotations

import json

import httpx
import pytest

from shared.events import ErasureRequestedEvent
from shared.sealing import pseudonym
from shared.settings import ServiceSettings
from tests.browser.test_csp import RECORD_VIOLATIONS, Watch, visit
from tests.support.identity import EMAIL, PER, bearer
from tests.support.kafka import probe
from tests.support.site import shows, sign_in, the_site

pytestmark = pytest.mark.kafka

TITLE = "Värmekablar i backen vid Hjalmar Lundbohmsskolan"


async def test_a_person_reads_downloads_and_erases_their_data(
    browser, service_settings, topics, kafka_settings, tmp_path, artifacts
):
    async with (
        the_site(service_settings, tmp_path) as site,
        probe(kafka_settings, topics.routed) as routed,
        probe(kafka_settings, topics.people_erasures) as erasures,
    ):
        async with httpx.AsyncClient(base_url=site, timeout=30) as api:
            answer = await api.post(
                "/api/v1/ideas", headers=bearer(PER), json={"title": TITLE, "description": "Backen är is hela vintern."}
            )
            assert answer.status_code == 202, answer.text
            idea = answer.json()["idea_id"]
        await routed.wait_for(lambda records: any(r.key == idea.encode() for r in records))

        context = await browser.new_context(
            viewport={"width": 1200, "height": 1000}, locale="sv-SE", accept_downloads=True
        )
        await context.add_init_script(RECORD_VIOLATIONS)
        page = await context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        watch = Watch(site)
        watch.attach(page)
        try:
            await page.goto(site + "/")
            await sign_in(page, PER)
            await page.click('.site-header nav a[href="/my/data"]')  # "Mina uppgifter" in the header's menu
            await page.wait_for_url(f"{site}/my/data")
            assert await page.text_content("h1") == "Mina uppgifter"
            assert await watch.violations(page) == [] and watch.console == []
            button = await page.eval_on_selector("#erase", "e => getComputedStyle(e).backgroundColor")
            assert button == "rgb(160, 0, 0)", "the page's stylesheet (/static/intake/form.css) applies"
            await visit(page, watch, site + "/en/my/data")
            assert await page.text_content("h1") == "My data"
            await visit(page, watch, site + "/my/data")
            await page.screenshot(path=str(artifacts / "my-data.png"), full_page=True)

            # the download: a file, the export of everything the platform holds about him
            async with page.expect_download() as downloading:
                await page.click("#download")
            download = await downloading.value
            assert download.suggested_filename == "mina-uppgifter.json"
            document = json.loads((await download.path()).read_text(encoding="utf-8"))
            assert document["person"]["email"] == EMAIL[PER] and document["person"]["name"] == "Per Niemi"
            assert [i["title"] for i in document["ideas"]] == [TITLE]

            # without the box ticked the browser does not send the form; nothing is erased
            await page.click("#erase")
            assert await page.eval_on_selector("#confirm", "e => e.validity.valueMissing")
            assert page.url == f"{site}/my/data"

            await page.check("#confirm")
            await page.click("#erase")
            await page.wait_for_selector("#erasure-id")
            assert await page.text_content("h1") == "Din begäran är mottagen"
            assert await watch.violations(page) == [] and watch.console == []
            await page.screenshot(path=str(artifacts / "my-data-erased.png"))
            event_id = await page.text_content("#erasure-id")
            [record] = await erasures.wait_count(1)
            erasure = ErasureRequestedEvent.parse(record.value)
            pepper = ServiceSettings().pseudonym_pepper.get_secret_value().encode()
            assert (erasure.id, erasure.data.pseudonym) == (event_id, pseudonym(pepper, EMAIL[PER]))

            # his idea stays, as by a former employee
            await shows(page, f"{site}/ideas/{idea}", 'data-status="former-employee"')
            assert "en tidigare medarbetare" in await page.text_content("#idea-submitter")
            assert errors == []
        finally:
            await context.close()
