"""A person's own side of notifications over HTTP: their in-app feed and its live stream, their preferences, the
one-click unsubscribe link of every e-mail, and the administrators' endpoint that sends a day's digests.

Access: a person sees and changes only their own feed and preferences (``/api/v1/people/me/...``), named by the
e-mail address of their verified token or session; ``/api/v1/people/{person}/...`` stays for old clients and
answers only when ``person`` is the caller's own address.
"""

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import date, datetime
from html import escape
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from redis.asyncio.client import PubSub

from services.notifications import domain
from services.notifications.handlers import NotificationHandlers
from services.notifications.store import NotificationStore
from shared.catalogue import Catalogue
from shared.events import Envelope, PreferencesChanged
from shared.http_problems import invalid, unavailable
from shared.identity import Identity
from shared.kafka import KafkaUnavailable
from shared.principal import Principal, Role
from shared.publishing import Publisher

SOURCE = "/services/notifications"
PERSON = Path(max_length=320, description="The person's e-mail address: only one's own (use `me`)")


class PreferencesBody(BaseModel):
    """How a person wants to hear about ideas."""

    model_config = ConfigDict(extra="forbid")

    channels: list[Literal["email", "in-app"]] = Field(
        default=["email", "in-app"], description="Channels to hear on; an empty list: none"
    )
    frequency: Literal["immediate", "daily"] = Field(default="immediate", description="E-mail at once or daily")
    areas: list[str] = Field(default=[], description="Area ids (catalogue) whose new ideas and decisions to hear of")
    organisations: list[str] = Field(default=[], description="Organisation ids (catalogue) to hear of")
    language: Literal["sv", "en"] | None = Field(default=None, description="Language of the news (default Swedish)")


class InvalidPreference(ValueError):
    """A preference the catalogue does not know: names the field and why."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message


class PersonPreferences:
    """Reading and changing a person's preferences: the one way the API, the page and the unsubscribe link take.
    A change is stored first as an event on its topic (the system of record), then applied, so a rebuild gives
    the same state."""

    def __init__(
        self, store: NotificationStore, publisher: Publisher, topic: str, catalogue: Callable[[], Catalogue]
    ) -> None:
        self.store = store
        self.publisher = publisher
        self.topic = topic
        self.catalogue = catalogue

    async def of(self, person: str) -> domain.Preferences:
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

    async def change(self, person: str, body: PreferencesBody) -> domain.Preferences:
        """Check and record; raises :class:`InvalidPreference` or ``KafkaUnavailable`` (then nothing is stored)."""
        preferences = self.check(body)
        await self.record(preferences.as_event(person))
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
    unsubscribe_secret: str,
    retry_after_s: int,
) -> APIRouter:
    router = APIRouter()
    signed_in = Annotated[Principal, Depends(identity.required)]

    def routes(person_path: bool, what: str) -> Callable[..., str]:
        """A dependency giving the person a route is about: the caller (``me``), or the path's, when it is theirs."""
        if person_path:

            async def named(principal: signed_in, person: str = PERSON) -> str:
                return own_address(principal, person, what)

            return named

        async def me(principal: signed_in) -> str:
            return own_address(principal, None, what)

        return me

    for prefix, person_path in (("/api/v1/people/me", False), ("/api/v1/people/{person}", True)):
        old = {"deprecated": True, "description": "Only one's own address; use `me`."} if person_path else {}
        feed_of = Annotated[str, Depends(routes(person_path, "feed"))]
        stream_of = Annotated[str, Depends(routes(person_path, "stream"))]
        prefs_of = Annotated[str, Depends(routes(person_path, "preferences"))]

        @router.get(f"{prefix}/feed", tags=["feed"], summary="My in-app notifications, newest first", **old)
        async def feed(person: feed_of, limit: int = Query(50, ge=1, le=500)) -> dict:
            return {"person": person, "items": await store.feed(person, limit)}

        @router.get(
            f"{prefix}/stream",
            tags=["feed"],
            summary="My new in-app notifications as they arrive (server-sent events)",
            response_class=StreamingResponse,
            **old,
        )
        async def stream(
            request: Request,
            person: stream_of,
            limit: int | None = Query(None, ge=1, description="Close the stream after this many notifications"),
        ) -> StreamingResponse:
            pubsub = store.redis.pubsub()
            await pubsub.subscribe(store.live_channel(person))
            return live_feed(request, pubsub, limit)

        @router.get(f"{prefix}/preferences", tags=["preferences"], summary="My preferences", **old)
        async def get_preferences(person: prefs_of) -> dict:
            return preferences_body(person, await preferences.of(person))

        @router.put(f"{prefix}/preferences", tags=["preferences"], summary="Change my preferences", **old)
        async def put_preferences(body: PreferencesBody, person: prefs_of) -> JSONResponse:
            try:
                changed = await preferences.change(person, body)
            except InvalidPreference as exc:
                return invalid(exc.field, exc.message)
            except KafkaUnavailable:
                return unavailable(retry_after_s, "Kafka is unavailable; nothing was stored. Try again shortly.")
            return JSONResponse(preferences_body(person, changed))

    @router.api_route(
        "/api/v1/unsubscribe",
        methods=["GET", "POST"],
        tags=["preferences"],
        summary="One-click unsubscribe from e-mail (the signed link in every e-mail; RFC 8058 POST too)",
        response_class=HTMLResponse,
    )
    async def unsubscribe(token: str = Query(max_length=2000)) -> Response:
        person = domain.verify_unsubscribe_token(token, unsubscribe_secret)
        if person is None:
            raise HTTPException(status_code=400, detail="The unsubscribe link is not valid (token: bad signature)")
        current = await store.preferences(person)
        if "email" in current.channels:
            changed = replace(current, channels=current.channels - {"email"})
            try:
                await preferences.record(changed.as_event(person, via="unsubscribe"))
            except KafkaUnavailable:
                return unavailable(retry_after_s, "Kafka is unavailable; e-mail is still on. Try again shortly.")
        return HTMLResponse(UNSUBSCRIBED.format(person=escape(person)))

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


def live_feed(request: Request, pubsub: PubSub, limit: int | None) -> StreamingResponse:
    """Server-sent events from a Redis pub/sub already subscribed to a person's live channel."""

    async def events() -> AsyncIterator[str]:
        sent = 0
        try:
            yield "retry: 3000\n\n"
            while limit is None or sent < limit:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=15.0)
                if message is None:
                    if await request.is_disconnected():
                        return
                    yield ": keep-alive\n\n"
                    continue
                item = json.loads(message["data"])
                yield f"id: {item['notification_id']}\nevent: notification\ndata: {message['data']}\n\n"
                sent += 1
        finally:
            await pubsub.unsubscribe()
            await pubsub.aclose()

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(events(), media_type="text/event-stream", headers=headers)


def preferences_body(person: str, preferences: domain.Preferences) -> dict:
    return {"person": person, **preferences.as_event(person).model_dump(mode="json", exclude={"person", "via"})}


UNSUBSCRIBED = """<!DOCTYPE html>
<html lang="sv"><head><meta charset="utf-8"><title>Avslutad / Unsubscribed</title></head>
<body style="font-family: sans-serif; max-width: 40em;">
<h1>Du får inte längre e-post</h1>
<p>{person} får inte längre e-post från Kirunas innovationsplattform. Nyheterna finns kvar i flödet i appen.</p>
<p lang="en">{person} will no longer receive e-mail from the Kiruna innovation platform.
The news stays in the in-app feed.</p>
</body></html>
"""
