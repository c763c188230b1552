"""The web form: Swedish at ``/``, English at ``/en``. Works without JavaScript, labels every field, shows each
error next to its field, and is protected against cross-site request forgery by a signed double-submit token.

It offers the open challenges that ask the viewer ("Svarar på utmaning", preselected by ``?challenge=<id>``). Before
it stores a new idea it looks for similar ones (services/intake/similar.py): when there are, the form comes back
with them listed and a button "Skicka ändå" (a hidden ``confirmed=1``), and only the second submit stores the idea.
With JavaScript, static/similar.js shows similar ideas already while the person writes. The idea's status page
(analytics') posts its support, comment and follow forms here (``take_part``)."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from redis.exceptions import RedisError

from services.intake.challenges import open_to
from services.intake.domain import idea_of, person_of
from services.intake.errors import ChallengeClosed, IdempotencyPending, InvalidField
from services.intake.handlers import Intake
from services.intake.models import CommentIn, IdeaIn, NewIdeaIn
from services.intake.pages import Pages, local_time
from services.intake.settings import IntakeSettings
from services.intake.similar import SimilarIdea, SimilarIdeas
from shared.catalogue import display_name
from shared.identity import Identity
from shared.kafka import KafkaUnavailable
from shared.principal import Principal
from shared.static import files_in, serve

STATIC = Path(__file__).parent / "static"
IDEA_ID = re.compile(r"^[0-9a-fA-F-]{36}$")
TAKING_PART = ("support", "comments", "follow")
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
        "f_challenge": "Svarar på utmaning",
        "f_challenge_help": "Välj utmaningen om din idé svarar på den frågan.",
        "no_challenge": "Ingen utmaning",
        "closes": "stänger",
        "challenge_closed": "Utmaningen stängdes {when} och tar inte emot fler idéer.",
        "challenge_unknown": "Den utmaningen finns inte.",
        "similar_title": "Det finns liknande idéer",
        "similar_intro": "Din idé liknar de här. Stöd eller kommentera gärna en av dem i stället – eller skicka "
        "din idé ändå.",
        "similar_live": "Liknande idéer som redan finns",
        "similar_score": "Likhet",
        "similar_shared": "Gemensamma ord",
        "submit_anyway": "Skicka ändå",
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
        "f_challenge": "Answers a challenge",
        "f_challenge_help": "Choose the challenge if your idea answers its question.",
        "no_challenge": "No challenge",
        "closes": "closes",
        "challenge_closed": "The challenge closed on {when} and takes no more ideas.",
        "challenge_unknown": "There is no such challenge.",
        "similar_title": "Similar ideas exist",
        "similar_intro": "Your idea resembles these. Consider supporting or commenting on one of them instead – or "
        "submit yours anyway.",
        "similar_live": "Similar ideas that already exist",
        "similar_score": "Similarity",
        "similar_shared": "Shared words",
        "submit_anyway": "Submit anyway",
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
    "challenge_id": "challenge",
}


def web_router(intake: Intake, identity: Identity, settings: IntakeSettings, similar: SimilarIdeas) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    pages = Pages(settings, sign_out_to=identity.oidc.issuer_url)
    serve(router, "/static/intake", files_in(STATIC))  # the form's stylesheet and script

    async def open_challenges(principal: Principal | None, chosen: str | None) -> list:
        """The open challenges that ask the viewer; none while Redis is away (the form works without them)."""
        try:
            return open_to(await intake.store.challenges(), principal, intake.clock(), chosen=chosen)
        except RedisError as exc:
            intake.logger.warning("challenges unavailable for the form", extra={"error": repr(exc)})
            return []

    async def form(
        request: Request, lang: str, status: int = 200, principal: Principal | None = None, **context: Any
    ) -> HTMLResponse:
        values = context.pop("values", {})
        chosen = values.get("challenge") or context.pop("chosen", None)
        context.pop("chosen", None)
        return pages.render(
            request,
            context.pop("template", "form.html"),
            t=TEXT[lang],
            lang=lang,
            here="/en" if lang == "en" else "/",
            principal=principal,
            status=status,
            anonymous_without_sign_in=settings.anonymous_without_sign_in,
            sign_in_url="/auth/login?" + urlencode({"next": "/en" if lang == "en" else "/"}),
            catalogue=intake.catalogue,
            display_name=display_name,
            challenges=await open_challenges(principal, chosen),
            chosen=chosen,
            values=values,
            errors=context.pop("errors", {}),
            submission_id=context.pop("submission_id", str(uuid.uuid4())),
            **context,
        )

    async def form_page(request: Request, lang: str) -> HTMLResponse:
        chosen = request.query_params.get("challenge")
        chosen = chosen if chosen and IDEA_ID.match(chosen) else None
        return await form(request, lang, principal=await identity.optional(request), chosen=chosen)

    @router.get("/", response_class=HTMLResponse)
    async def form_sv(request: Request) -> HTMLResponse:
        return await form_page(request, "sv")

    @router.get("/en", response_class=HTMLResponse)
    async def form_en(request: Request) -> HTMLResponse:
        return await form_page(request, "en")

    async def similar_to(idea: IdeaIn, submission_id: str, principal: Principal | None) -> list[SimilarIdea]:
        """Similar ideas to show before storing this one: none once the submission was stored (a reload of the
        form must not find the idea itself), none when the index cannot be read (the idea goes in)."""
        try:
            if await intake.answered(f"web:{submission_id}", principal):
                return []
            return await similar.suggest(idea.title, idea.description)
        except RedisError as exc:
            intake.logger.warning("similar ideas unavailable; the idea goes in", extra={"error": repr(exc)})
            return []

    @router.post("/ideas", response_class=HTMLResponse)
    async def submit(request: Request) -> HTMLResponse:
        posted = await request.form()
        values = {key: str(value) for key, value in posted.items() if isinstance(value, str)}
        lang = values.get("lang") if values.get("lang") in TEXT else "sv"
        t = TEXT[lang]
        submission_id = values.get("submission_id") or str(uuid.uuid4())
        principal = await identity.principal(request)
        keep = {"values": values, "submission_id": submission_id, "principal": principal}
        if not pages.valid(request, values.get("csrf_token")):
            return await form(request, lang, 403, alert=t["csrf"], **keep)
        anonymous = values.get("anonymous") == "on"
        if principal is None and not (anonymous and settings.anonymous_without_sign_in):
            why = "sign_in_required" if settings.anonymous_without_sign_in else "sign_in_always"
            return await form(request, lang, 401, errors={"anonymous": t[why]}, **keep)
        raw: dict[str, Any] = {
            "title": values.get("title", ""),
            "description": values.get("description", ""),
            "anonymous": anonymous,
            "channel": "web",
            "language": lang,
            "area_hints": [values["area"]] if values.get("area") else [],
            "organisation_hints": [values["organisation"]] if values.get("organisation") else [],
            "challenge_id": values.get("challenge") or None,
        }
        try:
            idea = idea_of(NewIdeaIn.model_validate(raw), principal, intake.catalogue)
            intake.check_hints(idea)
            await intake.answering_challenge(idea)  # a closed challenge is said before anything else
            if values.get("confirmed") != "1":
                found = await similar_to(idea, submission_id, principal)
                if found:
                    return await form(request, lang, 200, similar=found, **keep)
            accepted = await intake.submit(idea, idempotency_key=f"web:{submission_id}", principal=principal)
        except ValidationError as exc:
            return await form(request, lang, 422, errors=form_errors(exc, lang), **keep)
        except ChallengeClosed as exc:
            closed = t["challenge_closed"].format(when=local_time(exc.closed_at))
            return await form(request, lang, 409, errors={"challenge": closed}, **keep)
        except InvalidField as exc:
            if exc.field.startswith("submitter"):  # a sign-in without an e-mail address: the idea cannot be theirs
                return await form(request, lang, 422, errors={"anonymous": t["no_email"]}, **keep)
            if exc.field == "challenge_id":
                return await form(request, lang, 422, errors={"challenge": t["challenge_unknown"]}, **keep)
            field = FIELD_OF.get(exc.field, "title")
            return await form(request, lang, 422, errors={field: MESSAGES[lang]["unknown"]}, **keep)
        except (KafkaUnavailable, RedisError, TimeoutError, IdempotencyPending):  # pending: the same form, sent twice
            return await form(request, lang, 503, alert=t["unavailable"], **keep)
        return await form(request, lang, 201, template="receipt.html", accepted=accepted, principal=principal)

    def taking_part(action: str):
        async def take_part(request: Request, idea_id: str) -> Response:
            """Support, comment on (as "anonym" if asked) or follow an idea from its status page (a form post with
            the session)."""
            if not IDEA_ID.match(idea_id):
                return HTMLResponse("Not found", status_code=404)
            principal = await identity.page_principal(request)
            person = person_of(principal, intake.catalogue)
            back = f"{'/en' if request.url.path.startswith('/en/') else ''}/ideas/{idea_id}"
            if action == "support":
                await intake.support(idea_id, person)
            elif action == "follow":
                await intake.follow(idea_id, person)
            else:
                posted = await request.form()
                text = posted.get("text")
                try:
                    comment = CommentIn(
                        text=text if isinstance(text, str) else "", anonymous=posted.get("anonymous") == "on"
                    )
                except ValidationError:
                    return RedirectResponse(f"{back}?comment=invalid#take-part", status_code=303)
                await intake.comment(idea_id, person, comment, principal=principal)
            return RedirectResponse(f"{back}?done={action}#take-part", status_code=303)

        return take_part

    for lang_prefix in ("", "/en"):
        for action in TAKING_PART:
            path = f"{lang_prefix}/ideas/{{idea_id}}/{action}"
            router.add_api_route(path, taking_part(action), methods=["POST"], response_class=HTMLResponse)

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
