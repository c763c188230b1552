"""The web form in a real headless Chromium, used with the keyboard only, against the real Kafka."""

from __future__ import annotations

import json

import pytest

from services.intake.app import create_app as intake_app
from services.intake.settings import IntakeSettings
from tests.support.http_server import serving
from tests.support.kafka import eventually, probe

pytestmark = pytest.mark.kafka


async def test_an_employee_submits_an_anonymous_idea_with_the_keyboard_and_gets_a_receipt(
    page, service_settings, topics, kafka_settings, artifacts
):
    app = intake_app(service_settings(IntakeSettings, smtp_enabled=False))
    async with serving(app) as url, probe(kafka_settings, topics.submitted) as submitted:
        await eventually(app.state.runtime.kafka_connected.is_set, timeout=30)
        await page.goto(url + "/")
        assert await page.get_attribute("html", "lang") == "sv"
        # every field has a label a screen reader announces
        for label in ("Rubrik", "Beskriv idén"):
            assert await page.get_by_label(label, exact=True).count() == 1
        # not signed in: the header offers sign-in, and the idea can only be anonymous
        assert await page.get_attribute("#sign-in", "href") == "/auth/login?next=%2F"
        assert await page.is_checked("#anonymous")

        await page.focus("#title")
        await page.keyboard.type("Ab")  # too short
        await page.keyboard.press("Tab")
        await page.keyboard.type("Skotrarna parkeras på gångvägen vid skolan. <b>Farligt</b> för barnen.")
        await page.focus("#title")
        await page.keyboard.press("Enter")  # submits the form

        await page.wait_for_selector("#title-error")
        assert await page.text_content("#title-error") == "Måste ha minst 3 tecken."
        assert await page.get_attribute("#title", "aria-invalid") == "true"
        assert "title-error" in await page.get_attribute("#title", "aria-describedby")
        assert (await page.input_value("#description")).startswith("Skotrarna")  # nothing typed is lost

        await page.fill("#title", "Skoterparkering vid skolan")
        await page.focus("#title")
        await page.keyboard.press("Enter")
        await page.wait_for_selector("#status-link")
        assert await page.text_content("h1") == "Tack för din idé!"
        idea_id = await page.text_content("#idea-id")
        assert (await page.get_attribute("#status-link", "href")).endswith(f"/ideas/{idea_id}")
        await page.screenshot(path=str(artifacts / "intake-receipt.png"))

        event = json.loads((await submitted.wait_count(1))[0].value)["data"]
        assert event["idea_id"] == idea_id and event["channel"] == "web" and event["language"] == "sv"
        assert event["description"].endswith("<b>Farligt</b> för barnen.")  # markup kept as text
        assert event.get("submitter") is None  # anonymous: nothing personal kept
        assert page.js_errors == []


async def test_the_english_form(page, service_settings, topics):
    app = intake_app(service_settings(IntakeSettings, smtp_enabled=False))
    async with serving(app) as url:
        await eventually(app.state.runtime.kafka_connected.is_set, timeout=30)
        await page.goto(url + "/en")
        assert await page.get_attribute("html", "lang") == "en"
        await page.get_by_label("Title", exact=True).fill("Snow")
        await page.get_by_label("Submit anonymously", exact=False).check()
        await page.get_by_role("button", name="Send the idea").click()
        await page.wait_for_selector("#status-link")
        assert await page.text_content("h1") == "Thank you for your idea!"
