"""Analytics' pure figures on hand-made histories: folding, funnel, time in state, working days, response times,
participation, and the SVG charts. No Kafka, no Redis."""

from __future__ import annotations

import itertools
import json
import uuid
from datetime import UTC, date, datetime, timedelta

import pytest

from services.analytics import charts, figures
from services.analytics.domain import fold, next_states, scrubbed, sealed_keys, summarise, timeline_entry
from services.analytics.figures import Filters
from shared.catalogue import load_catalogue
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
)
from tests.unit.test_analytics_handlers import KEYRING, person, sealed_text

CATALOGUE = load_catalogue()
T0 = datetime(2025, 3, 3, 8, 0, tzinfo=UTC)  # a Monday, 09:00 in Kiruna


def at(days: float = 0, hours: float = 0) -> datetime:
    return T0 + timedelta(days=days, hours=hours)


def entry(payload, time: datetime, event_id: str | None = None, *, live: bool = True) -> dict:
    """The timeline entry of an event; ``live=False``: as when its person's key is gone (erased)."""
    envelope = Envelope.wrap(payload, source="/tests", time=time, event_id=event_id).model_dump(mode="json")
    return timeline_entry(envelope, sealed_keys(envelope) if live else set())


def submitted(
    idea: str, time: datetime, *, email: str | None = "a@kiruna.se", org="kiruna-kommun", unit=None, live=True
):
    submitter = person(email, "Anna Svensson", organisation=org, unit=unit) if email else None
    payload = IdeaSubmitted(idea_id=idea, title="Idé", description="Text", submitter=submitter, anonymous=not email)
    return entry(payload, time, live=live)


def routed(idea: str, time: datetime, *orgs: str, areas=("klimat-och-energi",)):
    targets = tuple(RoutingTarget(organisation=o.split("/")[0], unit=[*o.split("/"), None][1]) for o in orgs)
    payload = IdeaRouted(
        idea_id=idea, organisations=targets, areas=tuple(AreaMatch(area=a) for a in areas), reason="'värme'"
    )
    return entry(payload, time)


def status(idea: str, time: datetime, to: str, reason: str | None = None, **extra):
    payload = IdeaStatusChanged(idea_id=idea, to_state=IdeaState(to), changed_by="erik", reason=reason, **extra)
    return entry(payload, time)


def engage(idea: str, time: datetime, kind: str, email: str, text: str | None = None):
    sealed = sealed_text(email, text) if text is not None else None
    return entry(IdeaEngagement(idea_id=idea, kind=EngagementKind(kind), person=person(email), text=sealed), time)


def new_id() -> str:
    return str(uuid.uuid4())


# --- folding ---------------------------------------------------------------------------------------------------


def test_timeline_entry_keeps_no_name_or_email_only_the_pseudonym_and_the_sealed_submitter():
    idea = new_id()
    kept = submitted(idea, T0, email="Anna.Svensson@Kiruna.se")
    text = json.dumps(kept)
    assert "Anna" not in text and "kiruna.se" not in text.lower()
    same = submitted(idea, T0, email="anna.svensson@kiruna.se")["data"]
    assert kept["data"]["submitter_key"] == same["submitter_key"] == KEYRING.pseudonym("anna.svensson@kiruna.se")
    assert kept["data"]["submitter_sealed"]["key"].startswith(kept["data"]["submitter_key"] + ".")
    assert "submitter_erased" not in kept["data"]

    gone = submitted(idea, T0, email="anna.svensson@kiruna.se", live=False)["data"]  # the key is erased
    assert gone["submitter_erased"] is True and "submitter_sealed" not in gone
    assert gone["submitter_key"] == kept["data"]["submitter_key"]  # still counted as the same submitter

    comment = engage(idea, T0, "comment", "per@kiruna.se", "Ring mig")["data"]
    assert "Ring mig" not in json.dumps(comment) and comment["text_sealed"]["key"].startswith(comment["person_key"])


