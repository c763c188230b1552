"""Verifying who is acting: bearer tokens from the OpenID Connect provider (locally Keycloak, in production the
group's own), turned into one :class:`Principal`. One verifier for every service.

- The provider is found by OIDC discovery from ``OIDC_ISSUER_URL``; its signing keys (JWKS) are cached and fetched
  again when a token names an unknown key id, at most once per ``OIDC_JWKS_REFRESH_S`` (a flood of made-up key
  ids does not hammer the provider).
- Only the provider's asymmetric algorithms are accepted, each key with its own (no ``none``, no HS256 signed
  with a public key); ``iss``, ``aud``, ``exp`` and ``nbf`` are checked with a small leeway.
- When the provider is down, tokens signed with keys already cached keep working until they expire.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from typing import Any

import httpx
import jwt
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.principal import Principal, Role

ASYMMETRIC = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA", "Ed25519"}
)
LOCAL_WEB_CLIENT_SECRET = "kiruna-web-local-secret"  # the local realm's (deploy/keycloak/kiruna-realm.json)


class OidcSettings(BaseSettings):
    """The identity provider. Environment names start with ``OIDC_``; claim names map another provider's tokens
    (Microsoft Entra ID, say) onto the platform's principal."""

    model_config = SettingsConfigDict(env_prefix="OIDC_", extra="ignore")

    issuer_url: str = Field(
        "http://127.0.0.1:8180/realms/kiruna", description="The provider's issuer; discovery at <issuer>/.well-known"
    )
    audience: str = Field("kiruna-innovation", description="The audience every token must name")
    client_id: str = Field("kiruna-web", description="Client of the pages' sign-in (authorization code + PKCE)")
    client_secret: SecretStr = Field(SecretStr(LOCAL_WEB_CLIENT_SECRET), description="That client's secret")
    leeway_s: int = Field(30, ge=0, le=300, description="Clock skew allowed on exp/nbf/iat")
    jwks_refresh_s: float = Field(30.0, ge=1, description="Least time between two JWKS fetches for unknown keys")
    verified_cache_s: float = Field(
        60.0, ge=0, description="How long a verified token is remembered (never past its expiry); 0: verify every time"
    )
    verified_cache_size: int = Field(10_000, ge=1, description="Verified tokens remembered at most")
    timeout_s: float = Field(5.0, gt=0, description="How long a call to the provider may take")
    claim_id: str = Field("preferred_username", description="Claim with the person's id (officers: catalogue id)")
    claim_email: str = "email"
    claim_name: str = "name"
    claim_organisation: str = "org"
    claim_unit: str = "unit"
    claim_roles: str = Field("roles", description="Claim with a list of roles (employee, officer, ...)")


class Unauthenticated(Exception):
    """401: no token, or one that does not verify. ``error`` is the RFC 6750 code."""

    def __init__(self, detail: str, error: str = "invalid_token") -> None:
        super().__init__(detail)
        self.detail, self.error = detail, error


class ProviderUnavailable(Exception):
    """503: the identity provider cannot be reached and nothing cached can answer."""


