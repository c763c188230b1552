""" "Mina uppgifter" ("My data"): the signed-in person's page about their personal data, Swedish at ``/my/data`` and
English at ``/en/my/data``. It says in plain words what the platform keeps about them and how, offers the export and
the erasure, and uses the same use cases as the JSON API (``people.py``):

- ``GET {/en}/my/data/export`` downloads the document of ``GET /api/v1/people/me/export`` (``People.export``) as a
  file (``mina-uppgifter.json``, ``my-data.json`` in English);
- ``POST {/en}/my/data/erasure`` publishes the erasure as ``POST /api/v1/people/me/erasure`` does
  (``People.request_erasure``) once the person has ticked the confirmation box, and shows that it was received.

Not signed in: off to sign in and back (``shared.identity``). A form post carries the CSRF token of the idea form
(``web.CsrfGuard``) and, with the session cookie, must come from the site's own page (``shared.identity``). Kafka
away: the page again, saying so, 503 with Retry-After. No inline script or style (``shared/csp.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from redis.exceptions import RedisError

from services.intake.pages import CSRF_COOKIE, csrf_guard
from services.intake.people import ExportUnavailable, People
from services.intake.settings import IntakeSettings
from shared import csp
from shared.identity import Identity, SignInRequired
from shared.kafka import KafkaUnavailable
from shared.principal import Principal
from shared.site import site_header

CONFIRM = "confirm"
"""The name of the confirmation checkbox: no erasure without it."""

TEXT: dict[str, dict[str, Any]] = {
    "sv": {
        "other_name": "English",
        "title": "Mina uppgifter",
        "intro": "Här ser du vilka uppgifter om dig som Kirunas innovationsplattform sparar. Du kan ladda ner allt "
        "vi har om dig, och du kan be oss radera dig.",
        "kept_title": "Det här sparar vi om dig",
        "kept": [
            "Idéer du har lämnat i ditt namn: rubrik, beskrivning, när och hur du lämnade dem, och din organisation "
            "och enhet.",
            "Dina kommentarer på idéer.",
            "Vilka idéer du har stöttat.",
            "Vilka idéer du följer.",
            "Dina inställningar för aviseringar: hur och hur ofta du vill få nyheter, och om vilka områden och "
            "organisationer.",
            "Vilka aviseringar vi har skickat till dig: om vilken idé, på vilket sätt och när.",
        ],
        "sealed": "Ditt namn, din e-postadress och texten i dina kommentarer sparas krypterade, med en nyckel som "
        "bara gäller dig. I övrigt känner plattformen igen dig på en kod (en pseudonym) som inte visar vem du är.",
        "anonymous": "Idéer som du har lämnat anonymt är inte kopplade till dig, och finns därför inte med här.",
        "download_title": "Ladda ner dina uppgifter",
        "download_intro": "Du får allt vi sparar om dig i en enda fil i formatet JSON, som går att läsa i en "
        "textredigerare och att flytta till andra program. Det kan ta en liten stund att ta fram den.",
        "download": "Ladda ner mina uppgifter (JSON)",
        "erase_title": "Radera mig",
        "erase_intro": "Om du ber oss radera dig händer det här:",
        "erase_means": [
            "Nyckeln till dina krypterade uppgifter förstörs. Ditt namn, din e-postadress och dina kommentarer går "
            "sedan inte att läsa någonstans i plattformen, inte heller i dess historik.",
            "Idéer som du har lämnat finns kvar, eftersom de är organisationens handlingar, men de visas som "
            "lämnade av ”en tidigare medarbetare”.",
            "Dina kommentarer visas som borttagna: ”Kommentaren är borttagen”.",
            "Antalet stöd, kommentarer och följare på idéerna ändras inte.",
            "Plattformen glömmer ditt flöde, dina inställningar för aviseringar och vilka idéer du följer, och "
            "skickar inga fler aviseringar till dig.",
            "Det går inte att ångra. Använder du plattformen igen senare börjar du från början, utan något av det "
            "gamla.",
        ],
        "erase_account": "Ditt konto för inloggning påverkas inte, och du loggas inte ut.",
        "confirm": "Jag förstår att det inte går att ångra och vill att mina uppgifter raderas",
        "confirm_missing": "Kryssa i rutan ”Jag förstår att det inte går att ångra och vill att mina uppgifter "
        "raderas” för att radera dig. Ingenting har raderats.",
        "erase": "Radera mig",
        "errors": "Något behöver rättas:",
        "csrf": "Formuläret hade gått ut. Ingenting har raderats. Skicka det igen.",
        "erasure_unavailable": "Vi kan inte ta emot din begäran just nu, eftersom en del av plattformen inte svarar. "
        "Ingenting har raderats. Försök igen om en stund.",
        "export_unavailable": "Vi kan inte ta fram dina uppgifter just nu, eftersom en del av plattformen inte "
        "svarar. Försök igen om en stund.",
        "no_email": "Din inloggning har ingen e-postadress, och plattformen känner igen en person på den. Be din "
        "administratör lägga till den.",
        "done_title": "Din begäran är mottagen",
        "done": "Din begäran är mottagen och sparad. Varje del av plattformen raderar nu det den har om dig; det "
        "brukar ta någon minut. Nyckeln till dina krypterade uppgifter är helt borta ur plattformens lagring inom "
        "ungefär en halvtimme.",
        "done_reference": "Ditt ärendenummer",
        "done_again": "Om du ber om det igen ändras ingenting.",
        "home": "Till startsidan",
        "filename": "mina-uppgifter.json",
    },
    "en": {
        "other_name": "Svenska",
        "title": "My data",
        "intro": "This is what the Kiruna innovation platform keeps about you. You can download everything we hold "
        "about you, and you can ask us to erase you.",
        "kept_title": "What we keep about you",
        "kept": [
            "Ideas you submitted in your name: title, description, when and how you submitted them, and your "
            "organisation and unit.",
            "Your comments on ideas.",
            "Which ideas you support.",
            "Which ideas you follow.",
            "Your notification settings: how and how often you want news, and about which areas and organisations.",
            "Which notifications we sent you: about which idea, how and when.",
        ],
        "sealed": "Your name, your e-mail address and the text of your comments are stored encrypted, under a key "
        "that is yours alone. Elsewhere the platform knows you by a code (a pseudonym) that does not show who you are.",
        "anonymous": "Ideas you submitted anonymously are not linked to you, so they are not included here.",
        "download_title": "Download your data",
        "download_intro": "You get everything we keep about you in one file in the JSON format, which a text editor "
        "can read and other programs can import. It may take a moment to put together.",
        "download": "Download my data (JSON)",
        "erase_title": "Erase me",
        "erase_intro": "If you ask us to erase you, this is what happens:",
        "erase_means": [
            "The key to your encrypted data is destroyed. Your name, your e-mail address and your comments can then "
            "no longer be read anywhere in the platform, its history included.",
            "Ideas you submitted stay, as they are the organisation's records, but they are shown as submitted by "
            "“a former employee” (“en tidigare medarbetare”).",
            "Your comments are shown as removed.",
            "The numbers of supporters, comments and followers of the ideas do not change.",
            "The platform forgets your feed, your notification settings and which ideas you follow, and sends you "
            "no more notifications.",
            "It cannot be undone. If you use the platform again later, you start afresh, with none of the old.",
        ],
        "erase_account": "Your sign-in account is not affected, and you are not signed out.",
        "confirm": "I understand that this cannot be undone and want my data erased",
        "confirm_missing": "Tick the box “I understand that this cannot be undone and want my data erased” to erase "
        "yourself. Nothing has been erased.",
        "erase": "Erase me",
        "errors": "Please correct the following:",
        "csrf": "The form had expired. Nothing has been erased. Please send it again.",
        "erasure_unavailable": "We cannot receive your request right now, as a part of the platform is not "
        "answering. Nothing has been erased. Please try again shortly.",
        "export_unavailable": "We cannot put your data together right now, as a part of the platform is not "
        "answering. Please try again shortly.",
        "no_email": "Your sign-in has no e-mail address, and the platform knows a person by it. Ask your "
        "administrator to add it.",
        "done_title": "Your request has been received",
        "done": "Your request has been received and stored. Every part of the platform is now erasing what it holds "
        "about you; this usually takes a minute. The key to your encrypted data is gone from the platform's storage "
        "within about half an hour.",
        "done_reference": "Your reference number",
        "done_again": "Asking again changes nothing.",
        "home": "To the start page",
        "filename": "my-data.json",
    },
}
HEADERS = {"X-Frame-Options": "DENY", "Cache-Control": "no-store"}


def my_data_router(people: People, identity: Identity, settings: IntakeSettings) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    csrf = csrf_guard(settings)  # the idea form's: the same cookie and secret
    templates = Environment(
        loader=FileSystemLoader(Path(__file__).parent / "templates"), autoescape=select_autoescape(["html"])
    )
    policy = csp.page_policy(sign_out_to=identity.oidc.issuer_url)  # shared/csp.py: no inline script or style

    def render(
        request: Request, lang: str, template: str, principal: Principal, status: int = 200, **context: Any
    ) -> HTMLResponse:
        prefix = "/en" if lang == "en" else ""
        cookie, token = csrf.issue(request.cookies.get(CSRF_COOKIE))
        page = templates.get_template(template).render(
            t=TEXT[lang],
            lang=lang,
            prefix=prefix,
            other="/my/data" if lang == "en" else "/en/my/data",
            header=site_header(principal, lang, f"{prefix}/my/data"),
            principal=principal,
            csrf_token=token,
            confirm=CONFIRM,
            errors=context.pop("errors", {}),
            **context,
        )
        response = HTMLResponse(page, status_code=status, headers={**HEADERS, csp.HEADER: policy})
        csrf.set_cookie(response, cookie)
        return response

    def unavailable(request: Request, lang: str, principal: Principal, alert: str) -> HTMLResponse:
        response = render(request, lang, "my_data.html", principal, 503, alert=alert)
        response.headers["Retry-After"] = str(settings.retry_after_s)
        return response

    def pages_in(lang: str, prefix: str) -> None:
        t = TEXT[lang]

        @router.get(f"{prefix}/my/data", response_class=HTMLResponse)
        async def my_data(request: Request) -> Response:
            principal = await identity.page_principal(request)
            return render(request, lang, "my_data.html", principal, 200 if principal.email else 403)

        @router.get(f"{prefix}/my/data/export")
        async def download(request: Request) -> Response:
            principal = await identity.page_principal(request)
            if not principal.email:
                return render(request, lang, "my_data.html", principal, 403)
            try:
                document = await people.export(principal.email)
            except (ExportUnavailable, RedisError) as exc:
                people.logger.error("export unavailable", extra={"error": str(exc)})
                return unavailable(request, lang, principal, t["export_unavailable"])
            return JSONResponse(
                document.model_dump(mode="json"),
                headers={**HEADERS, "Content-Disposition": f'attachment; filename="{t["filename"]}"'},
            )

        @router.post(f"{prefix}/my/data/erasure", response_class=HTMLResponse)
        async def erase(request: Request) -> Response:
            principal = await identity.principal(request)  # with the session: from this site's pages only
            if principal is None:
                raise SignInRequired(f"{prefix}/my/data")  # back to the page, not to this post
            if not principal.email:
                return render(request, lang, "my_data.html", principal, 403)
            form = await request.form()
            token = form.get("csrf_token")
            if not csrf.valid(request.cookies.get(CSRF_COOKIE), token if isinstance(token, str) else None):
                return render(request, lang, "my_data.html", principal, 403, alert=t["csrf"])
            if form.get(CONFIRM) != "yes":
                return render(request, lang, "my_data.html", principal, 422, errors={CONFIRM: t["confirm_missing"]})
            try:
                correlation_id = request.headers.get("x-correlation-id", "")[:100] or None  # as the API bounds it
                event_id = await people.request_erasure(principal.email, correlation_id=correlation_id)
            except (KafkaUnavailable, TimeoutError) as exc:
                people.logger.error("erasure not stored: kafka unavailable", extra={"error": str(exc)})
                return unavailable(request, lang, principal, t["erasure_unavailable"])
            return render(request, lang, "my_data_received.html", principal, 202, event_id=event_id)

    pages_in("sv", "")
    pages_in("en", "/en")
    return router
