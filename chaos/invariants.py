"""The invariants of issue 15, as pure functions of what was observed (no Kafka, no HTTP): what each scenario must
leave behind whatever was broken. ``chaos/observe.py`` gathers the observations; tests/unit/test_chaos.py checks
these functions in microseconds."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class RoutedRecord:
    """One committed record of ``ideas.routed.v*`` or an ``org.<id>.ideas.v1`` topic."""

    topic: str
    event_id: str
    idea_id: str
    decision: str = ""
    """What makes two routings of one idea different decisions: a re-route's author ("" for the first routing)."""


@dataclass(frozen=True)
class Mail:
    """One .eml file of the mail sink (one per message and recipient)."""

    message_id: str
    recipient: str
    kind: str
    idea_id: str


@dataclass(frozen=True)
class EventDuplicates:
    same_event_id: int
    """Records beyond the first with the same (topic, CloudEvent id): a reader that does not de-duplicate acts twice."""
    same_decision: int
    """Records beyond the first with the same (topic, idea, decision), whatever their ids: the idea routed twice."""
    by_topic: dict[str, int] = field(default_factory=dict)
    """The same-decision repeats of each topic that has any."""


def event_duplicates(records: Iterable[RoutedRecord]) -> EventDuplicates:
    records = list(records)
    by_id = Counter((r.topic, r.event_id) for r in records)
    by_decision = Counter((r.topic, r.idea_id, r.decision) for r in records)
    by_topic: Counter[str] = Counter()
    for (topic, _, _), n in by_decision.items():
        if n > 1:
            by_topic[topic] += n - 1
    return EventDuplicates(
        same_event_id=sum(n - 1 for n in by_id.values()),
        same_decision=sum(n - 1 for n in by_decision.values()),
        by_topic=dict(by_topic),
    )


def unrouted(accepted: Iterable[str], records: Iterable[RoutedRecord], routed_topic_names: set[str]) -> set[str]:
    """Acknowledged ideas with no record on the routed topic."""
    routed = {r.idea_id for r in records if r.topic in routed_topic_names}
    return set(accepted) - routed


@dataclass(frozen=True)
class MailFindings:
    files: int
    distinct: int
    """Distinct (Message-ID, recipient): a mail delivered twice is two files with one Message-ID."""
    extra_routed: dict[str, int]
    """Submitters with more than one routed mail (distinct Message-IDs): their idea was told twice."""
    without_routed: set[str]
    """Submitters of an acknowledged idea who never heard it was routed."""

    @property
    def duplicates(self) -> int:
        return (self.files - self.distinct) + sum(self.extra_routed.values())


def mail_findings(mails: Iterable[Mail], submitters: Iterable[str], *, routed_kind: str = "routed") -> MailFindings:
    """``submitters``: the addresses of the people whose idea was acknowledged (one idea each)."""
    mails = list(mails)
    submitters = {s.lower() for s in submitters}
    distinct = {(m.message_id, m.recipient.lower()) for m in mails}
    routed_ids: dict[str, set[str]] = {}
    for m in mails:
        if m.kind == routed_kind:
            routed_ids.setdefault(m.recipient.lower(), set()).add(m.message_id)
    return MailFindings(
        files=len(mails),
        distinct=len(distinct),
        extra_routed={who: len(ids) - 1 for who, ids in routed_ids.items() if len(ids) > 1 and who in submitters},
        without_routed={who for who in submitters if who not in routed_ids},
    )


@dataclass
class Outcome:
    """One scenario's figures (a row of the table) and the sentences of what failed."""

    scenario: str
    rate: float | None = None
    """Ideas per second the load achieved (first attempts)."""
    accepted: int = 0
    unavailable: int = 0
    gave_up: int = 0
    lost: int = 0
    unrouted: int = 0
    duplicate_mails: int = 0
    missing_mails: int = 0
    duplicate_org_events: int = 0
    duplicate_event_ids: int = 0
    unexpected_dlq: int = 0
    lag: int = 0
    recovery_s: float = 0.0
    restarts: str = ""
    problems: list[str] = field(default_factory=list)

    def check(self) -> None:
        """Turn every broken invariant into a sentence of :attr:`problems`."""
        named = (
            (self.lost, "acknowledged ideas missing from analytics"),
            (self.unrouted, "acknowledged ideas never on the routed topic"),
            (self.duplicate_mails, "duplicate mails"),
            (self.missing_mails, "submitters without their routed mail"),
            (self.duplicate_org_events, "routing decisions on a topic more than once"),
            (self.duplicate_event_ids, "records repeated with the same CloudEvent id"),
            (self.unexpected_dlq, "unexpected dead letters"),
            (self.lag, "records not consumed (lag) at the end"),
        )
        self.problems.extend(f"{n} {what}" for n, what in named if n)

    @property
    def passed(self) -> bool:
        return not self.problems