def test_any_arrival_order_gives_the_same_projection():
    idea = new_id()
    events = [
        submitted(idea, at(0)),
        routed(idea, at(0, 1), "tekniska-verken/energi"),
        status(idea, at(1), "acknowledged"),
        engage(idea, at(1, 2), "support", "p1"),
        engage(idea, at(1, 3), "comment", "p2", "Bra!"),
        status(idea, at(2), "in-assessment"),
    ]
    results = {
        json.dumps(summarise(idea, list(order)).to_json(), sort_keys=True) for order in itertools.permutations(events)
    }
    assert len(results) == 1
    view, summary = fold(idea, events[::-1])
    assert view.state == summary.state == "in-assessment"
    assert [s for s, _ in summary.history] == ["submitted", "routed", "acknowledged", "in-assessment"]
    assert (view.supporters, view.comments) == (1, 1)
    assert [item["kind"] for item in view.timeline] == [
        "submitted",
        "routed",
        "status-changed",
        "engagement",
        "engagement",
        "status-changed",
    ]


def test_a_status_change_seen_before_its_routing_does_not_fall_back_to_routed():
    idea = new_id()
    only_status = summarise(idea, [status(idea, at(1), "acknowledged")])
    assert only_status.state == "acknowledged"
    complete = summarise(idea, [status(idea, at(1), "acknowledged"), routed(idea, at(0, 1), "kirunabostader")])
    assert complete.state == "acknowledged" and complete.organisations == ["kirunabostader"]
    assert [s for s, _ in complete.history] == ["routed", "acknowledged"]


def test_a_reroute_replaces_the_organisations_but_keeps_the_state():
    idea = new_id()
    summary = summarise(
        idea,
        [
            submitted(idea, at(0)),
            routed(idea, at(0, 1), "innovationsplattformen"),
            status(idea, at(1), "acknowledged"),
            routed(idea, at(2), "tekniska-verken/energi", "kirunabostader/forvaltning"),
        ],
    )
    assert summary.state == "acknowledged"
    assert summary.organisations == ["kirunabostader", "tekniska-verken"]
    assert summary.units == ["kirunabostader/forvaltning", "tekniska-verken/energi"]
    assert summary.cross_organisation


def test_supporters_are_distinct_people_and_comments_every_comment():
    idea = new_id()
    summary = summarise(
        idea,
        [
            submitted(idea, at(0)),
            engage(idea, at(1), "support", "p1"),
            engage(idea, at(2), "support", "p1"),
            engage(idea, at(3), "support", "p2"),
            engage(idea, at(4), "comment", "p1", "a"),
            engage(idea, at(5), "comment", "p1", "b"),
        ],
    )
    assert (summary.supporters, summary.comments) == (2, 2)


def test_next_states_follow_the_lifecycle():
    assert next_states("routed") == ("acknowledged", "declined", "merged")
    assert next_states("accepted") == ("in-pilot", "implemented", "declined", "merged")
    assert next_states("declined") == () and next_states("merged") == ()


# --- numbers ---------------------------------------------------------------------------------------------------


def test_percentiles_interpolate_between_ranks():
    assert figures.percentile([], 50) is None
    assert figures.percentile([7], 90) == 7
    assert figures.percentile([4, 1, 3, 2], 50) == 2.5
    assert figures.percentile([1, 2, 3, 4], 90) == pytest.approx(3.7)
    assert figures.percentile(list(range(1, 11)), 90) == pytest.approx(9.1)


# --- the figures on one hand-made history -------------------------------------------------------------------------

A, B, C, D, E = (f"00000000-0000-4000-8000-00000000000{n}" for n in range(1, 6))


def history(erased: str | None = None) -> list:
    """Five ideas. A: full path to spread. B: declined after acknowledgement. C: merged while routed.
    D: acknowledged late (8 working days). E: routed, still waiting (anonymous). ``erased``: that person's sealed
    values dropped from the events, as an erasure does."""
    per_idea = {
        A: [
            submitted(A, at(0), email="a@kiruna.se", unit="samhallsbyggnad"),
            routed(A, at(0, 1), "tekniska-verken/energi", "kiruna-kommun/samhallsbyggnad"),
            status(A, at(1), "acknowledged"),  # Tuesday: 1 working day
            status(A, at(3), "in-assessment"),
            status(A, at(10), "accepted"),
            status(A, at(20), "in-pilot"),
            status(A, at(40), "implemented"),
            status(A, at(60), "spread", organisation="kirunabostader"),
        ],
        B: [
            submitted(B, at(0), email="b@kiruna.se", unit="samhallsbyggnad"),
            routed(B, at(0, 2), "kirunabostader/forvaltning", areas=("boende",)),
            status(B, at(2), "acknowledged"),
            status(B, at(4), "declined", reason="Finns redan"),
        ],
        C: [
            submitted(C, at(1), email="a@kiruna.se"),
            routed(C, at(1, 4), "tekniska-verken/energi"),
            status(C, at(3), "merged", reason="Dubblett", merged_into=A),
        ],
        D: [
            submitted(D, at(30), email="d@tekniskaverken.se", org="tekniska-verken", unit="energi"),  # 2 April, Wed
            routed(D, at(30, 1), "tekniska-verken/energi"),
            status(D, at(42), "acknowledged"),  # 14 April, Mon: 8 working days
        ],
        E: [submitted(E, at(31), email=None), routed(E, at(31, 1), "innovationsplattformen", areas=())],
    }
    if erased:
        per_idea = {i: [scrubbed(e, KEYRING.pseudonym(erased)) for e in entries] for i, entries in per_idea.items()}
    return [fold(idea, entries)[1] for idea, entries in per_idea.items()]


