"""The signed-in person's pages, Swedish at ``/my/...`` and English at ``/en/my/...``: their in-app feed (new items
arrive live by a small script, ``/my/feed/live.js``; the page works without it) and a form for their preferences,
saved by the same code as ``PUT /api/v1/people/me/preferences``. Everything shown is escaped (autoescape); a form
post with the session cookie must come from the site's own page (checked by ``shared.identity``)."""

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import ValidationError

from services.notifications.domain import CHANNELS
from services.notifications.people import InvalidPreference, PersonPreferences, PreferencesBody
from services.notifications.store import NotificationStore
from shared import csp
from shared.catalogue import Catalogue, display_name
from shared.identity import Identity
from shared.kafka import KafkaUnavailable
from shared.principal import Principal
from shared.site import site_header
from shared.static import files_in, serve

TEMPLATES = Path(__file__).resolve().parent / "templates" / "pages"
STATIC = Path(__file__).resolve().parent / "static"
FEED_ON_PAGE = 100
SECURITY_HEADERS = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}
FIELDS = ("channels", "frequency", "areas", "organisations", "language")

TEXT = {
    "sv": {
        "site": "Kirunas innovationsplattform",
        "other_language": "English",
        "feed_title": "Mitt flöde",
        "feed_intro": "Det här har hänt med idéerna du lämnat, följer eller ansvarar för. Det senaste överst.",
        "feed_empty": "Inget nytt än. Här syns det när något händer med dina idéer.",
        "feed_live": "Nya händelser visas här direkt.",
        "open_idea": "Visa idén",
        "open_challenge": "Visa utmaningen",
        "preferences_link": "Ändra hur du får nyheterna",
        "kinds": {
            "routed": "Skickad till ansvariga",
            "status-changed": "Ny status",
            "withdrawn": "Tillbakadragen",
            "comment": "Kommentar",
            "assigned": "Tilldelad dig",
            "deadline-warning": "Påminnelse",
            "deadline-missed": "Svarstid passerad",
            "challenge-opened": "Ny utmaning",
            "challenge-closing": "Utmaningen stänger snart",
        },
        "prefs_title": "Inställningar för nyheter",
        "prefs_intro": "Välj hur och om vad du vill få veta. Du får alltid veta vad som händer med dina egna idéer "
        "och idéer du följer, på de sätt du väljer här.",
        "saved": "Sparat.",
        "errors": "Något behöver rättas:",
        "unavailable": "Inställningarna kunde inte sparas just nu. Ingenting ändrades. Försök igen om en stund.",
        "channels": "Hur vill du få nyheterna?",
        "channel_names": {"email": "E-post", "in-app": "I Mitt flöde här på webbplatsen"},
        "frequency": "Hur ofta vill du få e-post?",
        "frequency_names": {"immediate": "Direkt när något händer", "daily": "En sammanfattning per dag"},
        "areas": "Nya idéer och beslut inom områdena",
        "organisations": "Nya idéer och beslut hos organisationerna",
        "language": "Språk i nyheterna",
        "language_names": {"": "Inget val (idéns språk, annars svenska)", "sv": "Svenska", "en": "Engelska"},
        "save": "Spara",
        "unknown": "Okänt val.",
        "no_email_title": "Ingen e-postadress",
        "no_email": "Ditt konto har ingen e-postadress, och aviseringarna känner igen en person på den. "
        "Be din administratör lägga till den.",
    },
    "en": {
        "site": "Kiruna innovation platform",
        "other_language": "Svenska",
        "feed_title": "My feed",
        "feed_intro": "What has happened to the ideas you submitted, follow or are responsible for. Newest first.",
        "feed_empty": "Nothing new yet. This is where you see what happens to your ideas.",
        "feed_live": "New events appear here as they happen.",
        "open_idea": "View the idea",
        "open_challenge": "View the challenge",
        "preferences_link": "Change how you get the news",
        "kinds": {
            "routed": "Sent to those responsible",
            "status-changed": "New status",
            "withdrawn": "Withdrawn",
            "comment": "Comment",
            "assigned": "Assigned to you",
            "deadline-warning": "Reminder",
            "deadline-missed": "Response time passed",
            "challenge-opened": "New challenge",
            "challenge-closing": "Challenge closing soon",
        },
        "prefs_title": "News settings",
        "prefs_intro": "Choose how, and about what, you want to hear. You always hear what happens to your own "
        "ideas and the ideas you follow, in the ways you choose here.",
        "saved": "Saved.",
        "errors": "Please correct the following:",
        "unavailable": "Your settings could not be saved right now. Nothing was changed. Please try again shortly.",
        "channels": "How do you want to get the news?",
        "channel_names": {"email": "E-mail", "in-app": "In My feed on this site"},
        "frequency": "How often do you want e-mail?",
        "frequency_names": {"immediate": "As soon as something happens", "daily": "One summary a day"},
        "areas": "New ideas and decisions in the areas",
        "organisations": "New ideas and decisions at the organisations",
        "language": "Language of the news",
        "language_names": {"": "No choice (the idea's language, else Swedish)", "sv": "Swedish", "en": "English"},
        "save": "Save",
        "unknown": "Unknown choice.",
        "no_email_title": "No e-mail address",
        "no_email": "Your account has no e-mail address, and notifications knows a person by it. "
        "Ask your administrator to add it.",
    },
}


