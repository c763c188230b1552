"""A headless Chromium for the browser tests: the system's /usr/bin/chromium driven by Playwright (never a
browser that Playwright downloads). The tests are skipped, saying why, when either is missing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
HAVE_CHROMIUM = CHROMIUM.exists()
ARTIFACTS = Path(__file__).resolve().parents[2] / "var" / "test-artifacts"


@pytest.fixture
async def browser():
    if not HAVE_CHROMIUM:
        pytest.skip(f"{CHROMIUM} is missing: apt-get install -y chromium chromium-driver")
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        pytest.skip("the Python package playwright is missing: pip install -e '.[test]'")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def page(browser):
    context = await browser.new_context(viewport={"width": 1400, "height": 1000}, locale="sv-SE")
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.js_errors = errors
    try:
        yield page
    finally:
        await context.close()


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
