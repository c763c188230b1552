"""A person's own side of notifications over HTTP: their in-app feed and its live stream, their preferences, the
one-click unsubscribe link of every e-mail, and the administrators' endpoint that sends a day's digests.

Access: a person sees and changes only their own feed and preferences (``/api/v1/people/me/...``), named by the
e-mail address of their verified token or session; ``/api/v1/people/{person}/...`` stays for old clients and
answers only when ``person`` is the caller's own address. Inside, the person is the pseudonym of that address
(``keyring.pseudonym``); a change of preferences records their address and name sealed under their data key.
"""

import pathlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from typing import Annotated, Literal
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Header, HTTPException, Path, Query
from fastapi.responses import HTMLResponse, JSONResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from sse_starlette import EventSourceResponse

from services.notifications import domain
from services.notifications.contacts import Contacts
from services.notifications.handlers import NotificationHandlers
from services.notifications.live import LiveStreams, TooManyStreams
from services.notifications.store import NotificationStore
from shared import csp
from shared.catalogue import Catalogue
from shared.events import Envelope, PreferencesChanged
from shared.http_problems import invalid, problem, unavailable
from shared.identity import Identity
from shared.kafka import KafkaUnavailable
from shared.principal import Principal, Role
from shared.publishing import Publisher
from shared.sealing import mask_email

SOURCE = "/services/notifications"
PERSON = Path(max_length=320, description="The person's e-mail address: only one's own (use `me`)")


# Bounds of a request, far above the catalogue (10 areas, 4 organisations) yet small enough that a huge body is
# refused (422 naming the field) before anything is looked up.
MAX_CHOICES = 50
CatalogueId = Annotated[str, StringConstraints(min_length=1, max_length=100)]


class PreferencesBody(BaseModel):
    """How a person wants to hear about ideas."""

    model_config = ConfigDict(extra="forbid")

    channels: list[Literal["email", "in-app"]] = Field(
        default=["email", "in-app"], max_length=2, description="Channels to hear on; an empty list: none"
    )
    frequency: Literal["immediate", "daily"] = Field(default="immediate", description="E-mail at once or daily")
    areas: list[CatalogueId] = Field(
        default=[],
        max_length=MAX_CHOICES,
        description="Area ids (catalogue) whose new ideas and decisions to hear of",
    )
    organisations: list[CatalogueId] = Field(
        default=[], max_length=MAX_CHOICES, description="Organisation ids (catalogue) to hear of"
    )
    language: Literal["sv", "en"] | None = Field(default=None, description="Language of the news (default Swedish)")


class InvalidPreference(ValueError):
    """A preference the catalogue does not know: names the field and why."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message


@dataclass(frozen=True)
class Me:
    """The signed-in person as notifications knows them: their address (only to answer them, and to seal), their
    name, and their pseudonym (what everything here is kept under)."""

    email: str
    name: str | None
    pseudonym: str


class PersonPreferences:
    """Reading and changing a person's preferences: the one way the API, the page and the unsubscribe link take.
    A change is stored first as an event on its topic (the system of record), then applied, so a rebuild gives
    the same state. The event names the person by pseudonym, with their address and name sealed under their key."""

    def __init__(
        self,
        store: NotificationStore,
        publisher: Publisher,
        topic: str,
        catalogue: Callable[[], Catalogue],
        contacts: Contacts,
    ) -> None:
        self.store = store
        self.publisher = publisher
        self.topic = topic
        self.catalogue = catalogue
        self.contacts = contacts

    def me(self, principal: Principal, person: str | None, what: str) -> Me:
        """The caller (their own address only, see :func:`own_address`) and their pseudonym."""
        email = own_address(principal, person, what)
        return Me(email=email, name=principal.name, pseudonym=self.contacts.pseudonym(email))

    async def of(self, person: str) -> domain.Preferences:
        """The preferences of ``person`` (a pseudonym)."""
        return await self.store.preferences(person)

    def check(self, body: PreferencesBody) -> domain.Preferences:
        """The preferences the body asks for, or :class:`InvalidPreference` naming an unknown area/organisation."""
        catalogue = self.catalogue()
        for field, values, known in (
            ("areas", body.areas, {a.id for a in catalogue.areas}),
            ("organisations", body.organisations, set(catalogue.organisation_ids)),
        ):
            if unknown := [v for v in values if v not in known]:
                raise InvalidPreference(field, f"unknown {field} {unknown}; the catalogue has {sorted(known)}")
        return domain.Preferences(
            channels=frozenset(body.channels),
            frequency=body.frequency,
            areas=tuple(dict.fromkeys(body.areas)),
            organisations=tuple(dict.fromkeys(body.organisations)),
            language=body.language,
        )

    async def change(self, me: Me, body: PreferencesBody) -> domain.Preferences:
        """Check and record; raises :class:`InvalidPreference` or ``KafkaUnavailable`` (then nothing is stored).
        The person's data key is made (and recorded in Kafka) if they have none yet."""
        preferences = self.check(body)
        key = await self.contacts.keyring.key_for(me.email)
        contact = key.seal_json({"email": me.email, "name": me.name})
        await self.record(preferences.as_event(key.pseudonym, contact))
        return preferences

    async def record(self, changed: PreferencesChanged) -> None:
        envelope = Envelope.wrap(changed, source=SOURCE)
        await self.publisher.publish(self.topic, envelope)
        await self.store.apply_preferences(changed, envelope.time)


