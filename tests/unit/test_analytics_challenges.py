"""Challenges on the read side, over the in-memory fakes: a challenge kept as opened (a repeat changes nothing, a
newer event of the same challenge wins), open until its closing time, the list filtered by open/closed and by
organisation, a challenge's ideas with their states and its figures (ideas, distinct participants with anonymous
ideas apart, organisations, states); nothing of who opened it in what anyone sees."""

from __future__ import annotations

import json
import uuid

from services.analytics.challenges import concerns, is_open
from shared.events import ChallengeAudience, ChallengeOpened, Envelope, IdeaSubmitted
from tests.unit.test_analytics_handlers import Analytics, at, event, new_id, person, routed, status

TOPIC = "challenges.v1"


def opened(challenge_id: str, *, closes_in_days: float = 30, organisation="tekniska-verken", audience=(), **more):
    payload = ChallengeOpened(
        challenge_id=challenge_id,
        question=more.pop("question", "Hur minskar vi energianvändningen i våra lokaler?"),
        description="Vi vill ha idéer från alla som arbetar i våra hus.",
        organisation=organisation,
        audience=tuple(ChallengeAudience(organisation=o, unit=u) for o, u in audience),
        areas=("klimat-och-energi",),
        opens_at=more.get("opens_at", at(0)),
        closes_at=at(closes_in_days),
        opened_by="erik.lindberg",
    )
    return Envelope.wrap(payload, source="/tests", time=more.get("time", at(0)))


def answer(idea: str, challenge_id: str, time, email: str | None):
    submitter = person(email) if email else None
    payload = IdeaSubmitted(
        idea_id=idea,
        title="Svar",
        description="Text",
        submitter=submitter,
        anonymous=not email,
        challenge_id=challenge_id,
    )
    return event(payload, time)


async def test_a_challenge_is_kept_as_opened_and_a_newer_event_of_it_wins():
    analytics = Analytics()  # the read model's clock is 30 days after T0
    challenge = str(uuid.uuid4())
    first = opened(challenge, closes_in_days=40)
    await analytics.handlers.challenge_opened(TOPIC, first)
    await analytics.handlers.challenge_opened(TOPIC, first)  # redelivered
    assert analytics.skipped(TOPIC) == 1
    corrected = opened(challenge, closes_in_days=45, question="Hur sparar vi energi i lokalerna?", time=at(1))
    await analytics.handlers.challenge_opened(TOPIC, corrected)
    await analytics.handlers.challenge_opened(TOPIC, first)  # older: changes nothing
    [shown] = await analytics.read.challenges()
    assert shown["question"] == "Hur sparar vi energi i lokalerna?" and shown["open"] is True
    assert "opened_by" not in shown and "erik.lindberg" not in json.dumps(shown)
    assert shown["url"] == f"/challenges/{challenge}" and shown["ideas"] == 0


async def test_the_list_is_newest_first_and_filtered_by_open_and_organisation():
    analytics = Analytics()
    old, new, group = (str(uuid.uuid4()) for _ in range(3))
    await analytics.handlers.challenge_opened(TOPIC, opened(old, closes_in_days=10))  # closed by day 30
    await analytics.handlers.challenge_opened(
        TOPIC, opened(new, closes_in_days=60, organisation="kirunabostader", opens_at=at(5))
    )
    await analytics.handlers.challenge_opened(
        TOPIC,
        opened(group, closes_in_days=90, organisation="innovationsplattformen", audience=[("kiruna-kommun", None)],
               opens_at=at(2)),
    )  # fmt: skip
    ids = [c["challenge_id"] for c in await analytics.read.challenges()]
    assert ids == [new, group, old]
    assert [c["challenge_id"] for c in await analytics.read.challenges(open=False)] == [old]
    assert [c["challenge_id"] for c in await analytics.read.challenges(open=True)] == [new, group]
    # asked by it, or its staff asked (an empty audience is the whole group)
    assert [c["challenge_id"] for c in await analytics.read.challenges(organisation="kiruna-kommun")] == [
        new,
        group,
        old,
    ]
    assert [c["challenge_id"] for c in await analytics.read.challenges(organisation="kirunabostader")] == [new, old]


def test_open_until_the_closing_time_and_whose_it_is():
    challenge = opened(str(uuid.uuid4()), closes_in_days=3).model_dump(mode="json")["data"]
    assert is_open(challenge, at(2, 23)) and not is_open(challenge, at(3)) and not is_open(challenge, at(4))
    unit_only = {"organisation": "innovationsplattformen", "audience": [{"organisation": "kiruna-kommun"}]}
    assert concerns(unit_only, "kiruna-kommun") and concerns(unit_only, "innovationsplattformen")
    assert not concerns(unit_only, "tekniska-verken")


async def test_a_challenge_lists_its_ideas_and_figures():
    analytics = Analytics()
    challenge, elsewhere = str(uuid.uuid4()), str(uuid.uuid4())
    await analytics.handlers.challenge_opened(TOPIC, opened(challenge))
    a, b, c, d, e = (new_id() for _ in range(5))
    await analytics.record(
        answer(a, challenge, at(1), "anna@kiruna.se"),
        answer(b, challenge, at(2), "anna@kiruna.se"),  # the same person again: one participant
        answer(c, challenge, at(3), "per@kirunabostader.se"),
        answer(d, challenge, at(4), None),  # anonymous: counted apart
        answer(e, elsewhere, at(5), "kim@kiruna.se"),
        routed(a, at(1, 1), "tekniska-verken/energi", "kiruna-kommun"),
        routed(b, at(2, 1), "tekniska-verken/energi"),
        status(b, at(3), "acknowledged"),
        status(c, at(4), "declined", reason="Finns redan"),
    )
    found = await analytics.read.challenge(challenge)
    assert [i["idea_id"] for i in found["ideas"]] == [d, c, b, a]
    assert {i["idea_id"]: i["state"] for i in found["ideas"]} == {
        a: "routed", b: "acknowledged", c: "declined", d: "submitted",
    }  # fmt: skip
    figures = found["figures"]
    assert (figures["ideas"], figures["participants"], figures["anonymous_ideas"]) == (4, 2, 1)
    assert figures["organisations"] == {"tekniska-verken": 2, "kiruna-kommun": 1}
    assert {k: v for k, v in figures["by_state"].items() if v} == {
        "submitted": 1, "routed": 1, "acknowledged": 1, "declined": 1,
    }  # fmt: skip
    assert "anna" not in json.dumps(found).lower()
    [listed] = [c for c in await analytics.read.challenges() if c["challenge_id"] == challenge]
    assert listed["ideas"] == 4
    assert await analytics.read.challenge(str(uuid.uuid4())) is None
    assert found["open"] is False  # it closes at day 30, the read model's now: closed by itself
