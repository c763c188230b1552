"""The page where an officer opens a challenge (issue 18): ``/challenges/new`` in Swedish, ``/en/challenges/new`` in
English. Signed-in officers only (others are sent to sign in, or told that it takes an officer); without
JavaScript; every field labelled, each error next to its field; CSRF-protected as the idea form is; the same
submission sent twice opens one challenge. On success a receipt links to the challenge's page (analytics')."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError
from redis.exceptions import RedisError

from services.intake.errors import Forbidden, InvalidField
from services.intake.handlers import Intake
from services.intake.models import ChallengeIn
from services.intake.pages import Pages
from services.intake.settings import IntakeSettings
from services.intake.store import IdempotencyMismatch
from shared.catalogue import TRIAGE_ORGANISATION, display_name
from shared.identity import Identity
from shared.kafka import KafkaUnavailable
from shared.principal import Principal

TEXT = {
    "sv": {
        "title": "Öppna en utmaning",
        "other": "/en/challenges/new",
        "other_name": "English",
        "intro": "Ställ en fråga till medarbetarna och samla idéer fram till ett sista datum. Utmaningen visas i "
        "idéformuläret för dem du frågar och stänger av sig själv.",
        "officers_only": "Bara handläggare (för sin organisation) och innovationskontoret (för hela koncernen) kan "
        "öppna utmaningar.",
        "f_question": "Frågan",
        "f_question_help": "10–300 tecken, t.ex. ”Hur minskar vi energianvändningen i våra lokaler?”",
        "f_description": "Beskrivning (valfritt)",
        "f_description_help": "Vad vill ni veta? Högst 5 000 tecken.",
        "f_audience": "Vem frågar du?",
        "f_audience_help_officer": "Inget val: hela {organisation}.",
        "f_audience_help_group": "Inget val: alla i koncernen.",
        "whole": "hela organisationen",
        "f_areas": "Områden (valfritt)",
        "f_closes_at": "Sista dag för idéer",
        "f_closes_at_help": "Utmaningen stänger när dagen är slut.",
        "f_language": "Frågans språk",
        "sv": "Svenska",
        "en": "Engelska",
        "asking_as": "Du frågar för",
        "submit": "Öppna utmaningen",
        "errors": "Något behöver rättas:",
        "receipt_title": "Utmaningen är öppen",
        "receipt": "Utmaningen är öppnad och sparad. Den tar emot idéer till",
        "receipt_link": "Se utmaningen",
        "again": "Öppna en utmaning till",
        "unavailable": "Vi kan inte spara utmaningar just nu. Ingenting sparades. Försök igen om en stund.",
        "csrf": "Formuläret hade gått ut. Skicka det igen.",
        "sent_before": "Det här formuläret har redan skickats med andra uppgifter. Kontrollera och skicka igen.",
        "past": "Datumet har redan passerat.",
        "not_a_date": "Ange ett datum (ÅÅÅÅ-MM-DD).",
        "outside": "Du kan bara fråga din egen organisation.",
        "unknown": "Okänt val.",
        "too_short": "Måste ha minst {min_length} tecken.",
        "too_long": "Får ha högst {max_length} tecken.",
        "missing": "Måste fyllas i.",
    },
    "en": {
        "title": "Open a challenge",
        "other": "/challenges/new",
        "other_name": "Svenska",
        "intro": "Ask the staff a question and collect ideas until a closing date. The challenge is shown on the "
        "idea form to those you ask, and closes by itself.",
        "officers_only": "Only officers (for their organisation) and the innovation office (for the whole group) "
        "can open challenges.",
        "f_question": "The question",
        "f_question_help": "10–300 characters, e.g. “How do we use less energy in our buildings?”",
        "f_description": "Description (optional)",
        "f_description_help": "What do you want to know? At most 5,000 characters.",
        "f_audience": "Whom do you ask?",
        "f_audience_help_officer": "Nothing chosen: all of {organisation}.",
        "f_audience_help_group": "Nothing chosen: everyone in the group.",
        "whole": "the whole organisation",
        "f_areas": "Areas (optional)",
        "f_closes_at": "Last day for ideas",
        "f_closes_at_help": "The challenge closes at the end of that day.",
        "f_language": "Language of the question",
        "sv": "Swedish",
        "en": "English",
        "asking_as": "You ask for",
        "submit": "Open the challenge",
        "errors": "Please correct the following:",
        "receipt_title": "The challenge is open",
        "receipt": "The challenge is open and stored. It takes ideas until",
        "receipt_link": "See the challenge",
        "again": "Open another challenge",
        "unavailable": "We cannot store challenges right now. Nothing was stored. Please try again in a moment.",
        "csrf": "The form had expired. Please send it again.",
        "sent_before": "This form was already sent with other values. Please check and send it again.",
        "past": "That date has passed.",
        "not_a_date": "Give a date (YYYY-MM-DD).",
        "outside": "You can only ask your own organisation.",
        "unknown": "Unknown choice.",
        "too_short": "Must have at least {min_length} characters.",
        "too_long": "May have at most {max_length} characters.",
        "missing": "Required.",
    },
}
FIELDS = ("question", "description", "audience", "areas", "closes_at", "language")


def challenge_pages_router(intake: Intake, identity: Identity, settings: IntakeSettings) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    pages = Pages(settings, sign_out_to=identity.oidc.issuer_url)

    def render(request: Request, lang: str, principal: Principal, status: int = 200, **context: Any) -> HTMLResponse:
        prefix = "/en" if lang == "en" else ""
        owner = TRIAGE_ORGANISATION if principal.group_wide else principal.organisation
        return pages.render(
            request,
            context.pop("template", "challenge_form.html"),
            t=TEXT[lang],
            lang=lang,
            here=f"{prefix}/challenges/new",
            principal=principal,
            status=status,
            catalogue=intake.catalogue,
            display_name=display_name,
            owner=intake.catalogue.organisation(owner or ""),
            organisations=[o for o in intake.catalogue.organisations if principal.group_wide or o.id == owner],
            values=context.pop("values", {}),
            chosen=context.pop("chosen", {"audience": [], "areas": []}),
            errors=context.pop("errors", {}),
            submission_id=context.pop("submission_id", str(uuid.uuid4())),
            **context,
        )

    def pages_in(lang: str, prefix: str) -> None:
        t = TEXT[lang]

        @router.get(f"{prefix}/challenges/new", response_class=HTMLResponse)
        async def new_challenge(request: Request) -> Response:
            principal = await identity.page_principal(request)
            if not principal.is_officer:
                return render(request, lang, principal, 403, alert=t["officers_only"], officer=False)
            return render(request, lang, principal, officer=True, values={"language": lang})

        @router.post(f"{prefix}/challenges/new", response_class=HTMLResponse)
        async def open_challenge(request: Request) -> Response:
            principal = await identity.page_principal(request)
            posted = await request.form()
            values = {key: value for key, value in posted.items() if isinstance(value, str) and key in FIELDS}
            chosen = {name: [v for v in posted.getlist(name) if isinstance(v, str)] for name in ("audience", "areas")}
            submission_id = str(posted.get("submission_id") or "") or str(uuid.uuid4())
            keep = {"values": values, "chosen": chosen, "submission_id": submission_id, "officer": True}
            if not pages.valid(request, posted.get("csrf_token")):
                return render(request, lang, principal, 403, alert=t["csrf"], **keep)
            if not principal.is_officer:
                return render(request, lang, principal, 403, alert=t["officers_only"], **{**keep, "officer": False})
            try:
                request_in = ChallengeIn.model_validate(
                    {
                        "question": values.get("question", ""),
                        "description": values.get("description", ""),
                        "audience": [_audience(choice) for choice in chosen["audience"]],
                        "areas": chosen["areas"],
                        "closes_at": values.get("closes_at", ""),
                        "language": values.get("language") or None,
                    }
                )
                accepted = await intake.open_challenge(principal, request_in, idempotency_key=f"web:{submission_id}")
            except ValidationError as exc:
                return render(request, lang, principal, 422, errors=_errors(exc, t), **keep)
            except InvalidField as exc:
                return render(request, lang, principal, 422, errors={_field(exc.field): _message(exc, t)}, **keep)
            except Forbidden:
                return render(request, lang, principal, 403, alert=t["officers_only"], **{**keep, "officer": False})
            except IdempotencyMismatch:
                fresh = {**keep, "submission_id": str(uuid.uuid4())}
                return render(request, lang, principal, 409, alert=t["sent_before"], **fresh)
            except (KafkaUnavailable, RedisError, TimeoutError):
                return render(request, lang, principal, 503, alert=t["unavailable"], **keep)
            return render(request, lang, principal, 201, template="challenge_receipt.html", accepted=accepted)

    pages_in("sv", "")
    pages_in("en", "/en")
    return router


def _audience(choice: str) -> dict[str, str | None]:
    """A checkbox's value: ``organisation`` or ``organisation/unit``."""
    organisation, _, unit = choice.partition("/")
    return {"organisation": organisation, "unit": unit or None}


def _field(name: str) -> str:
    """The form field of an API field: ``audience.2.unit`` -> ``audience``."""
    head = name.split(".", 1)[0]
    return head if head in FIELDS else "question"


def _message(exc: InvalidField, t: dict[str, str]) -> str:
    if exc.field == "closes_at":
        return t["past"]
    if exc.field.startswith("audience") and "outside" in exc.message:
        return t["outside"]
    return t["unknown"]


def _errors(exc: ValidationError, t: dict[str, str]) -> dict[str, str]:
    errors: dict[str, str] = {}
    for error in exc.errors():
        field = _field(".".join(str(part) for part in error["loc"]))
        kind = error["type"]
        if field == "closes_at":
            message = t["missing"] if not error.get("input") else t["not_a_date"]
        elif kind == "string_too_short":
            message = t["too_short" if error.get("input") else "missing"].format(**error.get("ctx", {}))
        elif kind == "string_too_long":
            message = t["too_long"].format(**error.get("ctx", {}))
        else:
            message = t["unknown"]
        errors.setdefault(field, message)
    return errors
