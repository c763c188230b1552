"""Who hears what, on which channel, in which words. Pure: no I/O, no clock (time is passed in).

A *person* is their pseudonym (``shared/sealing.py``: HMAC-SHA256 of the lower-cased e-mail address with the
platform's pepper): submitters, followers, subscribers and officers alike (officers by the pseudonym of their
catalogue e-mail, :class:`Directory`), so one person has one feed and never hears the same news twice because they
are in two groups at once (submitter and follower, officer and subscriber ...). Who they are (address and name) is
not known here: it is opened from a sealed value only when a mail is sent (``delivery/``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, tzinfo
from typing import ClassVar

from shared.catalogue import TRIAGE_ORGANISATION, Catalogue, Officer, display_name
from shared.events import IdeaState, PreferencesChanged, RoutingTarget, Sealed, derived_event_id
from shared.lifecycle import STAGE_STATES
from shared.sealing import is_pseudonym
from shared.workdays import add_working_days, working_days_between

CHANNELS = ("email", "in-app")
"""The channels a person chooses between; webhooks belong to organisations, not people."""

ROLES = ("submitter", "assignee", "officer", "office", "follower", "subscriber", "asked")
"""In order of precedence: a person in several groups hears the news once, in the words of the first. An
*assignee* is the officer an organisation gave the idea to; *asked* is someone a challenge asks (challenges.py)."""

KINDS = (
    "routed",
    "status-changed",
    "withdrawn",
    "comment",
    "assigned",
    "deadline-warning",
    "deadline-missed",
    "challenge-opened",
    "challenge-closing",
    "digest",
)
"""Every kind of notification (a template each, but the layouts): what a notification id is derived with."""

STATE_NAMES = {
    "sv": {
        "submitted": "inskickad",
        "routed": "skickad till ansvariga",
        "acknowledged": "mottagen",
        "in-assessment": "under bedömning",
        "accepted": "antagen",
        "declined": "avböjd",
        "in-pilot": "testas i en pilot",
        "implemented": "genomförd",
        "spread": "spridd till fler verksamheter",
        "merged": "sammanslagen med en annan idé",
        "withdrawn": "tillbakadragen",
    },
    "en": {
        "submitted": "submitted",
        "routed": "sent to those responsible",
        "acknowledged": "acknowledged",
        "in-assessment": "being assessed",
        "accepted": "accepted",
        "declined": "declined",
        "in-pilot": "being piloted",
        "implemented": "implemented",
        "spread": "taken up by other organisations",
        "merged": "merged with another idea",
        "withdrawn": "withdrawn",
    },
}

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class UnknownPerson(ValueError):
    """An event names someone who is neither an e-mail address nor an officer of the catalogue."""


ERASED_DETAIL = "erased"
"""The detail of a notification skipped because its person was erased (their key is gone)."""


@dataclass(frozen=True)
class Contact:
    """The submitter of an idea, as notifications keeps them: their pseudonym and the idea's language. How to
    reach them is their sealed contact (the store's ``contact:<pseudonym>``), opened only to send a mail."""

    person: str
    language: str = "sv"


@dataclass(frozen=True)
class Directory:
    """The catalogue's officers by pseudonym: an officer is a person like any other here, and their address and
    name come from the catalogue (public configuration) when a mail is sent."""

    catalogue: Catalogue
    officers: dict[str, Officer]
    """pseudonym -> officer"""
    pseudonyms: dict[str, str]
    """officer id -> pseudonym"""
    pseudonym_of: Callable[[str], str]
    """e-mail address -> pseudonym"""

    @classmethod
    def of(cls, catalogue: Catalogue, pseudonym: Callable[[str], str]) -> Directory:
        pseudonyms = {o.id: pseudonym(o.email) for o in catalogue.officers}
        officers = {pseudonyms[o.id]: o for o in catalogue.officers}
        return cls(catalogue=catalogue, officers=officers, pseudonyms=pseudonyms, pseudonym_of=pseudonym)

    def officer(self, person: str) -> Officer | None:
        """The officer whose pseudonym ``person`` is, if any."""
        return self.officers.get(person)

    def officer_by_id(self, officer_id: str | None) -> Officer | None:
        """The catalogue's officer with this id (an assignee, a challenge's opener), if there is one."""
        pseudonym_ = self.pseudonyms.get(officer_id or "")
        return self.officers.get(pseudonym_) if pseudonym_ else None

    def person(self, raw: str | None) -> str | None:
        """The pseudonym of someone named by an officer id, an e-mail address or their pseudonym (``changed_by``:
        the submitter who withdrew their idea is named by theirs); None when neither."""
        if not raw:
            return None
        if is_pseudonym(raw):
            return raw
        try:
            return self.pseudonym_of(person_id(raw, self.catalogue))
        except UnknownPerson:
            return None

    def recipients(self, officers: Iterable[Officer], role: str = "officer") -> list[Recipient]:
        return [Recipient(self.pseudonyms[o.id], role, o.language) for o in officers]


@dataclass(frozen=True)
class Recipient:
    person: str
    role: str
    language: str | None = None
    """The language known without asking the person (an officer's in the catalogue, the language of one's idea)."""


@dataclass(frozen=True)
class Preferences:
    channels: frozenset[str] = frozenset(CHANNELS)
    frequency: str = "immediate"
    areas: tuple[str, ...] = ()
    organisations: tuple[str, ...] = ()
    language: str | None = None

    @classmethod
    def of(cls, changed: PreferencesChanged) -> Preferences:
        return cls(
            channels=frozenset(changed.channels),
            frequency=changed.frequency,
            areas=changed.areas,
            organisations=changed.organisations,
            language=changed.language,
        )

    def as_event(self, person: str, contact: Sealed, via: str = "api") -> PreferencesChanged:
        """The event of these preferences: ``person`` is the pseudonym, ``contact`` their sealed address and name."""
        return PreferencesChanged(
            person=person,
            contact=contact,
            channels=tuple(c for c in CHANNELS if c in self.channels),
            frequency=self.frequency,  # type: ignore[arg-type]
            areas=self.areas,
            organisations=self.organisations,
            language=self.language,  # type: ignore[arg-type]
            via=via,  # type: ignore[arg-type]
        )


@dataclass(frozen=True)
class IdeaFacts:
    """What notifications knows of one idea, gathered from its events."""

    idea_id: str
    title: str = ""
    language: str = "sv"
    submitter: Contact | None = None
    organisations: tuple[RoutingTarget, ...] = ()
    areas: tuple[str, ...] = ()
    followers: frozenset[str] = frozenset()
    state: str | None = None
    assignees: Mapping[str, str] = field(default_factory=dict)
    """organisation -> the id of the catalogue officer it gave the idea to (IdeaAssigned); unassigned: absent."""

    @property
    def current_state(self) -> IdeaState:
        return current_state(self.state)


def current_state(state: str | None) -> IdeaState:
    """An idea's state as notifications keeps it: its last status change, else routed (it knows routed ideas)."""
    try:
        return IdeaState(state) if state else IdeaState.ROUTED
    except ValueError:
        return IdeaState.ROUTED


@dataclass(frozen=True)
class DeadlineClock:
    """An idea's response-time clock: when it started (the submission, as analytics measures; the first routing
    for an idea whose submission time was not kept), the event its notices are named by (the first routing,
    :func:`deadline_cause`), and the idea's state (which targets still run)."""

    start: float
    event_id: str
    state: IdeaState


@dataclass(frozen=True)
class News:
    """Something that happened to an idea that people should hear about."""

    kind: str  # one of KINDS
    cause_event_id: str
    idea_id: str
    time: datetime
    title: str
    organisations: tuple[RoutingTarget, ...] = ()
    areas: tuple[str, ...] = ()
    to_state: str | None = None
    reason: str | None = None
    actor: str | None = None
    comment: str | None = None
    """A comment's text; None when it was removed (its writer was erased)."""
    by: str | None = None
    """The pseudonym of a comment's writer."""
    merged_into: str | None = None
    due: datetime | None = None
    """A deadline's or a challenge's closing, in local time (its date is what is told)."""
    rerouted: bool = False
    anonymous: bool = False
    """A comment whose writer chose to be shown as 'anonym': never named."""
    official: str | None = None
    """A comment written as the answer of this organisation (an officer's)."""
    target: str | None = None
    """The response-time stage a deadline notice is about (shared.lifecycle.STAGE_STATES)."""
    asker: str | None = None
    """The organisation that asks a challenge's question."""
    description: str | None = None
    """A challenge's description."""
    path: str | None = None
    """The page the news links to, under the site's address; None: the idea's page (``/ideas/<id>``)."""

    @property
    def page(self) -> str:
        return self.path or f"/ideas/{self.idea_id}"


@dataclass(frozen=True)
class Plan:
    """What to do for one recipient on one channel."""

    channel: str
    action: str  # deliver | digest | skip
    detail: str | None = None


@dataclass(frozen=True)
class FeedItem:
    notification_id: str
    cause_event_id: str
    idea_id: str
    recipient: str
    kind: str
    text: str
    link: str
    time: str = ""
    by: str | None = None
    """The pseudonym of the person whose words ``text`` quotes (a comment's writer); kept, not shown."""
    removed: str | None = None
    """``text`` as it reads once that person is erased (the comment removed); kept, not shown."""
    path: str = ""
    """The page it links to under the site's address (``/challenges/<id>``); empty: the idea's page."""

    PRIVATE: ClassVar[tuple[str, ...]] = ("by", "removed")
    """What a feed keeps of an item but never shows (the API, the pages, the live streams)."""


@dataclass(frozen=True)
class Rendered:
    subject: str
    summary: str
    text: str
    html: str


@dataclass(frozen=True)
class Audience:
    recipients: tuple[Recipient, ...]
    organisations: tuple[str, ...] = field(default=())
    """Organisations whose webhooks hear the news."""


# --- who ------------------------------------------------------------------------------------------


def is_email(value: str) -> bool:
    return bool(_EMAIL.match(value))


def person_id(raw: str, catalogue: Catalogue) -> str:
    """The person id of someone named in an event: an e-mail address, or an officer's catalogue id."""
    value = raw.strip().lower()
    if _EMAIL.match(value):
        return value
    officer = next((o for o in catalogue.officers if o.id == value), None)
    if officer is None:
        raise UnknownPerson(f"unknown person {raw!r}: neither an e-mail address nor an officer of the catalogue")
    return officer.email.lower()


def officer_name(raw: str | None, catalogue: Catalogue) -> str | None:
    """An officer's name for the news ('Erik Lindberg'); None for people who are not officers."""
    if not raw:
        return None
    value = raw.strip().lower()
    officer = next((o for o in catalogue.officers if value in (o.id, o.email.lower())), None)
    return officer.name if officer else None


def responsible_officers(
    catalogue: Catalogue, organisations: Iterable[RoutingTarget], areas: Iterable[str]
) -> list[Officer]:
    """Officers of each organisation (and unit) and of each area the idea was routed to."""
    targets = list(organisations)
    area_ids = set(areas)
    chosen = []
    for officer in catalogue.officers:
        by_org = any(
            officer.organisation == t.organisation and (t.unit is None or officer.unit in (None, t.unit))
            for t in targets
        )
        if by_org or area_ids & set(officer.areas):
            chosen.append(officer)
    return chosen


def innovation_office(catalogue: Catalogue) -> list[Officer]:
    return [o for o in catalogue.officers if o.organisation == TRIAGE_ORGANISATION]


def dedupe(recipients: Iterable[Recipient], *, exclude: Iterable[str] = ()) -> tuple[Recipient, ...]:
    """One entry per person, in the role that comes first in :data:`ROLES`; ``exclude`` hears nothing."""
    excluded = set(exclude)
    best: dict[str, Recipient] = {}
    for recipient in recipients:
        if recipient.person in excluded:
            continue
        current = best.get(recipient.person)
        if current is None or ROLES.index(recipient.role) < ROLES.index(current.role):
            best[recipient.person] = recipient
    return tuple(sorted(best.values(), key=lambda r: (ROLES.index(r.role), r.person)))


def _submitter(facts: IdeaFacts) -> list[Recipient]:
    return [Recipient(facts.submitter.person, "submitter", facts.submitter.language)] if facts.submitter else []


def _others(people: Iterable[str], role: str) -> list[Recipient]:
    return [Recipient(p, role) for p in sorted(people)]


def _org_ids(organisations: Iterable[RoutingTarget]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(t.organisation for t in organisations))


def routed_audience(facts: IdeaFacts, news: News, directory: Directory, subscribers: Iterable[str]) -> Audience:
    """The submitter hears where the idea went; the responsible officers that a new idea is theirs;
    people who follow one of its areas or organisations that there is a new idea."""
    officers = responsible_officers(directory.catalogue, news.organisations, news.areas)
    recipients = [*_submitter(facts), *directory.recipients(officers), *_others(subscribers, "subscriber")]
    return Audience(dedupe(recipients), _org_ids(news.organisations))


def status_audience(
    facts: IdeaFacts, news: News, changed_by: str | None, directory: Directory, subscribers: Iterable[str]
) -> Audience:
    """The submitter and everyone following the idea (or its areas) hear every change; not whoever made it."""
    recipients = [*_submitter(facts), *_others(facts.followers, "follower"), *_others(subscribers, "subscriber")]
    changer = directory.person(changed_by)
    return Audience(dedupe(recipients, exclude=[changer] if changer else []), _org_ids(facts.organisations))


def comment_audience(facts: IdeaFacts, commenter: str) -> Audience:
    """The submitter and the followers hear of a comment; the commenter (a pseudonym) does not."""
    recipients = [*_submitter(facts), *_others(facts.followers, "follower")]
    return Audience(dedupe(recipients, exclude=[commenter]), _org_ids(facts.organisations))


def assignees(facts: IdeaFacts, directory: Directory) -> dict[str, Officer]:
    """organisation -> the officer it gave the idea to, for those assigned to an officer still in the catalogue
    (an assignee no longer there counts as unassigned: the organisation's officers hear instead)."""
    found = {}
    for organisation, officer_id in facts.assignees.items():
        officer = directory.officer_by_id(officer_id)
        if officer is not None:
            found[organisation] = officer
    return found


def in_charge(facts: IdeaFacts, directory: Directory) -> list[Recipient]:
    """Who has the idea: per organisation its assignee if it gave the idea to one, else its responsible officers
    (by organisation/unit, and the officers of the idea's areas, as for a new idea)."""
    given = assignees(facts, directory)
    officers = [
        o
        for o in responsible_officers(directory.catalogue, facts.organisations, facts.areas)
        if o.organisation not in given
    ]
    return [*directory.recipients(given.values(), "assignee"), *directory.recipients(officers)]


def deadline_warning_audience(facts: IdeaFacts, directory: Directory) -> Audience:
    """A target about to be missed: the assignee of each organisation that gave the idea to one, else its
    officers."""
    return Audience(dedupe(in_charge(facts, directory)))


def deadline_missed_audience(directory: Directory, facts: IdeaFacts | None = None) -> Audience:
    """A target missed: the innovation office, and the assignees (they have the idea)."""
    given = assignees(facts, directory).values() if facts is not None else ()
    office = directory.recipients(innovation_office(directory.catalogue), "office")
    return Audience(dedupe([*directory.recipients(given, "assignee"), *office]))


def withdrawn_audience(
    facts: IdeaFacts, withdrawn_by: str | None, directory: Directory, subscribers: Iterable[str]
) -> Audience:
    """The submitter withdrew the idea: its organisations' officers (every one of them: nobody needs to act on it
    any more) and assignees hear it, with the reason, and so do its followers and subscribers; not the submitter
    (they did it)."""
    officers = responsible_officers(directory.catalogue, facts.organisations, facts.areas)
    recipients = [
        *directory.recipients(assignees(facts, directory).values(), "assignee"),
        *directory.recipients(officers),
        *_others(facts.followers, "follower"),
        *_others(subscribers, "subscriber"),
    ]
    changer = directory.person(withdrawn_by)
    return Audience(dedupe(recipients, exclude=[changer] if changer else []), _org_ids(facts.organisations))


def assigned_audience(assignee: str | None, assigned_by: str, directory: Directory) -> Audience:
    """The officer an idea was given to hears it (a reassignment: the new one); nobody when it was taken back
    (unassigned), nor when an officer took it themself."""
    officer = directory.officer_by_id(assignee)
    if officer is None or directory.person(assigned_by) == directory.pseudonyms[officer.id]:
        return Audience(())
    return Audience(tuple(directory.recipients([officer], "assignee")))


def carried_over(facts: IdeaFacts) -> frozenset[str]:
    """Who follows an idea merged into another: its followers (supporters and commenters follow) and its
    submitter. They follow the idea it went into from then on."""
    return facts.followers | ({facts.submitter.person} if facts.submitter else set())


# --- how --------------------------------------------------------------------------------------------


def language_of(recipient: Recipient, preferences: Preferences) -> str:
    return preferences.language or recipient.language or "sv"


def plan(preferences: Preferences) -> list[Plan]:
    """The person's channels: in-app at once, e-mail at once or in the daily digest, or skipped by choice."""
    plans = []
    if "in-app" in preferences.channels:
        plans.append(Plan("in-app", "deliver"))
    else:
        plans.append(Plan("in-app", "skip", "preference: in-app off"))
    if "email" not in preferences.channels:
        plans.append(Plan("email", "skip", "preference: e-mail off"))
    elif preferences.frequency == "daily":
        plans.append(Plan("email", "digest", "preference: daily digest"))
    else:
        plans.append(Plan("email", "deliver"))
    return plans


def notification_id(cause_event_id: str, kind: str, recipient: str, channel: str) -> str:
    """One id per (event, recipient, channel): the same cause always yields the same id (delivery rule 3)."""
    return derived_event_id(cause_event_id, f"notifications.{kind}:{recipient}:{channel}")


def message_id(notification: str, sender: str) -> str:
    """The e-mail Message-ID, from the notification id and the sender's domain."""
    domain = sender.rsplit("@", 1)[-1].strip(" >") or "innovation.kiruna.se"
    return f"<{notification}@{domain}>"


DIGEST_SUBJECT_PREFIX = "digest-"  # a digest's delivery and outcome name ``digest-<day>`` where an idea id would be


def digest_subject(day: date) -> str:
    return f"{DIGEST_SUBJECT_PREFIX}{day.isoformat()}"


def digest_id(day: date, person: str) -> str:
    return derived_event_id(f"digest:{day.isoformat()}:{person}", "notifications.digest")


def organisation_names(organisations: Iterable[RoutingTarget], catalogue: Catalogue, language: str) -> list[str]:
    names = []
    for target in organisations:
        org = catalogue.organisation(target.organisation)
        if org is None:
            names.append(target.organisation)
            continue
        name = display_name(org, language)
        unit = next((u for u in org.units if u.id == target.unit), None)
        if unit is not None:
            name += f" – {display_name(unit, language)}"
        names.append(name)
    return names


def area_names(areas: Iterable[str], catalogue: Catalogue, language: str) -> list[str]:
    names = []
    for area_id in areas:
        area = catalogue.area(area_id)
        names.append(display_name(area, language) if area else area_id)
    return names


def join(names: list[str], language: str) -> str:
    if len(names) <= 1:
        return "".join(names)
    conjunction = " and " if language == "en" else " och "
    return ", ".join(names[:-1]) + conjunction + names[-1]


def template_context(news: News, recipient: Recipient, language: str, catalogue: Catalogue, base_url: str) -> dict:
    """Everything a template may say about the news, in the recipient's language."""
    official = catalogue.organisation(news.official) if news.official else None
    asker = catalogue.organisation(news.asker) if news.asker else None
    return {
        "kind": news.kind,
        "role": recipient.role,
        "lang": language,
        "idea_id": news.idea_id,
        "title": news.title,
        "where": join(organisation_names(news.organisations, catalogue, language), language),
        "areas": join(area_names(news.areas, catalogue, language), language),
        "rerouted": news.rerouted,
        "state": STATE_NAMES[language].get(news.to_state or "", news.to_state or ""),
        "to_state": news.to_state,
        "reason": news.reason,
        "actor": news.actor,
        "comment": news.comment,
        "merged_into": news.merged_into,
        "merged_link": f"{base_url}/ideas/{news.merged_into}" if news.merged_into else None,
        "follows_target": bool(news.merged_into) and recipient.role in ("submitter", "follower"),
        "due": news.due.date().isoformat() if news.due else None,
        "anonymous": news.anonymous,
        "official": (display_name(official, language) if official else news.official) if news.official else None,
        "target": news.target or "acknowledged",
        "asker": (display_name(asker, language) if asker else news.asker) if news.asker else None,
        "description": news.description,
        "link": f"{base_url}{news.page}",
    }


# --- when -----------------------------------------------------------------------------------------


STAGES = tuple(STAGE_STATES)
"""The response-time targets (acknowledged, assessed, decided), each warned of and told when missed."""


def running_targets(state: IdeaState) -> tuple[str, ...]:
    """The targets whose clock still runs for an idea in ``state`` (none for a final one: withdrawn, merged,
    declined, or decided)."""
    return tuple(stage for stage in STAGES if state in STAGE_STATES[stage])


def deadline_state(start: datetime, now: datetime, target_days: int, warning_days: int, zone: tzinfo) -> str:
    """'ok', 'warning' (the target is about to be missed) or 'missed', as analytics measures it
    (services/analytics/figures.py, response times): whole working days in ``zone`` from the local date of
    ``start`` (the submission) to today; met up to and including the day ``target_days`` working days after it,
    missed from the next working day. The warning comes ``warning_days`` working days before that last day."""
    elapsed = working_days_between(start.astimezone(zone).date(), now.astimezone(zone).date())
    if elapsed > target_days:
        return "missed"
    if warning_days and elapsed >= max(target_days - warning_days, 0):
        return "warning"
    return "ok"


def due_date(start: datetime, target_days: int, zone: tzinfo) -> datetime:
    """The last day (local) on which the target is met."""
    return add_working_days(start.astimezone(zone), target_days)


def deadline_cause(clock_event_id: str, state: str, target: str) -> str:
    """The cause id of a deadline notice: one per idea, target and notice, from the idea's first routing (the
    acknowledgement's as before issue 18, so that no notice already sent goes out again)."""
    return derived_event_id(clock_event_id, f"notifications.deadline-{state}.{target}")


def local_day(moment: datetime, zone: tzinfo) -> date:
    return moment.astimezone(zone).date()


# --- signatures -----------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class InvalidUnsubscribeToken(ValueError):
    """An unsubscribe link that does not work: ``reason`` is "expired", "bad signature" or "malformed"."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _unsubscribe_mac(person: str, expires: int, secret: str) -> bytes:
    return hmac.new(secret.encode(), f"unsubscribe:email:v2:{expires}:{person}".encode(), hashlib.sha256).digest()


def unsubscribe_token(person: str, secret: str, expires: datetime) -> str:
    """A token that lets whoever holds it turn off e-mail for ``person`` (and nothing else) until ``expires``:
    ``<person>.<expiry, Unix seconds>.<HMAC over both>``, so that the expiry cannot be changed without the key."""
    at = int(expires.timestamp())
    return f"{_b64(person.encode())}.{at}.{_b64(_unsubscribe_mac(person, at, secret)[:18])}"


def verify_unsubscribe_token(token: str, secret: str, now: datetime) -> str:
    """The person the token was made for, or :class:`InvalidUnsubscribeToken`. Tokens of the first format
    (``<person>.<mac>``, which never expired) are malformed: the link in a newer e-mail works."""
    try:
        encoded, expires, mac = token.split(".")
        person, at = _unb64(encoded).decode(), int(expires)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidUnsubscribeToken("malformed") from exc
    if not hmac.compare_digest(_b64(_unsubscribe_mac(person, at, secret)[:18]), mac):
        raise InvalidUnsubscribeToken("bad signature")
    if now.timestamp() >= at:
        raise InvalidUnsubscribeToken("expired")
    return person


def webhook_signature(secret: str, timestamp: str, body: bytes) -> str:
    """``X-Kiruna-Signature``: HMAC-SHA256 over ``<X-Kiruna-Timestamp>.<raw body>``, hex, prefixed 'sha256='."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()
