"""Officers are authenticated by bearer tokens (JWT): HS256 with a local secret for development, RS256 from a
real identity provider's JWKS. The token carries the person, their organisation and their role."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from enum import StrEnum
from functools import cached_property

import jwt
from fastapi import HTTPException, Request

from services.intake.settings import IntakeSettings


class Role(StrEnum):
    OFFICER = "officer"
    INNOVATION_OFFICE = "innovation-office"
    ADMIN = "admin"


@dataclass(frozen=True)
class Officer:
    id: str
    organisation: str
    role: Role
    name: str | None = None

    def may_act_on(self, organisations: set[str]) -> bool:
        """Officers act on ideas routed to their organisation; the innovation office and admins on any."""
        return self.role in (Role.INNOVATION_OFFICE, Role.ADMIN) or self.organisation in organisations


class Unauthorised(HTTPException):
    def __init__(self, why: str) -> None:
        super().__init__(
            401, detail=f"Not authenticated: {why}", headers={"WWW-Authenticate": 'Bearer realm="kiruna-innovation"'}
        )


class TokenVerifier:
    def __init__(self, settings: IntakeSettings) -> None:
        self.settings = settings

    @cached_property
    def _jwks(self) -> jwt.PyJWKClient | None:
        return jwt.PyJWKClient(self.settings.jwt_jwks_url) if self.settings.jwt_jwks_url else None

    async def verify(self, token: str) -> Officer:
        settings = self.settings
        try:
            if self._jwks is not None:
                signing_key = (await asyncio.to_thread(self._jwks.get_signing_key_from_jwt, token)).key
                algorithms = ["RS256"]
            else:
                signing_key = settings.jwt_secret.get_secret_value()
                algorithms = ["HS256"]
            claims = jwt.decode(
                token,
                signing_key,
                algorithms=algorithms,
                issuer=settings.jwt_issuer,
                audience=settings.jwt_audience,
                options={"require": ["exp", "sub"]},
            )
        except jwt.PyJWTError as exc:
            raise Unauthorised(f"invalid token ({exc})") from exc
        try:
            return Officer(
                id=str(claims["sub"]),
                organisation=str(claims["org"]),
                role=Role(claims["role"]),
                name=claims.get("name"),
            )
        except (KeyError, ValueError) as exc:
            raise Unauthorised(
                "the token must carry 'org' and a 'role' of officer, innovation-office or admin"
            ) from exc

    async def __call__(self, request: Request) -> Officer:
        """FastAPI dependency: the officer behind the request's bearer token, or 401."""
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorised("send 'Authorization: Bearer <token>'")
        return await self.verify(token.strip())


def mint_token(
    settings: IntakeSettings, *, sub: str, org: str, role: Role, name: str | None = None, hours: float = 8.0
) -> str:
    """A locally signed (HS256) token, for development and tests."""
    import time

    now = int(time.time())
    claims = {
        "sub": sub,
        "org": org,
        "role": role.value,
        "iat": now,
        "exp": now + int(hours * 3600),
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
    }
    if name:
        claims["name"] = name
    return jwt.encode(claims, settings.jwt_secret.get_secret_value(), algorithm="HS256")