def test_funnel_counts_ideas_that_reached_each_stage_or_beyond():
    result = figures.funnel(history())
    counts = {s["stage"]: s["count"] for s in result["stages"]}
    assert counts == {
        "submitted": 5,
        "routed": 5,
        "acknowledged": 3,  # A, B, D (C was merged straight from routed)
        "in-assessment": 1,
        "accepted": 1,
        "in-pilot": 1,
        "implemented": 1,
        "spread": 1,
    }
    assert result["exits"] == {"declined": 1, "merged": 1, "withdrawn": 0}
    assert result["stages"][2]["share_of_submitted"] == 0.6
    assert result["stages"][3]["conversion_from_previous"] == round(1 / 3, 4)


def test_time_in_state_median_and_p90_of_the_ideas_that_left_the_state():
    result = {s["state"]: s for s in figures.time_in_state(history())["states"]}
    # acknowledged: A 2 days, B 2 days; D is still there (open)
    assert result["acknowledged"]["count"] == 2 and result["acknowledged"]["open"] == 1
    assert result["acknowledged"]["median_days"] == 2.0 and result["acknowledged"]["p90_days"] == 2.0
    # routed: A 23 h, B 46 h, C 44 h (day 1 + 4 h -> day 3), D 287 h (12 days - 1 h); E is still routed (open)
    assert result["routed"]["count"] == 4 and result["routed"]["open"] == 1
    assert result["routed"]["median_hours"] == (44 + 46) / 2
    assert result["routed"]["p90_hours"] == pytest.approx(46 + 0.7 * (287 - 46))
    assert result["in-pilot"]["median_days"] == 20.0
    assert "declined" not in result and "merged" not in result  # closed states have no time in state


def test_response_times_against_the_catalogue_targets():
    now = datetime(2025, 5, 2, 10, 0, tzinfo=UTC)  # a Friday
    result = figures.response_times(history(), CATALOGUE.targets, now=now)
    by_target = {t["target"]: t for t in result["targets"]}
    ack = by_target["acknowledged"]
    # met: A (1 wd), B (2 wd), C (merged after 2 wd); late: D (8 wd > 5); overdue: E (submitted 3 April, waiting)
    assert (ack["met"], ack["late"], ack["pending"], ack["overdue"], ack["missed"]) == (3, 1, 0, 1, 2)
    assert ack["median_working_days"] == 2.0
    missed = [(m["idea_id"], m["target"], m["status"], m["working_days"]) for m in result["missed"]]
    assert (D, "acknowledged", "late", 8) in missed
    assert (E, "acknowledged", "overdue", figures.working_days_between(date(2025, 4, 3), date(2025, 5, 2))) in missed
    decided = by_target["decided"]
    # A accepted after 10 days (8 wd), B declined (4 wd), C merged (2 wd): met; D and E waiting ~21 wd < 60: pending
    assert (decided["met"], decided["late"], decided["pending"], decided["overdue"]) == (3, 0, 2, 0)


