"""Notifications' tests' helpers: a real SMTP server, the events they publish, the service's settings."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage

from aiosmtpd.controller import Controller

from shared.events import (
    AreaMatch,
    EngagementKind,
    Envelope,
    IdeaEngagement,
    IdeaRouted,
    IdeaState,
    IdeaStatusChanged,
    IdeaSubmitted,
    RoutingTarget,
    Submitter,
)

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
        self._lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope) -> str:
        message = message_from_bytes(envelope.content, policy=policy.default)
        with self._lock:
            self.received.extend((rcpt.lower(), message) for rcpt in envelope.rcpt_tos)
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
def smtp_server(port: int | None = None) -> Iterator[MailBox]:
    box = MailBox()
    controller = Controller(box, hostname="127.0.0.1", port=port or free_port())
    controller.start()
    box.port = controller.port  # type: ignore[attr-defined]
    try:
        yield box
    finally:
        controller.stop()


# --- events ---------------------------------------------------------------------------------------


def submitted(idea_id: str, title: str, email: str | None = ANNA, language: str = "sv", **kw) -> Envelope:
    submitter = Submitter(name="Anna Svensson", email=email) if email else None
    idea = IdeaSubmitted(
        idea_id=idea_id,
        title=title,
        description="Beskrivning.",
        language=language,
        submitter=submitter,
        anonymous=submitter is None,
    )
    return Envelope.wrap(idea, source="/tests", **kw)


def routed(idea_id: str, title: str, targets: list[tuple[str, str | None]], areas: list[str], **kw) -> Envelope:
    event = IdeaRouted(
        idea_id=idea_id,
        title=title,
        organisations=tuple(RoutingTarget(organisation=o, unit=u) for o, u in targets),
        areas=tuple(AreaMatch(area=a) for a in areas),
        reason="test",
    )
    return Envelope.wrap(event, source="/tests", **kw)


def status(idea_id: str, to_state: IdeaState, reason: str | None, changed_by: str = "erik.lindberg") -> Envelope:
    change = IdeaStatusChanged(idea_id=idea_id, to_state=to_state, reason=reason, changed_by=changed_by)
    return Envelope.wrap(change, source="/tests")


def engaged(idea_id: str, kind: EngagementKind, person: str, text: str | None = None) -> Envelope:
    return Envelope.wrap(IdeaEngagement(idea_id=idea_id, kind=kind, person=person, text=text), source="/tests")


async def publish(producer, topic: str, *events: Envelope) -> None:
    for event in events:
        await producer.send_and_wait(topic, event.to_bytes(), key=event.subject.encode())
