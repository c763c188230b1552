"""The whole site for the browser journeys: the four services on free ports behind the nginx proxy on :18080 (as
`make run` runs them), sign-in through Keycloak's own login page, and waiting until a page shows something."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path

from services.analytics.app import create_app as analytics_app
from services.analytics.settings import AnalyticsSettings
from services.intake.app import create_app as intake_app
from services.intake.settings import IntakeSettings
from services.notifications.app import create_app as notifications_app
from services.notifications.settings import NotificationsSettings
from services.routing.app import create_app as routing_app
from services.routing.settings import RoutingSettings
from tests.support.http_server import bind, serving
from tests.support.identity import PASSWORD
from tests.support.kafka import eventually

ROOT = Path(__file__).resolve().parents[2]
PROXY_PORT = 18080  # the proxy the browser tests start: one of the local realm's redirect URIs (realm.py)
SITE = f"http://127.0.0.1:{PROXY_PORT}"


@contextlib.asynccontextmanager
async def the_site(service_settings, var_dir: Path) -> AsyncIterator[str]:
    """The four services on free ports, nginx in front of them on :18080, as `make run` does."""
    apps = {
        "intake": intake_app(service_settings(IntakeSettings, smtp_enabled=False, public_base_url=SITE)),
        "routing": routing_app(service_settings(RoutingSettings)),
        "notifications": notifications_app(service_settings(NotificationsSettings, public_url=SITE)),
        "analytics": analytics_app(service_settings(AnalyticsSettings, intake_url="")),
    }
    sockets = {name: bind() for name in apps}
    env = {
        **os.environ,
        "VAR_DIR": str(var_dir),
        "PROXY_PORT": str(PROXY_PORT),
        **{f"{name.upper()}_PORT": str(sock.getsockname()[1]) for name, sock in sockets.items()},
    }
    async with contextlib.AsyncExitStack() as stack:
        for name, app in apps.items():
            await stack.enter_async_context(serving(app, sock=sockets[name]))
        for app in apps.values():
            await eventually(app.state.runtime.kafka_connected.is_set, timeout=60)
        nginx = ROOT / "deploy" / "nginx" / "nginx.sh"

        def run(command: str, check: bool = True) -> None:
            subprocess.run([nginx, command], env=env, check=check, timeout=60)

        await asyncio.to_thread(run, "start")
        try:
            await asyncio.to_thread(run, "wait")
            yield SITE
        finally:
            await asyncio.to_thread(run, "stop", False)


async def sign_in(page, username: str) -> None:
    """Through Keycloak's own login page, as a person does."""
    await page.click("#sign-in")
    await page.wait_for_selector("#kc-login")
    await page.fill("#username", username)
    await page.fill("#password", PASSWORD)
    await page.click("#kc-login")
    await page.wait_for_selector("#signed-in-name")


async def shows(page, url: str, text: str, timeout: float = 30) -> None:
    """Open ``url`` until it shows ``text`` (the read side catches up within moments)."""
    deadline = time.monotonic() + timeout
    while True:
        await page.goto(url)
        if text in await page.content():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{url} did not show {text!r} within {timeout}s")
        await asyncio.sleep(0.5)
