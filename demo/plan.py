"""The demo history as a plan: pure and deterministic. From the data files (``ideas.toml``, ``people.toml``), the
catalogue and a moment ``now``, it says what happened to every idea and when: who submitted it, where routing
placed it (routing's own classifier), which officer acknowledged, assessed and decided it, who supported and
commented. Nothing here does I/O beyond reading the data files; :mod:`demo.load` turns the plan into events.

Every id derives from the idea's title (``demo_id``), so the same data gives the same ids on every run: a second
``make demo`` finds them and loads nothing twice. A course is seeded by the title too, so it does not change from
run to run either; only the dates move with ``now`` (an idea is as old on each run, counted back from then)."""

from __future__ import annotations

import hashlib
import random
import tomllib
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from services.routing.classifier import Router
from shared.catalogue import Catalogue
from shared.events import IdeaState, derived_event_id

DATA_DIR = Path(__file__).parent
DEMO_NAMESPACE = uuid.UUID("5b0e3f7c-9d41-4a8e-b1c2-6d0a9e4f2c17")
"""UUIDv5 namespace of every demo id: demo_id(...) = uuid5(DEMO_NAMESPACE, ':'.join(parts))."""
SOURCE_PREFIX = "/demo"
"""Demo events' ``source`` is the service's own, under /demo (``/demo/services/intake``)."""
TRIAGE = "innovationsplattformen"

# Each fate's path through the lifecycle, and how long (days) each step takes after the previous one.
PATHS: dict[str, tuple[IdeaState, ...]] = {
    "open": (),
    "acknowledged": (IdeaState.ACKNOWLEDGED,),
    "in-assessment": (IdeaState.ACKNOWLEDGED, IdeaState.IN_ASSESSMENT),
    "accepted": (IdeaState.ACKNOWLEDGED, IdeaState.IN_ASSESSMENT, IdeaState.ACCEPTED),
    "declined": (IdeaState.ACKNOWLEDGED, IdeaState.IN_ASSESSMENT, IdeaState.DECLINED),
    "in-pilot": (IdeaState.ACKNOWLEDGED, IdeaState.IN_ASSESSMENT, IdeaState.ACCEPTED, IdeaState.IN_PILOT),
    "implemented": (
        IdeaState.ACKNOWLEDGED,
        IdeaState.IN_ASSESSMENT,
        IdeaState.ACCEPTED,
        IdeaState.IN_PILOT,
        IdeaState.IMPLEMENTED,
    ),
    "spread": (
        IdeaState.ACKNOWLEDGED,
        IdeaState.IN_ASSESSMENT,
        IdeaState.ACCEPTED,
        IdeaState.IN_PILOT,
        IdeaState.IMPLEMENTED,
        IdeaState.SPREAD,
    ),
    "withdrawn": (IdeaState.WITHDRAWN,),
}
STEP_DAYS: dict[IdeaState, tuple[float, float]] = {
    IdeaState.ACKNOWLEDGED: (0.2, 9.0),  # the catalogue's target is 5 working days: most make it, some do not
    IdeaState.IN_ASSESSMENT: (2.0, 15.0),
    IdeaState.ACCEPTED: (7.0, 35.0),
    IdeaState.DECLINED: (7.0, 35.0),
    IdeaState.IN_PILOT: (10.0, 40.0),
    IdeaState.IMPLEMENTED: (20.0, 70.0),
    IdeaState.SPREAD: (15.0, 50.0),
    IdeaState.WITHDRAWN: (0.5, 6.0),
}
AGE_DAYS: dict[str, tuple[float, float]] = {  # how long ago an idea of each fate was submitted
    "open": (0.3, 12.0),
    "acknowledged": (3.0, 30.0),
    "in-assessment": (15.0, 150.0),
    "accepted": (40.0, 250.0),
    "declined": (30.0, 330.0),
    "in-pilot": (70.0, 300.0),
    "implemented": (140.0, 355.0),
    "spread": (200.0, 362.0),
    "withdrawn": (8.0, 300.0),
}
ANSWERED = {IdeaState.ACKNOWLEDGED, IdeaState.IN_ASSESSMENT, IdeaState.IN_PILOT, IdeaState.IMPLEMENTED}
"""States at which the officer often writes an official answer on the idea."""


def demo_id(*parts: str) -> str:
    return str(uuid.uuid5(DEMO_NAMESPACE, ":".join(parts)))


@dataclass(frozen=True)
class DemoPerson:
    name: str
    email: str
    organisation: str
    unit: str


