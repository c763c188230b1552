"""Screenshots of a running platform after ``make demo``: the dashboard (public) and an organisation's inbox
(signed in on Keycloak's page as one of its officers). ``python -m demo.screenshots [--out DIR] [--site URL]``;
headless Chromium from the system (/usr/bin/chromium) driven by Playwright."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
PASSWORD = "kiruna-local"  # the local realm's (deploy/keycloak/realm.py); local only


async def take(site: str, out: Path, officer: str, organisation: str) -> list[Path]:
    from playwright.async_api import async_playwright

    shots = [out / "demo-dashboard.png", out / f"demo-inbox-{organisation}.png"]
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"], headless=True)
        try:
            page = await browser.new_page(viewport={"width": 1400, "height": 1800}, locale="sv-SE")
            await page.goto(f"{site}/dashboard")
            await page.wait_for_selector("#fig-funnel svg")
            await page.screenshot(path=str(shots[0]), full_page=True)
            await page.goto(f"{site}/inbox/{organisation}")  # sends the officer to sign in, and back
            await page.wait_for_selector("#kc-login")
            await page.fill("#username", officer)
            await page.fill("#password", PASSWORD)
            await page.click("#kc-login")
            await page.wait_for_selector("table")
            await page.screenshot(path=str(shots[1]), full_page=False)
        finally:
            await browser.close()
    return shots


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demo.screenshots", description=__doc__)
    parser.add_argument("--site", default="http://127.0.0.1:8080")
    parser.add_argument("--out", type=Path, default=Path("var/screenshots"))
    parser.add_argument("--officer", default="erik.lindberg")
    parser.add_argument("--organisation", default="tekniska-verken")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for shot in asyncio.run(take(args.site, args.out, args.officer, args.organisation)):
        print(f"screenshot: {shot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