def page_router(
    identity: Identity,
    store: NotificationStore,
    preferences: PersonPreferences,
    catalogue: Callable[[], Catalogue],
    zone: ZoneInfo,
    *,
    retry_after_s: int,
) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]), trim_blocks=True)
    serve(router, "/static/notifications", files_in(STATIC))  # the pages' stylesheet
    headers = {**SECURITY_HEADERS, csp.HEADER: csp.page_policy(sign_out_to=identity.oidc.issuer_url)}  # shared/csp.py

    def localtime(iso: str) -> str:
        try:
            return datetime.fromisoformat(iso).astimezone(zone).strftime("%Y-%m-%d %H:%M")
        except ValueError:
            return ""

    env.filters["localtime"] = localtime

    def render(
        request: Request, lang: str, name: str, principal: Principal, status: int = 200, **context: Any
    ) -> HTMLResponse:
        here = request.url.path
        plain = here.removeprefix("/en")
        html = env.get_template(name).render(
            lang=lang,
            t=TEXT[lang],
            prefix="/en" if lang == "en" else "",
            header=site_header(principal, lang, here),
            other_language_url=plain if lang == "en" else f"/en{plain}",
            **context,
        )
        return HTMLResponse(html, status_code=status, headers=headers)

    def names(lang: str, current: Catalogue) -> dict[str, list[tuple[str, str]]]:
        return {
            "areas": [(a.id, display_name(a, lang)) for a in current.areas],
            "organisations": [(o.id, display_name(o, lang)) for o in current.organisations],
        }

    async def signed_in(request: Request, lang: str) -> tuple[Principal, Response | None]:
        principal = await identity.page_principal(request)
        if not principal.email:
            t = TEXT[lang]
            page = render(
                request, lang, "problem.html", principal, 403, title=t["no_email_title"], message=t["no_email"]
            )
            return principal, page
        return principal, None

    def preferences_page(
        request: Request, lang: str, principal: Principal, values: dict[str, Any], status: int = 200, **context: Any
    ) -> HTMLResponse:
        return render(
            request,
            lang,
            "preferences.html",
            principal,
            status,
            values=values,
            choices=names(lang, catalogue()),
            channels=CHANNELS,
            errors=context.pop("errors", {}),
            **context,
        )

    def pages_in(lang: str, prefix: str) -> None:
        t = TEXT[lang]

        @router.get(f"{prefix}/my/feed", response_class=HTMLResponse)
        async def feed_page(request: Request) -> Response:
            principal, refused = await signed_in(request, lang)
            if refused:
                return refused
            me = preferences.me(principal, None, "feed")
            items = await store.feed(me.pseudonym, FEED_ON_PAGE)
            return render(request, lang, "feed.html", principal, items=items)

        @router.get(f"{prefix}/my/preferences", response_class=HTMLResponse)
        async def preferences_form(request: Request, saved: bool = False) -> Response:
            principal, refused = await signed_in(request, lang)
            if refused:
                return refused
            current = await preferences.of(preferences.me(principal, None, "preferences").pseudonym)
            values = {
                "channels": sorted(current.channels),
                "frequency": current.frequency,
                "areas": list(current.areas),
                "organisations": list(current.organisations),
                "language": current.language or "",
            }
            return preferences_page(request, lang, principal, values, saved=saved)

        @router.post(f"{prefix}/my/preferences", response_class=HTMLResponse)
        async def save_preferences(request: Request) -> Response:
            principal, refused = await signed_in(request, lang)
            if refused:
                return refused
            form = await request.form()
            values: dict[str, Any] = {
                "channels": [str(v) for v in form.getlist("channels")],
                "frequency": str(form.get("frequency") or "immediate"),
                "areas": [str(v) for v in form.getlist("areas")],
                "organisations": [str(v) for v in form.getlist("organisations")],
                "language": str(form.get("language") or ""),
            }
            try:
                body = PreferencesBody.model_validate({**values, "language": values["language"] or None})
                await preferences.change(preferences.me(principal, None, "preferences"), body)
            except ValidationError as exc:
                errors = {str(e["loc"][0]): t["unknown"] for e in exc.errors() if e["loc"] and e["loc"][0] in FIELDS}
                return preferences_page(request, lang, principal, values, 422, errors=errors)
            except InvalidPreference as exc:
                return preferences_page(request, lang, principal, values, 422, errors={exc.field: t["unknown"]})
            except KafkaUnavailable:
                page = preferences_page(request, lang, principal, values, 503, alert=t["unavailable"])
                page.headers["Retry-After"] = str(retry_after_s)
                return page
            return RedirectResponse(f"{prefix}/my/preferences?saved=1", status_code=303)

    pages_in("sv", "")
    pages_in("en", "/en")

    @router.get("/my/feed/live.js")
    async def live_script() -> FileResponse:
        return FileResponse(
            TEMPLATES / "live.js", media_type="text/javascript", headers={"Cache-Control": "max-age=300"}
        )

    return router
