"""The form's similar-ideas script (services/intake/static/similar.js) in a real headless Chromium: as the person
writes it asks analytics' GET /api/v1/ideas/similar (answered here by the browser's request routing, as the proxy
would forward it) once there are a few words, and shows up to three suggestions in the live region, as text."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import pytest

from services.intake.app import create_app as intake_app
from services.intake.settings import IntakeSettings
from tests.support.http_server import serving
from tests.support.kafka import eventually

pytestmark = pytest.mark.kafka

SUGGESTIONS = [
    {
        "idea_id": f"3f2b8c4e-0000-4000-8000-00000000000{n}",
        "title": title,
        "state": "routed",
        "score": score,
        "shared_words": words,
        "url": url,
    }
    for n, (title, score, words, url) in enumerate(
        [
            (
                "Snöröjning av gångbanorna",
                0.82,
                ["snöröjning", "gångbanorna"],
                "/ideas/3f2b8c4e-0000-4000-8000-000000000000",
            ),
            ('<img src=x onerror="window.hacked=1">', 0.5, [], "javascript:alert(1)"),
            ("Skotta gångvägarna", 0.41, ["gångvägarna"], "/ideas/3f2b8c4e-0000-4000-8000-000000000002"),
            ("En fjärde", 0.35, [], "/ideas/3f2b8c4e-0000-4000-8000-000000000003"),
        ]
    )
]


async def test_the_form_shows_similar_ideas_while_the_person_writes(page, service_settings, topics):
    asked: list[dict[str, list[str]]] = []

    async def analytics(route):
        asked.append(parse_qs(urlsplit(route.request.url).query))
        await route.fulfill(status=200, content_type="application/json", body=json.dumps({"suggestions": SUGGESTIONS}))

    app = intake_app(service_settings(IntakeSettings, smtp_enabled=False))
    async with serving(app) as url:
        await eventually(app.state.runtime.kafka_connected.is_set, timeout=30)
        await page.route("**/api/v1/ideas/similar?*", analytics)
        await page.goto(url + "/")
        await page.fill("#title", "Snöröjning")  # one word: too little to compare, nothing is asked
        assert await page.inner_text("#similar-live") == ""
        await page.focus("#description")
        await page.keyboard.type("Gångbanorna vid skolan plogas för sent")
        await page.wait_for_selector("#similar-live li")
        assert len(asked) == 1  # once, after the person paused with a few words written, not per keystroke
        assert asked[0]["title"] == ["Snöröjning"]
        assert asked[0]["description"] == ["Gångbanorna vid skolan plogas för sent"]
        assert await page.get_attribute("#similar-live", "aria-live") == "polite"
        assert await page.inner_text("#similar-live h2") == "Liknande idéer som redan finns"
        items = page.locator("#similar-live li")
        assert await items.count() == 3  # up to three
        first = items.nth(0)
        assert await first.locator("a").inner_text() == "Snöröjning av gångbanorna"
        assert await first.locator("a").get_attribute("href") == "/ideas/3f2b8c4e-0000-4000-8000-000000000000"
        assert "Likhet 82 %" in await first.inner_text() and "snöröjning, gångbanorna" in await first.inner_text()
        second = items.nth(1).locator("a")
        assert await second.inner_text() == '<img src=x onerror="window.hacked=1">'  # text, never markup
        assert await second.get_attribute("href") == "/ideas/3f2b8c4e-0000-4000-8000-000000000001"  # not javascript:
        assert await page.evaluate("window.hacked") is None
        assert page.js_errors == []
