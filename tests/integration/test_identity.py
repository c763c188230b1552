"""Identity against the real Keycloak: real tokens accepted, forged ones refused with 401 and a challenge, a
missing role is a 403 naming it, the provider being down is a 503, and production refuses development secrets."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import subprocess
import sys
import time

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from services.routing.app import create_app as routing_app
from services.routing.settings import RoutingSettings
from shared.oidc import OidcSettings
from shared.settings import DevelopmentSecret
from tests.support.apps import running
from tests.support.identity import ADMIN, ANNA, ERIK, ISSUER, MARIA, bearer, token

pytestmark = pytest.mark.kafka
ROUTE = "/api/v1/route?title=Fjärrvärme till badhuset"


def part(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def keycloak_claims() -> tuple[dict, dict]:
    """The header and claims of a real token of Erik's, to forge others from."""
    real = token(ERIK)
    return jwt.get_unverified_header(real), jwt.decode(real, options={"verify_signature": False})


def forgeries() -> dict[str, str]:
    header, claims = keycloak_claims()
    claims = {**claims, "org": "innovationsplattformen", "roles": ["admin"]}
    jwks = httpx.get(f"{ISSUER}/protocol/openid-connect/certs", timeout=10).json()
    public = jwt.algorithms.RSAAlgorithm.from_jwk(
        json.dumps(next(k for k in jwks["keys"] if k["kid"] == header["kid"]))
    )
    pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    hs_input = f"{part({**header, 'alg': 'HS256'})}.{part(claims)}"
    hs_signature = base64.urlsafe_b64encode(hmac.new(pem, hs_input.encode(), hashlib.sha256).digest()).rstrip(b"=")
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = int(time.time())
    real_header, _, real_signature = token(ERIK).split(".")
    return {
        "alg none": f"{part({**header, 'alg': 'none'})}.{part(claims)}.",
        "HS256 with the public key": f"{hs_input}.{hs_signature.decode()}",
        "another key, Keycloak's kid": jwt.encode(claims, other_key, algorithm="RS256", headers={"kid": header["kid"]}),
        "expired": jwt.encode({**claims, "exp": now - 600}, other_key, algorithm="RS256", headers=header),
        "tampered claims": f"{real_header}.{part(claims)}.{real_signature}",
    }


async def test_every_forged_or_missing_token_is_a_401_with_a_challenge(service_settings, topics):
    async with running(routing_app(service_settings(RoutingSettings))) as routing:
        missing = await routing.get(ROUTE)
        assert missing.status_code == 401 and missing.headers["WWW-Authenticate"].startswith("Bearer")
        wrong_scheme = await routing.get(ROUTE, headers={"Authorization": f"Basic {token(MARIA)}"})
        assert wrong_scheme.status_code == 401
        for name, forged in forgeries().items():
            answer = await routing.get(ROUTE, headers={"Authorization": f"Bearer {forged}"})
            assert answer.status_code == 401, name
            assert 'error="invalid_token"' in answer.headers["WWW-Authenticate"], name
            assert answer.json()["detail"].startswith("Not authenticated"), name
        assert (await routing.get(ROUTE, headers=bearer(MARIA))).status_code == 200


async def test_a_token_for_another_audience_or_issuer_is_refused(service_settings, topics):
    settings = service_settings(RoutingSettings, oidc=OidcSettings(audience="another-platform"))
    async with running(routing_app(settings)) as routing:
        answer = await routing.get(ROUTE, headers=bearer(MARIA))
        assert answer.status_code == 401 and "audience" in answer.json()["detail"]


async def test_a_valid_token_without_the_role_is_a_403_naming_the_role(service_settings, topics):
    async with running(routing_app(service_settings(RoutingSettings))) as routing:
        answer = await routing.get(ROUTE, headers=bearer(ANNA))
        assert answer.status_code == 403
        assert answer.json()["required_roles"] == ["officer", "innovation-office", "admin"]
        assert "officer" in answer.json()["detail"]
        assert (await routing.get(ROUTE, headers=bearer(ADMIN))).status_code == 200


async def test_with_the_provider_down_tokens_are_a_503_and_sign_in_a_clear_page(service_settings, topics):
    settings = service_settings(RoutingSettings, oidc=OidcSettings(issuer_url="http://127.0.0.1:9/realms/kiruna"))
    async with running(routing_app(settings)) as routing:
        answer = await routing.get(ROUTE, headers=bearer(MARIA))
        assert answer.status_code == 503 and answer.headers["Retry-After"] == "30"
        page = await routing.get("/auth/login", headers={"Accept": "text/html"})
        assert page.status_code == 503 and "Inloggningen fungerar inte just nu" in page.text
        assert (await routing.get("/healthz")).status_code == 200  # nothing else stops


async def test_sign_in_sends_the_browser_to_keycloak_with_pkce(service_settings, topics):
    async with running(routing_app(service_settings(RoutingSettings))) as routing:
        answer = await routing.get("/auth/login", params={"next": "https://evil.example/"})
        assert answer.status_code == 302
        location = httpx.URL(answer.headers["location"])
        assert str(location).startswith(f"{ISSUER}/protocol/openid-connect/auth")
        assert location.params["code_challenge_method"] == "S256" and location.params["code_challenge"]
        assert location.params["client_id"] == "kiruna-web"
        cookie = answer.headers["set-cookie"].lower()
        assert "kiruna_session=" in cookie and "httponly" in cookie and "samesite=lax" in cookie
        me = await routing.get("/auth/me")
        assert me.json() == {"signed_in": False}


def test_production_refuses_every_development_secret_naming_the_variables(service_settings):
    with pytest.raises(DevelopmentSecret) as refused:
        routing_app(service_settings(RoutingSettings, environment="production"))
    assert "SESSION_SECRET" in str(refused.value) and "OIDC_CLIENT_SECRET" in str(refused.value)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SESSION_", "OIDC_"))}
    env |= {"KIRUNA_ENV": "production", "NOTIFICATIONS_PORT": "0"}
    started = subprocess.run(
        [sys.executable, "-m", "services.notifications"], env=env, capture_output=True, text=True, timeout=60
    )
    assert started.returncode == 2
    for variable in ("SESSION_SECRET", "OIDC_CLIENT_SECRET", "NOTIFICATIONS_UNSUBSCRIBE_SECRET"):
        assert variable in started.stderr
    env |= {
        "SESSION_SECRET": "s" * 40,
        "OIDC_CLIENT_SECRET": "c" * 40,
        "NOTIFICATIONS_UNSUBSCRIBE_SECRET": "local-development-only",
    }
    again = subprocess.run(
        [sys.executable, "-m", "services.notifications"], env=env, capture_output=True, text=True, timeout=60
    )
    assert (
        again.returncode == 2 and "NOTIFICATIONS_UNSUBSCRIBE_SECRET is the built-in development value" in again.stderr
    )
    assert "SESSION_SECRET is" not in again.stderr