class TokenVerifier:
    def __init__(self, settings: OidcSettings, http: httpx.AsyncClient | None = None) -> None:
        self.settings = settings
        self._http = http
        self._metadata: dict[str, Any] | None = None
        self._keys: dict[str, jwt.PyJWK] = {}
        self._last_fetch = float("-inf")
        self._lock = asyncio.Lock()
        self._verified: OrderedDict[str, tuple[Principal, float]] = OrderedDict()

    @property
    def http(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=self.settings.timeout_s)
        return self._http

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()

    async def metadata(self) -> dict[str, Any]:
        """The provider's discovery document (cached once read)."""
        if self._metadata is None:
            url = self.settings.issuer_url.rstrip("/") + "/.well-known/openid-configuration"
            try:
                answer = await self.http.get(url)
                answer.raise_for_status()
            except httpx.HTTPError as exc:
                raise ProviderUnavailable(f"the identity provider does not answer at {url}: {exc!r}") from exc
            self._metadata = answer.json()
        return self._metadata

    async def _refresh_keys(self) -> None:
        async with self._lock:
            if time.monotonic() - self._last_fetch < self.settings.jwks_refresh_s:
                return
            self._last_fetch = time.monotonic()
            metadata = await self.metadata()
            try:
                answer = await self.http.get(metadata["jwks_uri"])
                answer.raise_for_status()
            except httpx.HTTPError as exc:
                raise ProviderUnavailable(f"the identity provider's keys cannot be fetched: {exc!r}") from exc
            keys = {}
            for jwk in answer.json().get("keys", []):
                if jwk.get("use", "sig") != "sig" or "kid" not in jwk:
                    continue
                try:
                    key = jwt.PyJWK(jwk)
                except jwt.PyJWTError:
                    continue  # a key type this platform does not use
                if key.algorithm_name in ASYMMETRIC:
                    keys[jwk["kid"]] = key
            self._keys = keys

    async def _key_for(self, kid: str) -> jwt.PyJWK:
        if kid not in self._keys:
            await self._refresh_keys()
        if kid not in self._keys:
            raise Unauthenticated("the token is signed with a key the identity provider does not publish")
        return self._keys[kid]

    async def verify(self, token: str) -> Principal:
        """The token's principal. A token verified in the last ``OIDC_VERIFIED_CACHE_S`` (and not expired) is not
        checked again: a client sends the same token with every request, and the RSA check is most of a request's
        CPU (make bench: intake's accepted ideas per second)."""
        remembered = self._verified.get(token)
        if remembered is not None and remembered[1] > time.time():
            return remembered[0]
        principal, expires = await self._verify(token)
        if self.settings.verified_cache_s > 0:
            self._verified[token] = (principal, min(expires, time.time() + self.settings.verified_cache_s))
            if len(self._verified) > self.settings.verified_cache_size:
                self._verified.popitem(last=False)
        return principal

    async def _verify(self, token: str) -> tuple[Principal, float]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise Unauthenticated(f"not a JSON Web Token ({exc})") from exc
        algorithm = header.get("alg")
        if algorithm not in ASYMMETRIC:
            accepted = ", ".join(sorted(ASYMMETRIC))
            raise Unauthenticated(f"algorithm {algorithm!r} is not accepted (only the provider's: {accepted})")
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise Unauthenticated("the token names no key id (kid)")
        key = await self._key_for(kid)
        if key.algorithm_name != algorithm:
            raise Unauthenticated(f"algorithm {algorithm!r} does not match the key's {key.algorithm_name!r}")
        metadata = await self.metadata()
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[key.algorithm_name],
                audience=self.settings.audience,
                issuer=metadata.get("issuer", self.settings.issuer_url),
                leeway=self.settings.leeway_s,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthenticated("the token has expired") from exc
        except jwt.ImmatureSignatureError as exc:
            raise Unauthenticated("the token is not yet valid (nbf/iat in the future)") from exc
        except jwt.InvalidAudienceError as exc:
            raise Unauthenticated(f"the token's audience is not '{self.settings.audience}'") from exc
        except jwt.InvalidIssuerError as exc:
            raise Unauthenticated(f"the token's issuer is not '{metadata.get('issuer')}'") from exc
        except jwt.PyJWTError as exc:
            raise Unauthenticated(f"the token does not verify: {exc}") from exc
        return self.principal(claims), float(claims["exp"])

    def principal(self, claims: dict[str, Any]) -> Principal:
        s = self.settings
        person = claims.get(s.claim_id) or claims.get("sub")
        if not person:
            raise Unauthenticated(f"the token carries neither '{s.claim_id}' nor 'sub'")
        raw_roles = claims.get(s.claim_roles) or []
        if isinstance(raw_roles, str):
            raw_roles = raw_roles.split()
        roles = {Role(r) for r in raw_roles if r in Role._value2member_map_}
        roles.add(Role.EMPLOYEE)  # every signed-in person of the group is an employee
        email = claims.get(s.claim_email)
        return Principal(
            id=str(person),
            email=str(email).lower() if email else None,
            name=claims.get(s.claim_name),
            organisation=claims.get(s.claim_organisation),
            unit=claims.get(s.claim_unit),
            roles=frozenset(roles),
            subject=claims.get("sub"),
        )