def test_participation_counts_distinct_submitters_per_month_and_their_share():
    result = figures.participation(history(), CATALOGUE)
    rows = {(r["month"], r["organisation"], r["unit"]): r for r in result["rows"]}
    march = rows[("2025-03", "kiruna-kommun", None)]
    assert march["submitters"] == 2  # a@ twice (A and C) and b@
    assert march["headcount"] == 1900 and march["share"] == round(2 / 1900, 4)
    assert rows[("2025-03", "kiruna-kommun", "samhallsbyggnad")]["submitters"] == 2
    assert rows[("2025-04", "tekniska-verken", "energi")]["share"] == round(1 / 80, 4)
    assert {m["month"]: (m["ideas"], m["anonymous_ideas"]) for m in result["months"]} == {
        "2025-03": (3, 0),
        "2025-04": (2, 1),
    }
    only_tv = figures.participation(history(), CATALOGUE, organisation="tekniska-verken")
    assert [r["organisation"] for r in only_tv["rows"]] == ["tekniska-verken", "tekniska-verken"]


def test_filters_and_the_overview():
    ideas = history()
    assert {i.idea_id for i in figures.select(ideas, Filters(organisation="tekniska-verken"))} == {A, C, D}
    assert {i.idea_id for i in figures.select(ideas, Filters(area="boende"))} == {B}
    assert {i.idea_id for i in figures.select(ideas, Filters(unit="energi"))} == {A, C, D}
    april = Filters(start=date(2025, 4, 1), end=date(2025, 4, 30))
    assert {i.idea_id for i in figures.select(ideas, april)} == {D, E}
    overview = figures.overview(ideas, CATALOGUE, now=datetime(2025, 5, 2, tzinfo=UTC))
    assert overview["ideas"] == 5
    assert overview["by_state"]["spread"] == 1 and overview["by_state"]["routed"] == 1
    assert overview["cross_organisation"]["count"] == 1 and overview["cross_organisation"]["ideas"][0]["idea_id"] == A
    assert overview["spread"]["ideas"][0]["spread_to"] == ["kirunabostader"]
    tv = next(r for r in overview["by_organisation"] if r["id"] == "tekniska-verken")
    assert tv["total"] == 3 and tv["by_state"]["acknowledged"] == 1 and tv["by_state"]["merged"] == 1
    assert overview["submitters"] == 3 and overview["anonymous_ideas"] == 1


def test_an_erased_submitter_changes_no_figure():
    now = datetime(2025, 5, 2, tzinfo=UTC)
    before, after = history(), history(erased="a@kiruna.se")  # a@ submitted A and C
    assert [i.submitter_status for i in after if i.idea_id in (A, C)] == ["former-employee"] * 2
    assert [i.index_keys() for i in before if i.idea_id == A] != [i.index_keys() for i in after if i.idea_id == A]
    assert figures.overview(after, CATALOGUE, now=now) == figures.overview(before, CATALOGUE, now=now)
    assert figures.participation(after, CATALOGUE) == figures.participation(before, CATALOGUE)
    assert figures.funnel(after) == figures.funnel(before)
    assert figures.response_times(after, CATALOGUE.targets, now=now) == figures.response_times(
        before, CATALOGUE.targets, now=now
    )


def test_csv_rows_flatten_every_figure():
    ideas = history()
    header, rows = figures.csv_rows("funnel", figures.funnel(ideas))
    assert header[0] == "stage" and rows[0][:2] == ["submitted", 5]
    now = datetime(2025, 5, 2, tzinfo=UTC)
    header, rows = figures.csv_rows(
        "response-times", figures.response_times(ideas, CATALOGUE.targets, now=now), table="missed"
    )
    assert header[:3] == ["idea_id", "title", "target"] and {r[0] for r in rows} >= {D, E}


# --- charts ----------------------------------------------------------------------------------------------------


def test_charts_escape_labels_and_carry_patterns_values_and_a_title():
    svg = str(charts.bar_chart("c1", "Tratten", [("<script>alert(1)</script>", 3), ("Mottagen", 1)]))
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    assert "<title id='c1-t'>Tratten</title>" in svg and "<pattern" in svg
    assert ">3</text>" in svg and ">1</text>" in svg  # direct value labels
    stacked = str(charts.stacked_bar_chart("c2", "S", ["x"], [("a", [2]), ("b", [3])]))
    assert "url(#c2-p0)" in stacked and "url(#c2-p1)" in stacked and "= 5" in stacked
    lines = str(charts.line_chart("c3", "L", ["2025-03", "2025-04"], [("Kiruna kommun", [2, 0]), ("TVAB", [0, 1])]))
    assert "stroke-dasharray='8 4'" in lines and "Kiruna kommun" in lines
    assert "Inga data" in str(charts.bar_chart("c4", "T", [], no_data="Inga data"))
