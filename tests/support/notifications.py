"""Notifications' tests' helpers: a real SMTP server, the events they publish (people in them sealed with a
keyring: :class:`People`), and a real keyring for the service under test (:func:`sealing`)."""

from __future__ import annotations

import contextlib
import socket
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any, Literal, Protocol

from aiosmtpd.controller import Controller

from shared.events import (
    AreaMatch,
    ChallengeAudience,
    ChallengeOpened,
    EngagementKind,
    Envelope,
    IdeaAssigned,
    IdeaEdited,
    IdeaEngagement,
    IdeaRouted,
    IdeaState,
    IdeaStatusChanged,
    IdeaSubmitted,
    PersonErasureRequested,
    PersonRef,
    PreferencesChanged,
    RoutingTarget,
)
from shared.keyring import Keyring
from shared.sealing import DataKey
from shared.service import redis_client
from shared.settings import ServiceSettings
from shared.topics import Topics

ANNA = "anna.svensson@kiruna.se"
ERIK = "erik.lindberg@tekniskaverken.kiruna.se"
SARA = "sara.pekkari@kirunabostader.se"
JOHN = "john.doe@kirunabostader.se"  # an English-speaking officer, added to the test catalogue
OFFICE = "innovation@kiruna.se"
EXTRA_OFFICER = """
[[officers]]
id = "john.doe"
name = "John Doe"
email = "john.doe@kirunabostader.se"
organisation = "kirunabostader"
unit = "forvaltning"
areas = ["boende"]
language = "en"
"""


# --- a real SMTP server ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MailBox:
    """aiosmtpd handler: keeps every message it accepts, one entry per recipient."""

    def __init__(self) -> None:
        self.received: list[tuple[str, EmailMessage]] = []
        self.raw: list[tuple[str, bytes]] = []
        """The bytes as they came over SMTP, per recipient (what a mail client reads)."""
        self._lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope) -> str:
        message = message_from_bytes(envelope.content, policy=policy.default)
        with self._lock:
            self.received.extend((rcpt.lower(), message) for rcpt in envelope.rcpt_tos)
            self.raw.extend((rcpt.lower(), bytes(envelope.content)) for rcpt in envelope.rcpt_tos)
        return "250 Message accepted"

    def to(self, person: str, kind: str | None = None) -> list[EmailMessage]:
        return [m for r, m in list(self.received) if r == person and (kind is None or m["X-Kiruna-Kind"] == kind)]

    def of_kind(self, kind: str) -> dict[str, EmailMessage]:
        found = {}
        for rcpt, message in list(self.received):
            if message["X-Kiruna-Kind"] == kind:
                assert rcpt not in found, f"{rcpt} got two {kind} mails"
                found[rcpt] = message
        return found


@contextlib.contextmanager
def smtp_server(port: int | None = None, handler: MailBox | None = None) -> Iterator[MailBox]:
    box = handler or MailBox()
    controller = Controller(box, hostname="127.0.0.1", port=port or free_port())
    controller.start()
    box.port = controller.port  # type: ignore[attr-defined]
    try:
        yield box
    finally:
        controller.stop()


# --- people, sealed -------------------------------------------------------------------------------

NAMES = {ANNA: "Anna Svensson", "bo@kiruna.se": "Bo Stenlund", "lisa@kiruna.se": "Lisa Kuoksu"}


def name_of(email: str) -> str:
    """A person's name for the tests: known ones, else made from the address ('per.mattsson@' -> 'Per Mattsson')."""
    return NAMES.get(email.lower()) or " ".join(p.capitalize() for p in email.split("@")[0].split("."))


class Sealer(Protocol):
    """A keyring that seals people: ``shared.keyring.Keyring`` or ``tests.fakes.common.FakeKeyring``."""

    def pseudonym(self, person: str) -> str: ...

    async def key_for(self, person: str) -> DataKey: ...

    async def person_ref(
        self, email: str, name: str | None, *, organisation: str | None = None, unit: str | None = None
    ) -> tuple[PersonRef, DataKey]: ...

    async def erase(self, pseudonym_: str) -> bool: ...


