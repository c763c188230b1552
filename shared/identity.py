"""Who is acting, for every service's HTTP side: bearer tokens for programs, a signed session cookie for people
in the browser, and the sign-in pages (authorization code + PKCE at the OpenID Connect provider).

Every service mounts the same ``/auth/login``, ``/auth/callback``, ``/auth/logout`` and ``/auth/me`` and reads the
same session cookie (``SESSION_SECRET``), so behind the proxy the four services are one site with one session.
Each service enforces access itself with the dependencies here; the proxy is not the guard.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode, urlsplit

import authlib.deprecate  # noqa: F401  (first: it sets its own warning filter, which the next line overrides)
import httpx
from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.middleware.sessions import SessionMiddleware

from shared.csp import page_policy
from shared.oidc import OidcSettings, ProviderUnavailable, TokenVerifier, Unauthenticated
from shared.principal import Principal, Role

# authlib warns, when it loads its httpx client, about its own move to another package: nothing to act on here
warnings.filterwarnings("ignore", message="The httpx module is deprecated")
from authlib.integrations.base_client.errors import OAuthError  # noqa: E402
from authlib.integrations.starlette_client import OAuth  # noqa: E402

SESSION_COOKIE = "kiruna_session"
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
log = logging.getLogger("identity")


class MissingRole(Exception):
    """403: signed in, but without a role the action needs."""

    def __init__(self, roles: tuple[Role, ...], why: str | None = None) -> None:
        names = " or ".join(r.value for r in roles)
        super().__init__(why or f"this needs the role {names}")
        self.roles = roles


class CrossSiteRequest(Exception):
    """403: a write carried the session cookie but came from another site's page."""


class SignInRequired(Exception):
    """A page for signed-in people, opened without a session: send the person to sign in, then back."""

    def __init__(self, next_url: str) -> None:
        super().__init__(next_url)
        self.next_url = next_url


