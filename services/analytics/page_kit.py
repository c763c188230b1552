"""What every page of analytics shares: the templates and their filters, the language of a request, the names of
the catalogue, rendering under the site's header and the pages' Content-Security-Policy, and the forms' query
types. The pages themselves: pages.py (an idea's status page, the dashboard), pages_lists.py (every idea, the
challenges, the inbox), pages_mine.py (my ideas)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import Query, Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from services.analytics.domain import parse_time
from services.analytics.queries import BadQuery, ReadModel
from services.analytics.texts import texts
from shared import csp
from shared.catalogue import display_name
from shared.identity import Identity
from shared.lifecycle import ALL_STATES
from shared.principal import Principal
from shared.site import site_header

TEMPLATES = Path(__file__).resolve().parent / "templates"
STATIC = Path(__file__).resolve().parent / "static"
UUID = re.compile(r"^[0-9a-fA-F-]{36}$")
STATES = tuple(state.value for state in ALL_STATES)
"""The states as the templates see them (plain strings), the main line first."""
PATH_LANG = {"": "sv", "/en": "en"}

LangQ = Annotated[Literal["sv", "en"] | None, Query(description="sv (default) or en")]

# Forms submit empty fields: on the pages an empty value means "any".
OptSlug = Annotated[str | None, Query(pattern=r"^$|^[a-z0-9][a-z0-9-]{0,62}$")]


def parse_day(value: str | None, field: str) -> date | None:
    if not value:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError as exc:
        raise BadQuery([(field, f"not a valid date '{value}' (YYYY-MM-DD)")]) from exc
    if not date(2000, 1, 1) <= day <= date(2100, 12, 31):
        raise BadQuery([(field, "must be between 2000-01-01 and 2100-12-31")])
    return day


def environment(tz: ZoneInfo) -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]), trim_blocks=True)

    def localtime(iso: str | None, with_time: bool = True) -> str:
        if not iso:
            return ""
        moment = parse_time(iso).astimezone(tz)
        return moment.strftime("%Y-%m-%d %H:%M" if with_time else "%Y-%m-%d")

    env.filters["localtime"] = localtime
    return env


@dataclass
class Pages:
    """What every page needs: the read model, who is acting, the templates and the policy they are sent under."""

    read: ReadModel
    identity: Identity
    env: Environment
    policy: str
    intake_url: str

    def names(self, lang: str) -> dict[str, dict[str, str]]:
        catalogue = self.read.catalogue
        return {
            "organisations": {o.id: display_name(o, lang) for o in catalogue.organisations},
            "units": {f"{o.id}/{u.id}": display_name(u, lang) for o in catalogue.organisations for u in o.units},
            "areas": {a.id: display_name(a, lang) for a in catalogue.areas},
        }

    def render(
        self, name: str, lang: str, request: Request, principal: Principal | None, status: int = 200, **context: Any
    ) -> HTMLResponse:
        path = request.url.path
        here = path.removeprefix("/en") if path.startswith("/en/") else path
        query = urlencode([(k, v) for k, v in request.query_params.multi_items() if k != "lang"])
        suffix = f"?{query}" if query else ""
        other = (here if lang == "en" else f"/en{here}") + suffix
        this_page = path + (f"?{request.url.query}" if request.url.query else "")
        html = self.env.get_template(name).render(
            lang=lang,
            t=texts(lang),
            names=self.names(lang),
            other_language_url=other,
            prefix="/en" if lang == "en" else "",
            header=site_header(principal, lang, this_page),
            principal=principal,
            this_page=this_page,
            sign_in_url="/auth/login?" + urlencode({"next": this_page}),
            **context,
        )
        return HTMLResponse(html, status_code=status, headers={csp.HEADER: self.policy})

    def not_found(self, lang: str, request: Request, principal: Principal | None, message: str) -> HTMLResponse:
        return self.render("not_found.html", lang, request, principal, status=404, message=message)

    @staticmethod
    def language(request: Request, lang: str | None) -> str:
        return "en" if request.url.path.startswith("/en/") or request.url.path == "/en" or lang == "en" else "sv"