class People:
    """The events that name people, as intake writes them: the person a pseudonym, their name and address (and a
    comment's text) sealed under their data key, made by ``keyring`` when they have none."""

    def __init__(self, keyring: Sealer) -> None:
        self.keyring = keyring

    def pseudonym(self, email: str) -> str:
        return self.keyring.pseudonym(email)

    async def ref(
        self, email: str, name: str | None = None, *, organisation: str | None = None, unit: str | None = None
    ) -> PersonRef:
        ref, _ = await self.keyring.person_ref(email, name or name_of(email), organisation=organisation, unit=unit)
        return ref

    async def submitted(
        self,
        idea_id: str,
        title: str,
        email: str | None = ANNA,
        language: str = "sv",
        *,
        organisation: str | None = None,
        unit: str | None = None,
        challenge_id: str | None = None,
        **kw: Any,
    ) -> Envelope:
        """A submission; ``organisation``/``unit``: where the submitter works, as their token says."""
        submitter = await self.ref(email, organisation=organisation, unit=unit) if email else None
        idea = IdeaSubmitted(
            idea_id=idea_id,
            title=title,
            description="Beskrivning.",
            language=language,  # type: ignore[arg-type]
            submitter=submitter,
            anonymous=submitter is None,
            challenge_id=challenge_id,
        )
        return Envelope.wrap(idea, source="/tests", **kw)

    async def engaged(
        self,
        idea_id: str,
        kind: EngagementKind,
        email: str,
        text: str | None = None,
        *,
        anonymous: bool = False,
        official: str | None = None,
        organisation: str | None = None,
        unit: str | None = None,
        **kw: Any,
    ) -> Envelope:
        """A comment, support or follow; ``anonymous``: shown as 'anonym'; ``official``: an officer's answer for
        that organisation."""
        ref, key = await self.keyring.person_ref(email, name_of(email), organisation=organisation, unit=unit)
        sealed = key.seal(text) if text is not None else None
        engagement = IdeaEngagement(
            idea_id=idea_id, kind=kind, person=ref, text=sealed, anonymous=anonymous, official=official
        )
        return Envelope.wrap(engagement, source="/tests", **kw)

    async def preferences(self, email: str, *, via: Literal["api", "unsubscribe"] = "api", **choices: Any) -> Envelope:
        """A PreferencesChanged event of the person, as the service records it (the person a pseudonym, their
        address and name sealed)."""
        at = choices.pop("time", None)
        key = await self.keyring.key_for(email)
        contact = key.seal_json({"email": email.lower(), "name": name_of(email)})
        changed = PreferencesChanged(person=key.pseudonym, contact=contact, via=via, **choices)
        return Envelope.wrap(changed, source="/tests", time=at)

    async def erase(self, email: str, **kw: Any) -> Envelope:
        """What intake does when the person asks to be erased: their key tombstoned (and dropped), and the
        erasure event it then publishes on people.erasures.v1."""
        pseudonym = self.pseudonym(email)
        await self.keyring.erase(pseudonym)
        return erasure(pseudonym, **kw)


def erasure(pseudonym: str, **kw: Any) -> Envelope:
    return Envelope.wrap(PersonErasureRequested(pseudonym=pseudonym, requested_by="person"), source="/tests", **kw)


@contextlib.asynccontextmanager
async def sealing(settings: ServiceSettings) -> AsyncIterator[People]:
    """People sealed with a real keyring of the service under test (its Redis prefix, its people.keys.v1), as
    intake seals them; closed at the end."""
    redis = redis_client(settings)
    keyring = Keyring.from_settings(redis, settings, Topics(settings.kafka.topic_prefix).people_keys)
    try:
        yield People(keyring)
    finally:
        await keyring.close()
        await redis.aclose()


# --- events without people ------------------------------------------------------------------------


