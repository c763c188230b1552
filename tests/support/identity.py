"""Real tokens from the local Keycloak (realm ``kiruna``, client ``kiruna-cli``, direct access grants), for the
tests' API calls. ``make test`` starts Keycloak when none answers (deploy/keycloak/keycloak.sh)."""

from __future__ import annotations

import functools
import os
import time

import httpx

ISSUER = os.environ.get("OIDC_ISSUER_URL", "http://127.0.0.1:8180/realms/kiruna")
PASSWORD = "kiruna-local"  # every local user's (deploy/keycloak/realm.py); local realm only

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