def safe_next(value: str | None) -> str:
    """Only a path on this site: no scheme, no host, no ``//`` (an open redirect otherwise)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    parts = urlsplit(value)
    return value if not parts.scheme and not parts.netloc else "/"


class Identity:
    """The identity side of one service: token verification, the session and the sign-in routes."""

    def __init__(self, oidc: OidcSettings, *, session_secret: str, session_max_age_s: int, secure_cookie: bool):
        self.oidc = oidc
        self.verifier = TokenVerifier(oidc)
        self.session_secret = session_secret
        self.session_max_age_s = session_max_age_s
        self.secure_cookie = secure_cookie
        self.oauth = OAuth()
        self.oauth.register(
            "kiruna",
            client_id=oidc.client_id,
            client_secret=oidc.client_secret.get_secret_value(),
            server_metadata_url=oidc.issuer_url.rstrip("/") + "/.well-known/openid-configuration",
            client_kwargs={"scope": "openid email profile", "code_challenge_method": "S256", "timeout": oidc.timeout_s},
        )

    # --- who is acting ---------------------------------------------------------------------------------------

    async def principal(self, request: Request) -> Principal | None:
        """The bearer token's principal, else the session's, else None. A bearer token that does not verify is
        a 401 (never silently anonymous); a session write from another site's page is refused."""
        header = request.headers.get("authorization")
        if header is not None:
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise Unauthenticated("send 'Authorization: Bearer <token>'", error="invalid_request")
            return await self.verifier.verify(token.strip())
        session = request.scope.get("session") or {}
        data = session.get("principal")
        if not data or session.get("exp", 0) < time.time():
            return None
        if request.method in UNSAFE and not same_origin(request):
            raise CrossSiteRequest("a write with the session cookie must come from this site's own pages")
        return Principal.from_dict(data)

    async def optional(self, request: Request) -> Principal | None:
        """FastAPI dependency: the principal, or None for an anonymous caller."""
        return await self.principal(request)

    async def required(self, request: Request) -> Principal:
        """FastAPI dependency: the principal, or 401."""
        principal = await self.principal(request)
        if principal is None:
            raise Unauthenticated("sign in, or send 'Authorization: Bearer <token>'", error="invalid_request")
        return principal

    def role(self, *roles: Role) -> Callable[[Request], Awaitable[Principal]]:
        """FastAPI dependency: a principal with one of ``roles``, or 401/403."""

        async def dependency(request: Request) -> Principal:
            principal = await self.required(request)
            if not principal.has(*roles):
                raise MissingRole(roles)
            return principal

        return dependency

    async def page_principal(self, request: Request) -> Principal:
        """For pages of signed-in people: the principal, or off to sign in and back."""
        principal = await self.principal(request)
        if principal is None:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            raise SignInRequired(target)
        return principal

    # --- wiring ----------------------------------------------------------------------------------------------

    def install(self, app: FastAPI) -> None:
        """The session middleware, the sign-in routes and the answers to 401/403/503 of identity."""
        app.add_middleware(
            SessionMiddleware,
            secret_key=self.session_secret,
            session_cookie=SESSION_COOKIE,
            max_age=self.session_max_age_s,
            same_site="lax",
            https_only=self.secure_cookie,
        )
        app.include_router(self.router())

        @app.exception_handler(Unauthenticated)
        async def unauthenticated(_: Request, exc: Unauthenticated) -> JSONResponse:
            challenge = f'Bearer realm="kiruna-innovation", error="{exc.error}", error_description="{exc.detail}"'
            return JSONResponse(
                status_code=401,
                headers={"WWW-Authenticate": challenge.replace("\n", " ")},
                content={"detail": f"Not authenticated: {exc.detail}"},
            )

        @app.exception_handler(MissingRole)
        async def missing_role(_: Request, exc: MissingRole) -> JSONResponse:
            return JSONResponse(
                status_code=403,
                content={"detail": f"Forbidden: {exc}", "required_roles": [r.value for r in exc.roles]},
            )

        @app.exception_handler(CrossSiteRequest)
        async def cross_site(_: Request, exc: CrossSiteRequest) -> JSONResponse:
            return JSONResponse(status_code=403, content={"detail": f"Forbidden: {exc}"})

        @app.exception_handler(ProviderUnavailable)
        async def provider_unavailable(request: Request, exc: ProviderUnavailable) -> Response:
            log.error("identity provider unavailable", extra={"error": str(exc)})
            return unavailable(request)

        @app.exception_handler(SignInRequired)
        async def sign_in(_: Request, exc: SignInRequired) -> RedirectResponse:
            return RedirectResponse("/auth/login?" + urlencode({"next": exc.next_url}), status_code=303)

    def router(self) -> APIRouter:
        router = APIRouter(prefix="/auth", tags=["sign-in"])
        client = self.oauth.create_client("kiruna")

        @router.get(
            "/login",
            summary="Sign in at the identity provider, then back to `next`",
            responses={
                302: {"description": "To the identity provider's sign-in page"},
                503: {"description": "The identity provider is unavailable"},
            },
        )
        async def login(request: Request, next: str = Query("/", max_length=2000)) -> Response:
            request.session["next"] = safe_next(next)
            redirect_uri = str(request.base_url).rstrip("/") + "/auth/callback"
            try:
                return await client.authorize_redirect(request, redirect_uri)
            except (httpx.HTTPError, OAuthError) as exc:
                log.error("identity provider unavailable at sign-in", extra={"error": repr(exc)})
                return unavailable(request)

        @router.get("/callback", include_in_schema=False)
        async def callback(request: Request) -> Response:
            try:
                token = await client.authorize_access_token(request)
                principal = await self.verifier.verify(token["access_token"])
            except (httpx.HTTPError, ProviderUnavailable) as exc:
                log.error("identity provider unavailable at sign-in", extra={"error": repr(exc)})
                return unavailable(request)
            except (OAuthError, Unauthenticated, KeyError) as exc:
                log.warning("sign-in refused", extra={"error": repr(exc)})
                return HTMLResponse(SIGN_IN_FAILED, status_code=400, headers={"Content-Security-Policy": page_policy()})
            next_url = safe_next(request.session.pop("next", "/"))
            request.session.clear()
            request.session.update(
                principal=principal.as_dict(),
                exp=int(time.time()) + self.session_max_age_s,
                id_token=token.get("id_token"),
            )
            log.info("signed in", extra={"roles": sorted(principal.roles)})  # who: in no log (issue 13)
            return RedirectResponse(next_url, status_code=303)

        signed_out = {303: {"description": "To the identity provider's sign-out, then back home"}}

        @router.get("/logout", operation_id="auth_logout_link", summary="Sign out (a link)", responses=signed_out)
        @router.post(
            "/logout",
            operation_id="auth_logout",
            summary="Sign out here and at the identity provider",
            responses=signed_out,
        )
        async def logout(request: Request) -> Response:
            id_token = request.session.get("id_token")
            request.session.clear()
            home = str(request.base_url)
            try:
                metadata = await client.load_server_metadata()
            except (httpx.HTTPError, OAuthError):
                return RedirectResponse(home, status_code=303)
            end = metadata.get("end_session_endpoint")
            if not end:
                return RedirectResponse(home, status_code=303)
            query = {"client_id": self.oidc.client_id, "post_logout_redirect_uri": home}
            if id_token:
                query["id_token_hint"] = id_token
            return RedirectResponse(f"{end}?{urlencode(query)}", status_code=303)

        @router.get("/me", summary="Who is signed in (the session's or the bearer token's person)")
        async def me(request: Request) -> JSONResponse:
            principal = await self.principal(request)
            if principal is None:
                return JSONResponse({"signed_in": False})
            return JSONResponse({"signed_in": True, **principal.as_dict()})

        return router