def routed(idea_id: str, title: str, targets: list[tuple[str, str | None]], areas: list[str], **kw) -> Envelope:
    event = IdeaRouted(
        idea_id=idea_id,
        title=title,
        organisations=tuple(RoutingTarget(organisation=o, unit=u) for o, u in targets),
        areas=tuple(AreaMatch(area=a) for a in areas),
        reason="test",
    )
    return Envelope.wrap(event, source="/tests", **kw)


def status(
    idea_id: str,
    to_state: IdeaState,
    reason: str | None,
    changed_by: str = "erik.lindberg",
    *,
    merged_into: str | None = None,
    **kw: Any,
) -> Envelope:
    change = IdeaStatusChanged(
        idea_id=idea_id, to_state=to_state, reason=reason, changed_by=changed_by, merged_into=merged_into
    )
    return Envelope.wrap(change, source="/tests", **kw)


def edited(idea_id: str, title: str, edited_by: str, language: str = "sv", **kw: Any) -> Envelope:
    """The submitter (``edited_by``: their pseudonym) corrected the idea."""
    edit = IdeaEdited(
        idea_id=idea_id,
        title=title,
        description="Rättad.",
        language=language,
        edited_by=edited_by,  # type: ignore[arg-type]
    )
    return Envelope.wrap(edit, source="/tests", **kw)


def assigned(
    idea_id: str, organisation: str, assignee: str | None, assigned_by: str, previous: str | None = None, **kw: Any
) -> Envelope:
    assignment = IdeaAssigned(
        idea_id=idea_id, organisation=organisation, assignee=assignee, previous=previous, assigned_by=assigned_by
    )
    return Envelope.wrap(assignment, source="/tests", **kw)


def challenge(
    question: str,
    *,
    organisation: str = "tekniska-verken",
    audience: tuple[tuple[str, str | None], ...] = (("tekniska-verken", None),),
    opens_at: datetime,
    closes_in: timedelta = timedelta(days=30),
    opened_by: str = "erik.lindberg",
    description: str = "",
    challenge_id: str | None = None,
    **kw: Any,
) -> Envelope:
    """A ChallengeOpened event, opened at ``opens_at`` (its envelope's time too) and closing ``closes_in`` later."""
    opened = ChallengeOpened(
        challenge_id=challenge_id or str(uuid.uuid4()),
        question=question,
        description=description,
        organisation=organisation,
        audience=tuple(ChallengeAudience(organisation=o, unit=u) for o, u in audience),
        opens_at=opens_at,
        closes_at=opens_at + closes_in,
        opened_by=opened_by,
    )
    return Envelope.wrap(opened, source="/tests", time=opens_at, **kw)


async def publish(producer, topic: str, *events: Envelope) -> None:
    for event in events:
        await producer.send_and_wait(topic, event.to_bytes(), key=event.subject.encode())


# --- what Redis holds -----------------------------------------------------------------------------


async def redis_mentions(redis: Any, prefix: str, *needles: str) -> list[tuple[str, str]]:
    """Every (key, needle) where a needle (an address, a name, a pseudonym; any case) is in a key under ``prefix``
    or in its value: a SCAN over the keys, and every value read whole, whatever its type."""
    found = []
    lowered = [n.lower() for n in needles]
    async for raw_key in redis.scan_iter(match=f"{prefix}:*", count=1000):
        key = raw_key.decode() if isinstance(raw_key, bytes) else raw_key
        kind = await redis.type(key)
        kind = kind.decode() if isinstance(kind, bytes) else kind
        if kind == "string":
            value: Any = await redis.get(key)
        elif kind == "hash":
            value = await redis.hgetall(key)
        elif kind == "list":
            value = await redis.lrange(key, 0, -1)
        elif kind == "set":
            value = await redis.smembers(key)
        elif kind == "zset":
            value = await redis.zrange(key, 0, -1)
        else:
            value = ""
        text = f"{key} {value!r}".lower()
        found += [(key, needle) for needle, low in zip(needles, lowered, strict=True) if low in text]
    return found
