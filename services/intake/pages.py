"""What intake's pages share: the CSRF guard of their form posts, and rendering a template with the site's header,
a fresh CSRF token and the pages' security headers (shared/csp.py: no inline script or style; never framed)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import Request, Response
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from services.intake.settings import IntakeSettings
from shared import csp
from shared.principal import Principal
from shared.site import site_header

CSRF_COOKIE = "kiruna_csrf"
TEMPLATES = Path(__file__).parent / "templates"
STOCKHOLM = ZoneInfo("Europe/Stockholm")


class CsrfGuard:
    """A signed double-submit token: a random cookie, and in the form the cookie signed with the server's secret.
    Intake's form posts (the idea form, "Mina uppgifter") share the cookie and the secret (``INTAKE_FORM_SECRET``)."""

    def __init__(self, secret: str, *, secure_cookie: bool = True) -> None:
        self._key = secret.encode()
        self.secure_cookie = secure_cookie

    def issue(self, cookie: str | None) -> tuple[str, str]:
        """(cookie value, form token) — the token is the cookie value signed with the server's secret."""
        cookie = cookie or secrets.token_urlsafe(24)
        return cookie, hmac.new(self._key, cookie.encode(), hashlib.sha256).hexdigest()

    def valid(self, cookie: str | None, token: str | None) -> bool:
        if not cookie or not token:
            return False
        expected = hmac.new(self._key, cookie.encode(), hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, token)

    def set_cookie(self, response: Response, cookie: str) -> None:
        response.set_cookie(
            CSRF_COOKIE, cookie, httponly=True, samesite="strict", max_age=8 * 3600, secure=self.secure_cookie
        )


def csrf_guard(settings: IntakeSettings) -> CsrfGuard:
    """Intake's guard of its form posts (the same for every page, so that one cookie serves them all)."""
    return CsrfGuard(settings.form_secret.get_secret_value(), secure_cookie=settings.environment != "development")


class Pages:
    """Renders intake's templates: ``t`` (the page's texts), ``lang``, ``prefix`` ("" or "/en"), ``header``,
    ``principal``, ``csrf_token`` and ``local`` (a time as Kiruna reads it) besides what each page passes."""

    def __init__(self, settings: IntakeSettings, *, sign_out_to: str) -> None:
        self.csrf = csrf_guard(settings)
        self.policy = csp.page_policy(sign_out_to=sign_out_to)
        self.templates = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]))
        self.retry_after_s = settings.retry_after_s

    def valid(self, request: Request, token: object) -> bool:
        """Whether a form post carries the CSRF token of its cookie."""
        return self.csrf.valid(request.cookies.get(CSRF_COOKIE), token if isinstance(token, str) else None)

    def render(
        self,
        request: Request,
        template: str,
        *,
        t: dict[str, Any],
        lang: str,
        here: str,
        principal: Principal | None,
        status: int = 200,
        **context: Any,
    ) -> HTMLResponse:
        cookie, token = self.csrf.issue(request.cookies.get(CSRF_COOKIE))
        page = self.templates.get_template(template).render(
            t=t,
            lang=lang,
            prefix="/en" if lang == "en" else "",
            header=site_header(principal, lang, here),
            principal=principal,
            csrf_token=token,
            local=local_time,
            **context,
        )
        response = HTMLResponse(page, status_code=status)
        self.csrf.set_cookie(response, cookie)
        response.headers[csp.HEADER] = self.policy
        response.headers["X-Frame-Options"] = "DENY"
        if status == 503:
            response.headers["Retry-After"] = str(self.retry_after_s)
        return response


def local_time(moment: datetime) -> str:
    """A moment as people in Kiruna read it: 2025-06-30 23:59."""
    return moment.astimezone(STOCKHOLM).strftime("%Y-%m-%d %H:%M")
