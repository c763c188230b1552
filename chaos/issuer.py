"""A tiny OpenID Connect issuer of the harness's own: discovery and a JWKS over HTTP on 127.0.0.1, and RS256 access
tokens minted here for as many people as the load needs.

Keycloak's password grant costs ~50 ms of its CPU per token; the suite needs 2,000 distinct submitters on a machine
it shares with what it measures. The services verify these tokens with their one verifier (shared/oidc.py) exactly
as they verify Keycloak's: the issuer, the audience and the claims are those of the local realm
(deploy/keycloak/realm.py: ``preferred_username``, ``email``, ``name``, ``org``, ``unit``, ``roles``)."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

AUDIENCE = "kiruna-innovation"  # OidcSettings.audience's default, the realm's audience mapper
KEY_ID = "chaos-1"


@dataclass(frozen=True)
class Person:
    """A submitter of the load: one per idea, so that "exactly one mail each" can be counted per person."""

    number: int

    @property
    def username(self) -> str:
        return f"chaos.person{self.number:04d}"

    @property
    def email(self) -> str:
        return f"{self.username}@kiruna.se"

    @property
    def name(self) -> str:
        return f"Chaos Person {self.number:04d}"


def claims_for(person: Person, issuer: str, now: float, lifetime_s: int) -> dict[str, Any]:
    """The claims of an employee's access token as the local realm issues them."""
    issued = int(now)
    return {
        "iss": issuer,
        "aud": AUDIENCE,
        "sub": f"chaos-{person.number:04d}",
        "iat": issued,
        "nbf": issued,
        "exp": issued + lifetime_s,
        "preferred_username": person.username,
        "email": person.email,
        "name": person.name,
        "org": "kiruna-kommun",
        "unit": "kommunledning",
        "roles": ["employee"],
    }


class Issuer:
    """The signing key, the documents the verifier fetches, and the tokens."""

    def __init__(self, url: str, key: rsa.RSAPrivateKey | None = None) -> None:
        self.url = url.rstrip("/")
        self.key = key or rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.url,
            "jwks_uri": f"{self.url}/certs",
            "authorization_endpoint": f"{self.url}/auth",
            "token_endpoint": f"{self.url}/token",
            "id_token_signing_alg_values_supported": ["RS256"],
        }

    def jwks(self) -> dict[str, Any]:
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        return {"keys": [{**jwk, "kid": KEY_ID, "alg": "RS256", "use": "sig"}]}

    def token(self, person: Person, *, lifetime_s: int = 4 * 3600, now: float | None = None) -> str:
        claims = claims_for(person, self.url, time.time() if now is None else now, lifetime_s)
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": KEY_ID})


class IssuerServer:
    """The issuer's two documents over HTTP, served from a thread of the harness (a few requests per service)."""

    def __init__(self, port: int) -> None:
        self.issuer = Issuer(f"http://127.0.0.1:{port}")
        documents = {"/.well-known/openid-configuration": self.issuer.discovery(), "/certs": self.issuer.jwks()}

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                document = documents.get(self.path.split("?")[0])
                body = json.dumps(document).encode() if document else b'{"error": "not found"}'
                self.send_response(200 if document else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, name="chaos-issuer", daemon=True)

    def __enter__(self) -> Issuer:
        self.thread.start()
        return self.issuer

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
