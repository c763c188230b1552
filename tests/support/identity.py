"""Real tokens from the local Keycloak (realm ``kiruna``, client ``kiruna-cli``, direct access grants), for the
tests' API calls, and a browser's signed-in session with a service's pages (:func:`signed_in`). ``make test`` starts
Keycloak when none answers (deploy/keycloak/keycloak.sh)."""

from __future__ import annotations

import contextlib
import functools
import html
import os
import re
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import httpx

ISSUER = os.environ.get("OIDC_ISSUER_URL", "http://127.0.0.1:8180/realms/kiruna")
PASSWORD = "kiruna-local"  # every local user's (deploy/keycloak/realm.py); local realm only
ORIGIN = "http://127.0.0.1:8002"  # a redirect URI of the realm's web client: the sign-in comes back here

ANNA = "anna.svensson"  # employee, kiruna-kommun / kultur-och-fritid
PER = "per.niemi"  # employee, kirunabostader / forvaltning
ERIK = "erik.lindberg"  # officer, tekniska-verken / energi
MARIA = "maria.nilsson"  # officer, kiruna-kommun / samhallsbyggnad
SARA = "sara.pekkari"  # officer, kirunabostader / forvaltning
INNOVATION_OFFICE = "innovation.office"
ADMIN = "admin"
EMAIL = {
    ANNA: "anna.svensson@kiruna.se",
    PER: "per.niemi@kirunabostader.se",
    ERIK: "erik.lindberg@tekniskaverken.kiruna.se",
    MARIA: "maria.nilsson@kiruna.se",
    SARA: "sara.pekkari@kirunabostader.se",
    INNOVATION_OFFICE: "innovation@kiruna.se",
    ADMIN: "admin@kiruna.se",
}


@functools.cache
def _grant(username: str) -> tuple[str, float]:
    answer = httpx.post(
        f"{ISSUER}/protocol/openid-connect/token",
        data={
            "grant_type": "password",
            "client_id": "kiruna-cli",
            "username": username,
            "password": PASSWORD,
            "scope": "openid",
        },
        timeout=30,
    )
    answer.raise_for_status()
    body = answer.json()
    return body["access_token"], time.time() + body["expires_in"]


def token(username: str) -> str:
    """An access token of ``username`` from the real Keycloak (cached until a minute before it expires)."""
    access, expires = _grant(username)
    if expires - time.time() < 60:
        _grant.cache_clear()
        access, _ = _grant(username)
    return access


def bearer(username: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(username)}"}


@contextlib.asynccontextmanager
async def signed_in(app: Any, username: str, next: str = "/my/feed") -> AsyncIterator[httpx.AsyncClient]:
    """A browser's session with the app (running) at :data:`ORIGIN`, signed in at the real Keycloak (its login form
    filled in) and sent back to ``next``. A form post of the session must say it comes from ``ORIGIN``."""
    transport = httpx.ASGITransport(app=app)
    async with (
        httpx.AsyncClient(transport=transport, base_url=ORIGIN) as browser,
        httpx.AsyncClient(timeout=30) as keycloak,
    ):
        start = await browser.get("/auth/login", params={"next": next})
        assert start.status_code in (302, 303) and start.headers["location"].startswith(ISSUER)
        form = await keycloak.get(start.headers["location"])
        action = html.unescape(re.search(r'<form[^>]*id="kc-form-login"[^>]*action="([^"]+)"', form.text)[1])
        # Keycloak's cookies are Secure; a browser sends them to 127.0.0.1 over http, httpx does not by itself
        cookies = "; ".join(c.split(";", 1)[0] for c in form.headers.get_list("set-cookie"))
        answer = await keycloak.post(
            action, headers={"Cookie": cookies}, data={"username": username, "password": PASSWORD}
        )
        assert answer.status_code == 302, answer.text[:500]
        back = urlsplit(answer.headers["location"])
        done = await browser.get(f"{back.path}?{back.query}")
        assert done.status_code == 303 and done.headers["location"] == next, done.text
        yield browser