def own_address(principal: Principal, person: str | None, what: str) -> str:
    """The e-mail address that names the principal in notifications; ``person`` (when a path names one) must be
    that address (any case), else 403."""
    if not principal.email:
        raise HTTPException(
            status_code=403,
            detail=f"Forbidden: your token carries no e-mail address, and notifications knows a person by it; "
            f"there is no {what} for {principal.id}",
        )
    own = principal.email.lower()
    if person is not None and person.lower() != own:
        raise HTTPException(
            status_code=403,
            detail=f"Forbidden: you may only see your own {what}; use /api/v1/people/me/{what}",
        )
    return own


def people_router(
    identity: Identity,
    store: NotificationStore,
    preferences: PersonPreferences,
    *,
    streams: LiveStreams,
    unsubscribe_secret: str,
    retry_after_s: int,
    stream_ping_s: float = 15.0,
    stream_send_timeout_s: float = 30.0,
) -> APIRouter:
    router = APIRouter()
    signed_in = Annotated[Principal, Depends(identity.required)]

    def routes(person_path: bool, what: str) -> Callable[..., Me]:
        """A dependency giving the person a route is about: the caller (``me``), or the path's, when it is theirs."""
        if person_path:

            async def named(principal: signed_in, person: str = PERSON) -> Me:
                return preferences.me(principal, person, what)

            return named

        async def me(principal: signed_in) -> Me:
            return preferences.me(principal, None, what)

        return me

    for prefix, person_path in (("/api/v1/people/me", False), ("/api/v1/people/{person}", True)):
        old = {"deprecated": True, "description": "Only one's own address; use `me`."} if person_path else {}
        feed_of = Annotated[Me, Depends(routes(person_path, "feed"))]
        stream_of = Annotated[Me, Depends(routes(person_path, "stream"))]
        prefs_of = Annotated[Me, Depends(routes(person_path, "preferences"))]

        @router.get(f"{prefix}/feed", tags=["feed"], summary="My in-app notifications, newest first", **old)
        async def feed(person: feed_of, limit: int = Query(50, ge=1, le=500)) -> dict:
            return {"person": person.email, "items": await store.feed(person.pseudonym, limit)}

        @router.get(
            f"{prefix}/stream",
            tags=["feed"],
            summary="My new in-app notifications as they arrive (server-sent events)",
            response_class=EventSourceResponse,
            responses={429: {"description": "Too many open streams (the person's or the service's); Retry-After"}},
            **old,
        )
        async def stream(
            person: stream_of,
            limit: int | None = Query(
                None, ge=1, le=10_000, description="Close the stream after this many notifications"
            ),
            last_event_id: str | None = Header(
                None,
                alias="Last-Event-ID",
                max_length=200,
                description="Resume: the feed's items newer than this notification id come first",
            ),
        ) -> Response:
            try:
                opened = await streams.open_announced(person.pseudonym)
            except TooManyStreams as exc:
                refused = problem(429, exc.detail, setting=exc.setting, retry_after_s=retry_after_s)
                refused.headers["Retry-After"] = str(retry_after_s)
                return refused
            try:  # the stream is registered first: what arrives while the backlog is read is not missed
                backlog = await store.feed_after(person.pseudonym, last_event_id) if last_event_id else []
            except BaseException:
                streams.close(opened)
                raise
            return streams.response(
                opened, backlog, limit=limit, ping_s=stream_ping_s, send_timeout_s=stream_send_timeout_s
            )

        @router.get(f"{prefix}/preferences", tags=["preferences"], summary="My preferences", **old)
        async def get_preferences(person: prefs_of) -> dict:
            return preferences_body(person.email, await preferences.of(person.pseudonym))

        @router.put(f"{prefix}/preferences", tags=["preferences"], summary="Change my preferences", **old)
        async def put_preferences(body: PreferencesBody, person: prefs_of) -> JSONResponse:
            try:
                changed = await preferences.change(person, body)
            except InvalidPreference as exc:
                return invalid(exc.field, exc.message)
            except KafkaUnavailable:
                return unavailable(retry_after_s, "Kafka is unavailable; nothing was stored. Try again shortly.")
            return JSONResponse(preferences_body(person.email, changed))

    unsubscribe_page = Environment(
        loader=FileSystemLoader(UNSUBSCRIBE_TEMPLATES), autoescape=select_autoescape(["html"])
    ).get_template("page.html")

    def page(status: int, **context: str) -> HTMLResponse:
        return HTMLResponse(unsubscribe_page.render(**context), status_code=status, headers=UNSUBSCRIBE_HEADERS)

    def person_of(token: str) -> str | HTMLResponse:
        try:
            return domain.verify_unsubscribe_token(token, unsubscribe_secret, datetime.now(UTC))
        except domain.InvalidUnsubscribeToken as exc:
            sv, en = REFUSALS[exc.reason]
            return page(
                400,
                state="refused",
                title_sv="Länken fungerar inte",
                title_en="Link not valid",
                reason_sv=sv,
                reason_en=en,
            )

    @router.get(
        "/api/v1/unsubscribe",
        tags=["preferences"],
        summary="The unsubscribe link of every e-mail: a page that asks to confirm (nothing changes on GET)",
        response_class=HTMLResponse,
        responses={400: {"description": "The link has expired, or is not one of ours (an HTML page says which)"}},
    )
    async def confirm_unsubscribe(token: str = Query(max_length=2000)) -> Response:
        person = person_of(token)
        if isinstance(person, HTMLResponse):
            return person
        return page(
            200,
            state="confirm",
            title_sv="Avsluta e-post",
            title_en="Unsubscribe",
            person=await shown(person),
            action=f"/api/v1/unsubscribe?{urlencode({'token': token})}",
        )

    async def shown(person: str) -> str:
        """Whom a link is for, as the page may show it: the address masked (``a***@kiruna.se``); nothing when the
        person was erased."""
        address = await preferences.contacts.address(person)
        return mask_email(address.email) if address else ""

    @router.post(
        "/api/v1/unsubscribe",
        tags=["preferences"],
        summary="Turn e-mail off: the confirmation page's button, and RFC 8058 one-click "
        "(body List-Unsubscribe=One-Click)",
        response_class=HTMLResponse,
        responses={400: {"description": "The link has expired, or is not one of ours (an HTML page says which)"}},
    )
    async def unsubscribe(token: str = Query(max_length=2000)) -> Response:
        person = person_of(token)
        if isinstance(person, HTMLResponse):
            return person
        current = await store.preferences(person)
        whom = await shown(person)
        if "email" in current.channels:
            changed = replace(current, channels=current.channels - {"email"})
            try:
                # None: the person was erased; nothing is sent to them any more, and nothing is recorded
                if (contact := await preferences.contacts.sealed_contact(person)) is not None:
                    await preferences.record(changed.as_event(person, contact, via="unsubscribe"))
            except KafkaUnavailable:
                return unavailable(retry_after_s, "Kafka is unavailable; e-mail is still on. Try again shortly.")
        return page(200, state="done", title_sv="Avslutad", title_en="Unsubscribed", person=whom)

    return router