@dataclass(frozen=True)
class Step:
    """One thing that happened, at ``time``. ``kind``: submitted, routed, status, support, comment. ``actor``: the
    person (a :class:`DemoPerson`) for submissions, support, comments and withdrawals; an officer's id for status
    changes and official answers."""

    time: datetime
    kind: str
    event_id: str
    actor: DemoPerson | str | None = None
    to_state: IdeaState | None = None
    from_state: IdeaState | None = None
    organisation: str | None = None
    text: str | None = None


@dataclass
class IdeaPlan:
    idea_id: str
    title: str
    text: str
    language: str
    fate: str
    submitted_at: datetime
    submitter: DemoPerson | None
    organisations: tuple[str, ...] = ()
    routing: object | None = None  # the RoutingDecision
    steps: list[Step] = field(default_factory=list)
    through_api: bool = False

    @property
    def state(self) -> IdeaState:
        """The state the idea ends in once its steps are loaded."""
        states = [s.to_state for s in self.steps if s.kind == "status" and s.to_state is not None]
        return states[-1] if states else IdeaState.ROUTED


@dataclass(frozen=True)
class DemoData:
    ideas: tuple[dict, ...]
    people: tuple[DemoPerson, ...]
    comments: tuple[dict, ...]
    answers: tuple[dict, ...]
    declines: tuple[str, ...]
    withdrawals: tuple[str, ...]


def load_data(directory: Path = DATA_DIR) -> DemoData:
    ideas = tomllib.loads((directory / "ideas.toml").read_text(encoding="utf-8"))["idea"]
    people = tomllib.loads((directory / "people.toml").read_text(encoding="utf-8"))
    titles = [idea["title"] for idea in ideas]
    doubled = sorted({t for t in titles if titles.count(t) > 1})
    if doubled:
        raise ValueError(f"demo/ideas.toml: titles must be unique (an idea is known by its title): {doubled}")
    for idea in ideas:
        fate = idea.get("fate", "open")
        if fate not in PATHS:
            raise ValueError(f"demo/ideas.toml: '{idea['title']}': unknown fate '{fate}'; known: {', '.join(PATHS)}")
    return DemoData(
        ideas=tuple(ideas),
        people=tuple(DemoPerson(**p) for p in people["person"]),
        comments=tuple(people["comment"]),
        answers=tuple(people["answer"]),
        declines=tuple(d["text"] for d in people["decline"]),
        withdrawals=tuple(w["text"] for w in people["withdrawal"]),
    )


def _rng(title: str) -> random.Random:
    return random.Random(int.from_bytes(hashlib.sha256(title.encode()).digest()[:8], "big"))


def _working_hours(moment: datetime, rng: random.Random) -> datetime:
    """The same day at a plausible office hour (07-16 UTC+1), moved off the weekend to Monday."""
    day = moment.replace(hour=6 + rng.randint(0, 9), minute=rng.randint(0, 59), second=rng.randint(0, 59))
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return day


def plan_history(
    data: DemoData,
    catalogue: Catalogue,
    now: datetime,
    *,
    api_ideas: int = 6,
    titles: set[str] | None = None,
) -> list[IdeaPlan]:
    """The history of every idea (of ``titles`` only, when given), oldest first. The ``api_ideas`` most recent
    open ideas are marked ``through_api``: they are sent through intake's API now, by the realm's employees."""
    router = Router(catalogue)
    now = now.astimezone(UTC)
    latest = now - timedelta(minutes=30)
    plans: list[IdeaPlan] = []
    chosen = [idea for idea in data.ideas if titles is None or idea["title"] in titles]
    for idea in chosen:
        title, text = idea["title"], idea["text"]
        fate = idea.get("fate", "open")
        rng = _rng(title)
        low, high = AGE_DAYS[fate]
        submitted_at = min(_working_hours(now - timedelta(days=rng.uniform(low, high)), rng), latest)
        anonymous = fate != "withdrawn" and rng.random() < 0.08
        submitter = None if anonymous else rng.choice(data.people)
        idea_id = demo_id("idea", title)
        decision = router.route(title, text)
        organisations = decision.organisation_ids or (TRIAGE,)
        language = _language(title, text)
        plan = IdeaPlan(idea_id, title, text, language, fate, submitted_at, submitter, organisations, decision)
        submitted_id = demo_id(idea_id, "submitted")
        plan.steps.append(Step(submitted_at, "submitted", submitted_id, actor=submitter))
        routed_at = submitted_at + timedelta(seconds=rng.uniform(1, 20))
        plan.steps.append(Step(routed_at, "routed", derived_event_id(submitted_id, "routing.route")))
        _lifecycle(plan, data, catalogue, rng, latest)
        _engagement(plan, data, catalogue, rng, latest)
        plan.steps.sort(key=lambda s: s.time)
        plans.append(plan)
    plans.sort(key=lambda p: p.submitted_at)
    recent_open = [p for p in reversed(plans) if p.fate == "open"][:api_ideas]
    for plan in recent_open:
        plan.through_api = True
    return plans