def same_origin(request: Request) -> bool:
    """The request's Origin (or Referer) is this site: the host the browser addressed, with its port."""
    source = request.headers.get("origin") or request.headers.get("referer")
    if not source:
        return False
    parts = urlsplit(source)
    return bool(parts.netloc) and parts.netloc == request.headers.get("host")


def unavailable(request: Request) -> Response:
    if "text/html" in request.headers.get("accept", ""):
        headers = {"Retry-After": "30", "Content-Security-Policy": page_policy()}
        return HTMLResponse(PROVIDER_DOWN, status_code=503, headers=headers)
    return JSONResponse(
        status_code=503,
        headers={"Retry-After": "30"},
        content={"detail": "The identity provider is unavailable; sign-in cannot be checked. Try again shortly."},
    )


PROVIDER_DOWN = """<!DOCTYPE html>
<html lang="sv"><head><meta charset="utf-8"><title>Inloggningen fungerar inte just nu</title>
<link rel="stylesheet" href="/static/site.css"></head>
<body class="notice">
<h1>Inloggningen fungerar inte just nu</h1>
<p>Vi når inte inloggningstjänsten. Försök igen om en stund. Idéer och statussidor går att läsa som vanligt.</p>
<p lang="en">Sign-in is unavailable right now: the identity provider does not answer. Please try again shortly.
Ideas and status pages can still be read.</p>
<p><a href="/">Till startsidan / Home</a></p>
</body></html>
"""

SIGN_IN_FAILED = """<!DOCTYPE html>
<html lang="sv"><head><meta charset="utf-8"><title>Inloggningen misslyckades</title>
<link rel="stylesheet" href="/static/site.css"></head>
<body class="notice">
<h1>Inloggningen misslyckades</h1>
<p>Inloggningen kunde inte slutföras (den kan ha gått ut). <a href="/auth/login">Försök igen</a>.</p>
<p lang="en">Sign-in could not be completed (it may have expired). <a href="/auth/login">Try again</a>.</p>
</body></html>
"""


def identity_for(settings: Any) -> Identity:
    """The identity side of a service from its settings (``ServiceSettings``)."""
    return Identity(
        settings.oidc,
        session_secret=settings.session_secret.get_secret_value(),
        session_max_age_s=settings.session_max_age_s,
        secure_cookie=settings.environment != "development",
    )