def digest_router(identity: Identity, handlers: NotificationHandlers, zone: ZoneInfo) -> APIRouter:
    router = APIRouter()

    @router.post(
        "/api/v1/digests/{day}",
        tags=["operations"],
        summary="Send the daily digests of a day, today or earlier (admins; idempotent)",
        dependencies=[Depends(identity.role(Role.ADMIN))],
    )
    async def send_digest(day: date) -> JSONResponse:
        today = datetime.now(zone).date()
        if day > today:
            # Sending marks the day sent: the digests of a day still to come would never go out.
            return invalid(
                "day",
                f"a future day's digests cannot be sent; {day.isoformat()} is after today ({today.isoformat()}, "
                f"{zone.key}), and sending it would mark it sent and switch that day's digests off",
            )
        return JSONResponse({"day": day.isoformat(), "queued": await handlers.send_digest(day)})

    return router


def preferences_body(person: str, preferences: domain.Preferences) -> dict:
    """What the API answers: the person (the caller's own address) and their choices."""
    return {
        "person": person,
        "channels": [c for c in domain.CHANNELS if c in preferences.channels],
        "frequency": preferences.frequency,
        "areas": list(preferences.areas),
        "organisations": list(preferences.organisations),
        "language": preferences.language,
    }


UNSUBSCRIBE_TEMPLATES = pathlib.Path(__file__).resolve().parent / "templates" / "unsubscribe"
UNSUBSCRIBE_HEADERS = {
    csp.HEADER: csp.page_policy(),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",  # the token is in the address
}
REFUSALS = {
    "expired": (
        "Länken har gått ut: en avregistreringslänk gäller en tid efter att e-postmeddelandet skickades.",
        "The link has expired: an unsubscribe link works for a while after its e-mail was sent.",
    ),
    "bad signature": (
        "Länken är inte giltig (den är ändrad eller kommer inte från plattformen).",
        "The link is not valid (it was changed or does not come from the platform).",
    ),
    "malformed": (
        "Länken är ofullständig eller kommer från ett äldre e-postmeddelande.",
        "The link is incomplete or comes from an older e-mail.",
    ),
}
