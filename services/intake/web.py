"""The web form: Swedish at ``/``, English at ``/en``. Works without JavaScript, labels every field, shows each
error next to its field, and is protected against cross-site request forgery by a signed double-submit token."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import ValidationError
from redis.exceptions import RedisError

from services.intake.domain import idea_of, person_of
from services.intake.errors import IdempotencyPending, InvalidField
from services.intake.handlers import Intake
from services.intake.models import CommentIn, NewIdeaIn
from services.intake.settings import IntakeSettings
from shared import csp
from shared.catalogue import display_name
from shared.identity import Identity
from shared.kafka import KafkaUnavailable
from shared.principal import Principal
from shared.site import site_header
from shared.static import files_in, serve

CSRF_COOKIE = "kiruna_csrf"
STATIC = Path(__file__).parent / "static"
IDEA_ID = re.compile(r"^[0-9a-fA-F-]{36}$")
TEXT = {
    "sv": {
        "lang": "sv",
        "other": "/en",
        "other_name": "English",
        "title": "Lämna en idé",
        "intro": "Har du en idé som gör ditt arbete eller Kiruna bättre? Beskriv den här, så ser vi till att den "
        "når dem som kan göra något av den. Du får veta vad som händer med din idé.",
        "f_title": "Rubrik",
        "f_title_help": "3–200 tecken",
        "f_description": "Beskriv idén",
        "f_description_help": "Högst 10 000 tecken",
        "f_area": "Område (valfritt)",
        "f_org": "Vilken organisation gäller det? (valfritt)",
        "none": "Vet inte",
        "f_anonymous": "Lämna idén anonymt (inga personuppgifter sparas, och vi kan inte svara dig)",
        "about_you": "Om dig",
        "sending_as": "Du lämnar idén som",
        "sign_in_to_name": "Logga in för att lämna idén i ditt namn och få veta vad som händer med den.",
        "sign_in": "Logga in",
        "anonymous_only": "Utan inloggning kan du bara lämna en idé anonymt.",
        "sign_in_required": "Logga in för att lämna en idé i ditt namn, eller välj att lämna den anonymt.",
        "sign_in_always": "Logga in för att lämna en idé.",
        "no_email": "Din inloggning har ingen e-postadress, så idén kan inte lämnas i ditt namn. Lämna den anonymt.",
        "submit": "Skicka idén",
        "errors": "Något behöver rättas:",
        "receipt_title": "Tack för din idé!",
        "receipt": "Din idé är mottagen och sparad. Följ den här:",
        "receipt_id": "Idéns nummer",
        "again": "Lämna en idé till",
        "unavailable": "Vi kan inte ta emot idéer just nu. Ingenting sparades. Försök igen om en stund.",
        "csrf": "Formuläret hade gått ut. Skicka det igen.",
    },
    "en": {
        "lang": "en",
        "other": "/",
        "other_name": "Svenska",
        "title": "Submit an idea",
        "intro": "Do you have an idea that would make your work or Kiruna better? Describe it here and we will make "
        "sure it reaches the people who can act on it. You will hear what happens to it.",
        "f_title": "Title",
        "f_title_help": "3–200 characters",
        "f_description": "Describe the idea",
        "f_description_help": "At most 10,000 characters",
        "f_area": "Area (optional)",
        "f_org": "Which organisation does it concern? (optional)",
        "none": "Don't know",
        "f_anonymous": "Submit anonymously (no personal data is kept, and we cannot reply to you)",
        "about_you": "About you",
        "sending_as": "You submit the idea as",
        "sign_in_to_name": "Sign in to submit the idea in your name and hear what happens to it.",
        "sign_in": "Sign in",
        "anonymous_only": "Without signing in you can only submit an idea anonymously.",
        "sign_in_required": "Sign in to submit an idea in your name, or choose to submit it anonymously.",
        "sign_in_always": "Sign in to submit an idea.",
        "no_email": "Your sign-in has no e-mail address, so the idea cannot be submitted in your name. Submit it "
        "anonymously.",
        "submit": "Send the idea",
        "errors": "Please correct the following:",
        "receipt_title": "Thank you for your idea!",
        "receipt": "Your idea has been received and stored. Follow it here:",
        "receipt_id": "Idea number",
        "again": "Submit another idea",
        "unavailable": "We cannot receive ideas right now. Nothing was stored. Please try again in a moment.",
        "csrf": "The form had expired. Please send it again.",
    },
}
MESSAGES = {
    "sv": {
        "string_too_short": "Måste ha minst {min_length} tecken.",
        "string_too_long": "Får ha högst {max_length} tecken.",
        "missing": "Måste fyllas i.",
        "unknown": "Okänt val.",
    },
    "en": {
        "string_too_short": "Must have at least {min_length} characters.",
        "string_too_long": "May have at most {max_length} characters.",
        "missing": "Required.",
        "unknown": "Unknown choice.",
    },
}
FIELD_OF = {
    "title": "title",
    "description": "description",
    "area_hints.0": "area",
    "organisation_hints.0": "organisation",
}


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


def web_router(intake: Intake, identity: Identity, settings: IntakeSettings) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    templates = Environment(
        loader=FileSystemLoader(Path(__file__).parent / "templates"), autoescape=select_autoescape(["html"])
    )
    csrf = csrf_guard(settings)
    policy = csp.page_policy(sign_out_to=identity.oidc.issuer_url)  # shared/csp.py: no inline script or style
    serve(router, "/static/intake", files_in(STATIC))  # the form's stylesheet

    def render(
        request: Request,
        lang: str,
        template: str,
        status: int = 200,
        principal: Principal | None = None,
        **context: Any,
    ) -> HTMLResponse:
        cookie, token = csrf.issue(request.cookies.get(CSRF_COOKIE))
        here = "/en" if lang == "en" else "/"
        page = templates.get_template(template).render(
            t=TEXT[lang],
            lang=lang,
            header=site_header(principal, lang, here),
            principal=principal,
            anonymous_without_sign_in=settings.anonymous_without_sign_in,
            sign_in_url="/auth/login?" + urlencode({"next": here}),
            csrf_token=token,
            catalogue=intake.catalogue,
            display_name=display_name,
            values=context.pop("values", {}),
            errors=context.pop("errors", {}),
            submission_id=context.pop("submission_id", str(uuid.uuid4())),
            **context,
        )
        response = HTMLResponse(page, status_code=status)
        csrf.set_cookie(response, cookie)
        response.headers[csp.HEADER] = policy
        response.headers["X-Frame-Options"] = "DENY"
        return response

    @router.get("/", response_class=HTMLResponse)
    async def form_sv(request: Request) -> HTMLResponse:
        return render(request, "sv", "form.html", principal=await identity.optional(request))

    @router.get("/en", response_class=HTMLResponse)
    async def form_en(request: Request) -> HTMLResponse:
        return render(request, "en", "form.html", principal=await identity.optional(request))

    @router.post("/ideas", response_class=HTMLResponse)
    async def submit(request: Request) -> HTMLResponse:
        form = await request.form()
        values = {key: str(value) for key, value in form.items() if isinstance(value, str)}
        lang = values.get("lang") if values.get("lang") in TEXT else "sv"
        submission_id = values.get("submission_id") or str(uuid.uuid4())
        principal = await identity.principal(request)
        keep = {"values": values, "submission_id": submission_id, "principal": principal}
        if not csrf.valid(request.cookies.get(CSRF_COOKIE), values.get("csrf_token")):
            return render(request, lang, "form.html", 403, alert=TEXT[lang]["csrf"], **keep)
        anonymous = values.get("anonymous") == "on"
        if principal is None and not (anonymous and settings.anonymous_without_sign_in):
            why = "sign_in_required" if settings.anonymous_without_sign_in else "sign_in_always"
            return render(request, lang, "form.html", 401, errors={"anonymous": TEXT[lang][why]}, **keep)
        raw: dict[str, Any] = {
            "title": values.get("title", ""),
            "description": values.get("description", ""),
            "anonymous": anonymous,
            "channel": "web",
            "language": lang,
            "area_hints": [values["area"]] if values.get("area") else [],
            "organisation_hints": [values["organisation"]] if values.get("organisation") else [],
        }
        try:
            idea = idea_of(NewIdeaIn.model_validate(raw), principal, intake.catalogue)
            accepted = await intake.submit(idea, idempotency_key=f"web:{submission_id}", principal=principal)
        except ValidationError as exc:
            return render(request, lang, "form.html", 422, errors=form_errors(exc, lang), **keep)
        except InvalidField as exc:
            if exc.field.startswith("submitter"):  # a sign-in without an e-mail address: the idea cannot be theirs
                return render(request, lang, "form.html", 422, errors={"anonymous": TEXT[lang]["no_email"]}, **keep)
            field = FIELD_OF.get(exc.field, "title")
            return render(request, lang, "form.html", 422, errors={field: MESSAGES[lang]["unknown"]}, **keep)
        except (KafkaUnavailable, RedisError, TimeoutError, IdempotencyPending):  # pending: the same form, sent twice
            response = render(request, lang, "form.html", 503, alert=TEXT[lang]["unavailable"], **keep)
            response.headers["Retry-After"] = str(settings.retry_after_s)
            return response
        return render(request, lang, "receipt.html", 201, accepted=accepted, principal=principal)

    for lang_prefix in ("", "/en"):

        @router.post(lang_prefix + "/ideas/{idea_id}/{action}", response_class=HTMLResponse)
        async def take_part(request: Request, idea_id: str, action: str) -> Response:
            """Support, comment on or follow an idea from its status page (a form post with the session)."""
            if action not in ("support", "comments", "follow") or not IDEA_ID.match(idea_id):
                return HTMLResponse("Not found", status_code=404)
            principal = await identity.page_principal(request)
            person = person_of(principal, intake.catalogue)
            back = f"{'/en' if request.url.path.startswith('/en/') else ''}/ideas/{idea_id}"
            if action == "support":
                await intake.support(idea_id, person)
            elif action == "follow":
                await intake.follow(idea_id, person)
            else:
                form = await request.form()
                text = form.get("text")
                try:
                    comment = CommentIn(text=text if isinstance(text, str) else "")
                except ValidationError:
                    return RedirectResponse(f"{back}?comment=invalid#take-part", status_code=303)
                await intake.comment(idea_id, person, comment)
            return RedirectResponse(f"{back}?done={action}#take-part", status_code=303)

    return router


def form_errors(exc: ValidationError, lang: str) -> dict[str, str]:
    """Each error under the form field it belongs to, in the page's language."""
    messages = MESSAGES[lang]
    errors: dict[str, str] = {}
    for error in exc.errors():
        loc = ".".join(str(p) for p in error["loc"])
        field = FIELD_OF.get(loc, "title")
        message = messages.get(error["type"], str(error.get("msg", ""))).format(**error.get("ctx", {}))
        errors.setdefault(field, message)
    return errors