def _language(title: str, text: str) -> str:
    from services.intake.domain import detect_language

    return detect_language(f"{title} {text}")


def officer_of(catalogue: Catalogue, organisation: str, areas: tuple[str, ...], rng: random.Random) -> str:
    """An officer of the organisation, preferring one responsible for one of the idea's areas; the innovation
    office for an organisation that has none."""
    theirs = [o for o in catalogue.officers if o.organisation == organisation]
    for officer in theirs:
        if set(officer.areas) & set(areas):
            return officer.id
    if theirs:
        return rng.choice(theirs).id
    office = [o for o in catalogue.officers if o.organisation == TRIAGE]
    return office[0].id if office else "innovation.office"


def _organisation_of(catalogue: Catalogue, officer_id: str) -> str:
    found = next((o for o in catalogue.officers if o.id == officer_id), None)
    return found.organisation if found is not None else TRIAGE


def _lifecycle(plan: IdeaPlan, data: DemoData, catalogue: Catalogue, rng: random.Random, latest: datetime) -> None:
    areas = tuple(getattr(plan.routing, "area_ids", ()))
    owner = plan.organisations[0]
    officer = officer_of(catalogue, owner, areas, rng)
    moment = plan.submitted_at
    state = IdeaState.ROUTED
    for to_state in PATHS[plan.fate]:
        low, high = STEP_DAYS[to_state]
        moment = _working_hours(moment + timedelta(days=rng.uniform(low, high)), rng)
        if moment > latest:
            return  # its course is not over yet: it stays where it is now
        actor: DemoPerson | str | None = officer
        organisation: str | None = _organisation_of(catalogue, officer)
        reason = None
        if to_state is IdeaState.DECLINED:
            reason = rng.choice(data.declines)
        elif to_state is IdeaState.WITHDRAWN:
            actor, organisation, reason = plan.submitter, None, rng.choice(data.withdrawals)
        elif to_state is IdeaState.SPREAD:  # taken up by another organisation: one of its officers says so
            others = sorted({o.organisation for o in catalogue.officers} - {owner, TRIAGE})
            taker = rng.choice(others) if others else owner
            actor = officer_of(catalogue, taker, areas, rng)
            organisation = taker
            found = catalogue.organisation(taker)
            reason = f"Införs nu även hos {found.name if found is not None else taker}."
        plan.steps.append(
            Step(
                moment,
                "status",
                demo_id(plan.idea_id, "status", to_state.value),
                actor=actor,
                to_state=to_state,
                from_state=state,
                organisation=organisation,
                text=reason,
            )
        )
        state = to_state
        answer = next((a["text"] for a in data.answers if a["state"] == to_state.value), None)
        if to_state in ANSWERED and answer and rng.random() < 0.45:
            plan.steps.append(
                Step(
                    moment + timedelta(minutes=rng.uniform(2, 90)),
                    "comment",
                    demo_id(plan.idea_id, "answer", to_state.value),
                    actor=officer,
                    organisation=_organisation_of(catalogue, officer),
                    text=answer,
                )
            )


def _engagement(plan: IdeaPlan, data: DemoData, catalogue: Catalogue, rng: random.Random, latest: datetime) -> None:
    age_days = max((latest - plan.submitted_at).total_seconds() / 86400, 0.01)
    others = [p for p in data.people if p != plan.submitter]
    popularity = rng.choice((0, 1, 1, 2, 3, 3, 4, 5, 6, 8, 11, 15))
    for person in rng.sample(others, min(popularity, len(others))):
        at = plan.submitted_at + timedelta(days=rng.uniform(0.01, min(age_days, 45)))
        plan.steps.append(Step(min(at, latest), "support", "", actor=person))  # id: intake's, from the pseudonym
    pool = [c["text"] for c in data.comments if c["lang"] == plan.language] or [c["text"] for c in data.comments]
    for n in range(rng.choice((0, 0, 1, 1, 2, 3))):
        person = rng.choice(others)
        at = plan.submitted_at + timedelta(days=rng.uniform(0.02, min(age_days, 30)))
        text = rng.choice(pool)
        plan.steps.append(Step(min(at, latest), "comment", demo_id(plan.idea_id, "comment", str(n)), person, text=text))
