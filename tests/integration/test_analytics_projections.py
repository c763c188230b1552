"""Analytics on the real Kafka and Redis: a scripted history of ideas published as CloudEvents JSON (with
duplicates and events out of order; people sealed under their data keys from the real keyring, as intake seals
them) -> projections equal figures computed by hand; wiping Redis and replaying gives identical API answers (the
inbox, the submitters' names and "my ideas" included); bad queries answer 422 naming the parameter. The inbox and
an idea's officer view are asked for with real tokens from the local Keycloak."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from services.analytics.app import create_app
from services.analytics.rebuild import rebuild
from services.analytics.settings import AnalyticsSettings
from shared.events import (
    AreaMatch,
    DeliveryOutcome,
    EngagementKind,
    Envelope,
    IdeaEngagement,
    IdeaRouted,
    IdeaState,
    IdeaStatusChanged,
    IdeaSubmitted,
    NotificationSent,
    PersonRef,
    RoutingTarget,
)
from shared.keyring import Keyring
from shared.service import redis_client
from shared.settings import ServiceSettings
from shared.topics import Topics
from tests.support.apps import running
from tests.support.identity import ANNA, INNOVATION_OFFICE, bearer
from tests.support.kafka import eventually, probe, raw_producer

pytestmark = pytest.mark.kafka

T0 = datetime(2025, 3, 3, 8, 0, tzinfo=UTC)  # Monday 3 March 2025, 09:00 in Kiruna

I1 = "11111111-1111-4111-8111-111111111111"  # the full path to spread, cross-organisation
I2 = "22222222-2222-4222-8222-222222222222"  # declined
I3 = "33333333-3333-4333-8333-333333333333"  # merged into I1
I4 = "44444444-4444-4444-8444-444444444444"  # acknowledged late; events published in reverse order
I5 = "55555555-5555-4555-8555-555555555555"  # anonymous, triage, never answered
TITLES = {
    I1: "Fjärrvärme till det nya badhuset",
    I2: "Laddstolpar vid hyreshusen",
    I3: "Samma som badhus-idén: värm badhuset med fjärrvärme",
    I4: "Solceller på värmeverkets tak",
    I5: "<b>Bättre</b> snöröjning & cykelvägar",
}


def at(days: float = 0, hours: float = 0) -> datetime:
    return T0 + timedelta(days=days, hours=hours)


@contextlib.asynccontextmanager
async def people_keyring(settings: ServiceSettings) -> AsyncIterator[Keyring]:
    """The platform's keyring (shared/keyring.py) on the Redis prefix and topics of the service under test, as
    intake uses it to seal people into events (its keys recorded in the test's people.keys.v1)."""
    redis = redis_client(settings)
    keyring = Keyring.from_settings(redis, settings, Topics(settings.kafka.topic_prefix).people_keys)
    try:
        yield keyring
    finally:
        await keyring.close()
        await redis.aclose()


def ev(payload, time: datetime, event_id: str) -> Envelope:
    return Envelope.wrap(payload, source="/tests/history", time=time, event_id=event_id)


def submitted(idea, time, *, person: PersonRef | None = None):
    payload = IdeaSubmitted(
        idea_id=idea, title=TITLES[idea], description=f"Beskrivning av {TITLES[idea]}", submitter=person,
        anonymous=person is None,
    )  # fmt: skip
    return ev(payload, time, f"{idea[:8]}-0000-4000-8000-000000000001")


def routed(idea, time, targets, areas, n=2):
    payload = IdeaRouted(
        idea_id=idea,
        title=TITLES[idea],
        organisations=tuple(RoutingTarget(organisation=o, unit=u) for o, u in targets),
        areas=tuple(AreaMatch(area=a) for a in areas),
        reason="'fjärrvärme' -> klimat-och-energi",
        triage=targets == [("innovationsplattformen", None)],
    )
    return ev(payload, time, f"{idea[:8]}-0000-4000-8000-00000000000{n}")


def changed(idea, time, to, n, reason=None, **extra):
    payload = IdeaStatusChanged(
        idea_id=idea, to_state=IdeaState(to), reason=reason, changed_by="erik.lindberg", **extra
    )
    return ev(payload, time, f"{idea[:8]}-0000-4000-8000-0000000000{n:02d}")


async def engaged(keyring: Keyring, idea, time, kind, email, n, text=None):
    person, key = await keyring.person_ref(email, email.split("@")[0].replace(".", " ").title())
    sealed = key.seal(text) if text is not None else None
    payload = IdeaEngagement(idea_id=idea, kind=EngagementKind(kind), person=person, text=sealed)
    return ev(payload, time, f"{idea[:8]}-0000-4000-8000-0000000001{n:02d}")


async def history(topics: Topics, keyring: Keyring) -> list[tuple[str, Envelope]]:
    """(topic, event) in publishing order. Duplicates and out-of-order deliveries are part of the script."""
    s, r, c, e = topics.submitted, topics.routed, topics.status_changed, topics.engagement

    async def named(email: str, name: str, org: str, unit: str) -> PersonRef:
        return (await keyring.person_ref(email, name, organisation=org, unit=unit))[0]

    support = await engaged(keyring, I1, at(1, 5), "support", "lisa.berg@kiruna.se", 1)
    decline = changed(I2, at(4), "declined", 4, reason="Finns redan i laddplanen för 2026")
    anna = await named("anna.svensson@kiruna.se", "Anna Svensson", "kiruna-kommun", "samhallsbyggnad")
    anna_again = await named("Anna.Svensson@kiruna.se", "Anna Svensson", "kiruna-kommun", "samhallsbyggnad")
    bo = await named("bo@kirunabostader.se", "Bo Berg", "kirunabostader", "forvaltning")
    dag = await named("dag@tekniskaverken.se", "Dag Dahl", "tekniska-verken", "energi")
    script = [
        (s, submitted(I1, at(0), person=anna)),
        (r, routed(I1, at(0, 1), [("tekniska-verken", "energi"), ("kiruna-kommun", "samhallsbyggnad")],
                   ["klimat-och-energi", "stadsomvandling"])),
        (c, changed(I1, at(1), "acknowledged", 3)),
        (c, changed(I1, at(3), "in-assessment", 4)),
        (c, changed(I1, at(10), "accepted", 5)),
        (c, changed(I1, at(20), "in-pilot", 6)),
        (c, changed(I1, at(40), "implemented", 7)),
        (c, changed(I1, at(60), "spread", 8, reason="Kirunabostäder tar efter", organisation="kirunabostader")),
        (e, support),
        (e, support),  # duplicate delivery
        (e, await engaged(keyring, I1, at(1, 6), "support", "lisa.berg@kiruna.se", 2)),  # the same person again
        (e, await engaged(keyring, I1, at(1, 7), "support", "olle@tekniskaverken.se", 3)),
        (e, await engaged(keyring, I1, at(2), "comment", "mia@kirunabostader.se", 4,
                          text="Bra idé, <script>alert(1)</script>")),
        (s, submitted(I2, at(0), person=bo)),
        (r, routed(I2, at(0, 2), [("kirunabostader", "forvaltning")], ["boende"])),
        (c, changed(I2, at(2), "acknowledged", 3)),
        (c, decline),
        (c, decline),  # duplicate delivery
        (s, submitted(I3, at(1), person=anna_again)),
        (r, routed(I3, at(1, 4), [("tekniska-verken", "energi")], ["klimat-och-energi"])),
        (c, changed(I3, at(3), "merged", 3, reason="Samma idé som en tidigare", merged_into=I1)),
        # I4 arrives backwards: the acknowledgement before the routing before the submission
        (c, changed(I4, at(42), "acknowledged", 3)),
        (r, routed(I4, at(30, 1), [("tekniska-verken", "energi")], ["klimat-och-energi"])),
        (s, submitted(I4, at(30), person=dag)),
        (s, submitted(I5, at(31))),
        (r, routed(I5, at(31, 1), [("innovationsplattformen", None)], [])),
        (topics.notifications_sent, ev(
            NotificationSent(idea_id=I1, cause_event_id="x", recipient=anna.pseudonym, channel="in-app",
                             outcome=DeliveryOutcome.DELIVERED),
            at(0, 2), "11111111-0000-4000-8000-000000000999",
        )),
    ]  # fmt: skip
    return script


TIMELINE_LENGTHS = {I1: 13, I2: 4, I3: 3, I4: 3, I5: 2}
"""Distinct events shown per idea (notifications are not; I1 shows I3 merged into it)."""


def unscored(text: str) -> str:
    """An answer without the similar-ideas engine's scores (the inbox suggests duplicates): the engine refreshes its
    vector lengths only when the number of ideas moved by 5 % (shared/similarity.py), so a score depends a little
    on the order in which ideas came; which ideas are suggested, and the words they share, does not."""
    return re.sub(r'"score":[0-9.]+', '"score":_', text)


async def publish(kafka_settings, script) -> None:
    async with raw_producer(kafka_settings) as producer:
        for topic, envelope in script:
            await producer.send_and_wait(topic, envelope.to_bytes(), key=envelope.subject.encode())


async def projected(client) -> None:
    """Wait until every idea's timeline holds all its events."""

    async def complete():
        for idea, length in TIMELINE_LENGTHS.items():
            answer = await client.get(f"/api/v1/ideas/{idea}")
            if answer.status_code != 200 or len(answer.json()["timeline"]) != length:
                return False
        overview = (await client.get("/api/v1/stats/overview")).json()
        return overview["notifications"] == {"delivered": 1}

    await eventually(complete, timeout=45, interval=0.25)


async def test_projections_of_a_scripted_history_equal_the_figures_computed_by_hand(
    service_settings, topics, kafka_settings, monkeypatch
):
    monkeypatch.setenv("CONSUMER_LAG_INTERVAL_S", "0.3")  # projection lag comes from the shared lag monitor
    settings = service_settings(AnalyticsSettings, metrics_interval_s=0.3)
    app = create_app(settings)
    async with running(app) as client, people_keyring(settings) as keyring:
        await publish(kafka_settings, await history(topics, keyring))
        await projected(client)

        office = bearer(INNOVATION_OFFICE)
        # one idea: its story, state and counts, without personal data (the officer view: who acted, comments)
        one = (await client.get(f"/api/v1/ideas/{I1}", headers=office)).json()
        assert one["view"] == "officer"
        assert one["state"] == "spread" and one["title"] == TITLES[I1]
        assert {o["organisation"] for o in one["organisations"]} == {"tekniska-verken", "kiruna-kommun"}
        assert [a["area"] for a in one["areas"]] == ["klimat-och-energi", "stadsomvandling"]
        assert (one["supporters"], one["comments"]) == (2, 1)
        assert [t.get("to_state") for t in one["timeline"] if t["kind"] == "status-changed"] == [
            "acknowledged", "in-assessment", "accepted", "in-pilot", "implemented", "spread",
        ]  # fmt: skip
        assert one["timeline"][2]["changed_by"] == "erik.lindberg"
        # the submitter named for those who act on the idea (opened with her key), never her address
        assert one["submitter"] == {"status": "employee", "organisation": "kiruna-kommun", "name": "Anna Svensson"}
        text = json.dumps(one, ensure_ascii=False).lower()
        assert "kiruna.se" not in text and "lisa" not in text and "tekniskaverken.se" not in text  # no addresses
        assert "olle" not in text and "sealed" not in text  # supporters are never named
        comment = next(t for t in one["timeline"] if t.get("engagement") == "comment")
        assert comment["summary"].startswith("Bra idé") and comment["author"] == "Mia"  # issue 18: shown, named
        assert [t["from_idea"] for t in one["timeline"] if t["kind"] == "merged-in"] == [I3]
        public = (await client.get(f"/api/v1/ideas/{I1}")).json()  # anyone: no actors, no submitter's name
        assert public["view"] == "public" and len(public["timeline"]) == len(one["timeline"])
        assert "erik.lindberg" not in json.dumps(public)
        assert public["submitter"] == {"status": "employee", "organisation": "kiruna-kommun"}
        assert "anna" not in json.dumps(public).lower()
        public_comment = next(t for t in public["timeline"] if t.get("engagement") == "comment")
        assert public_comment["summary"] == comment["summary"] and public_comment["author"] == "Mia"
        assert (await client.get(f"/api/v1/ideas/{I5}")).json()["submitter"] == {"status": "anonymous"}
        declined = (await client.get(f"/api/v1/ideas/{I2}")).json()
        assert declined["state"] == "declined" and declined["decline_reason"] == "Finns redan i laddplanen för 2026"
        merged = (await client.get(f"/api/v1/ideas/{I3}")).json()
        assert merged["state"] == "merged" and merged["merged_into"] == I1
        backwards = (await client.get(f"/api/v1/ideas/{I4}")).json()
        assert backwards["state"] == "acknowledged"
        assert [t["kind"] for t in backwards["timeline"]] == ["submitted", "routed", "status-changed"]

        # the inbox: newest first, paginated, filtered
        page1 = (await client.get("/api/v1/ideas?organisation=tekniska-verken&page_size=2", headers=office)).json()
        assert [i["idea_id"] for i in page1["items"]] == [I4, I3]
        assert (page1["total"], page1["pages"]) == (3, 2)
        page2 = (
            await client.get("/api/v1/ideas?organisation=tekniska-verken&page_size=2&page=2", headers=office)
        ).json()
        assert [i["idea_id"] for i in page2["items"]] == [I1]
        search = (await client.get("/api/v1/ideas", params={"q": "BADHUS"}, headers=office)).json()
        assert {i["idea_id"] for i in search["items"]} == {I1, I3}
        merged_ones = (await client.get("/api/v1/ideas?state=merged", headers=office)).json()["items"]
        assert [i["idea_id"] for i in merged_ones] == [I3]
        by_unit = (await client.get("/api/v1/ideas?unit=forvaltning", headers=office)).json()
        assert [i["idea_id"] for i in by_unit["items"]] == [I2]
        by_area = (await client.get("/api/v1/ideas?area=klimat-och-energi", headers=office)).json()
        assert [i["idea_id"] for i in by_area["items"]] == [I4, I3, I1]
        triage = (await client.get("/api/v1/ideas?organisation=innovationsplattformen", headers=office)).json()["items"]
        assert triage[0]["idea_id"] == I5 and set(triage[0]["overdue_targets"]) == {
            "acknowledged",
            "assessed",
            "decided",
        }
        assert triage[0]["submitter"] == {"status": "anonymous"}
        assert page1["items"][0]["submitter"] == {
            "status": "employee", "organisation": "tekniska-verken", "name": "Dag Dahl",
        }  # fmt: skip

        # the overview, by hand
        overview = (await client.get("/api/v1/stats/overview")).json()
        assert overview["ideas"] == 5
        assert {k: v for k, v in overview["by_state"].items() if v} == {
            "spread": 1, "declined": 1, "merged": 1, "acknowledged": 1, "routed": 1,
        }  # fmt: skip
        orgs = {row["id"]: row["total"] for row in overview["by_organisation"]}
        assert orgs == {"kiruna-kommun": 1, "tekniska-verken": 3, "kirunabostader": 1, "innovationsplattformen": 1}
        areas = {row["id"]: row["total"] for row in overview["by_area"] if row["total"]}
        assert areas == {"klimat-och-energi": 3, "stadsomvandling": 1, "boende": 1}
        units = {row["id"]: row["total"] for row in overview["by_unit"]}
        assert units == {
            "tekniska-verken/energi": 3,
            "kiruna-kommun/samhallsbyggnad": 1,
            "kirunabostader/forvaltning": 1,
        }
        assert [i["idea_id"] for i in overview["cross_organisation"]["ideas"]] == [I1]
        spread = {"idea_id": I1, "title": TITLES[I1], "state": "spread", "spread_to": ["kirunabostader"]}
        assert overview["spread"]["ideas"] == [{**spread, "organisations": ["kiruna-kommun", "tekniska-verken"]}]
        engagement = overview["engagement"]
        assert (engagement["supports"], engagement["comments"], engagement["ideas_with_support"]) == (2, 1, 1)
        assert overview["submitters"] == 3 and overview["anonymous_ideas"] == 1  # Anna twice, Bo, Dag; one anonymous

        # the funnel
        funnel = (await client.get("/api/v1/stats/funnel")).json()
        assert [s["count"] for s in funnel["stages"]] == [5, 5, 3, 1, 1, 1, 1, 1]
        assert funnel["exits"] == {"declined": 1, "merged": 1, "withdrawn": 0}
        only_tv = (await client.get("/api/v1/stats/funnel?organisation=tekniska-verken")).json()
        assert [s["count"] for s in only_tv["stages"]] == [3, 3, 2, 1, 1, 1, 1, 1]

        # time in state: acknowledged I1 2 days, I2 2 days (I4 still there); routed 23 h, 46 h, 44 h, 287 h
        states = {s["state"]: s for s in (await client.get("/api/v1/stats/time-in-state")).json()["states"]}
        assert (states["acknowledged"]["count"], states["acknowledged"]["open"]) == (2, 1)
        assert states["acknowledged"]["median_days"] == 2.0
        assert states["routed"]["median_hours"] == 45.0
        assert states["routed"]["p90_hours"] == round(46 + 0.7 * (287 - 46), 2)
        assert states["in-pilot"]["median_days"] == 20.0

        # response times: acknowledged met by I1 (1 wd), I2 (2 wd), I3 (merged, 2 wd); I4 late (8 wd); I5 overdue
        responses = (await client.get("/api/v1/stats/response-times")).json()
        ack = next(t for t in responses["targets"] if t["target"] == "acknowledged")
        assert (ack["met"], ack["late"], ack["overdue"], ack["within_working_days"]) == (3, 1, 1, 5)
        missed = {(m["idea_id"], m["target"], m["status"]) for m in responses["missed"]}
        assert {(I4, "acknowledged", "late"), (I5, "acknowledged", "overdue")} <= missed
        assert {m[0] for m in missed} == {I4, I5}  # I1, I2 and I3 met every target that applied to them
        assert next(m for m in responses["missed"] if m["idea_id"] == I4)["working_days"] == 8

        # participation: distinct submitters per organisation and unit per month, share of headcount
        rows = (await client.get("/api/v1/stats/participation")).json()["rows"]
        table = {(r["month"], r["organisation"], r["unit"]): (r["submitters"], r["share"]) for r in rows}
        assert table == {
            ("2025-03", "kiruna-kommun", None): (1, round(1 / 1900, 4)),
            ("2025-03", "kiruna-kommun", "samhallsbyggnad"): (1, round(1 / 260, 4)),
            ("2025-03", "kirunabostader", None): (1, round(1 / 110, 4)),
            ("2025-03", "kirunabostader", "forvaltning"): (1, round(1 / 60, 4)),
            ("2025-04", "tekniska-verken", None): (1, round(1 / 230, 4)),
            ("2025-04", "tekniska-verken", "energi"): (1, round(1 / 80, 4)),
        }
        april = (await client.get("/api/v1/stats/participation?from=2025-04-01&to=2025-04-30")).json()
        assert april["months"] == [{"month": "2025-04", "ideas": 2, "anonymous_ideas": 1, "submitters": 1}]

        # CSV of the same figures
        answer = await client.get("/api/v1/stats/funnel?format=csv")
        assert answer.headers["content-type"].startswith("text/csv")
        assert list(csv.reader(io.StringIO(answer.text)))[:2] == [
            ["stage", "count", "share_of_submitted", "conversion_from_previous"], ["submitted", "5", "1.0", ""],
        ]  # fmt: skip
        missed_csv = list(csv.DictReader(io.StringIO(
            (await client.get("/api/v1/stats/response-times?format=csv&table=missed")).text)))  # fmt: skip
        assert {(r["idea_id"], r["target"]) for r in missed_csv} >= {(I4, "acknowledged"), (I5, "decided")}

        # business metrics: bounded labels, refreshed in the background
        async def metrics():
            text = (await client.get("/metrics")).text
            ready = (
                'kiruna_analytics_ideas{organisation="tekniska-verken",state="merged"} 1.0' in text
                and 'kiruna_analytics_response_targets_missed{status="late",target="acknowledged"} 1.0' in text
                and 'kiruna_analytics_projection_lag_messages{topic="ideas.status-changed.v1"} 0.0' in text
            )
            return text if ready else None

        text = await eventually(metrics, timeout=20)
        assert I1 not in text and "kiruna.se" not in text and "Anna" not in text
        assert 'kiruna_idempotent_skips_total{service="analytics",topic="' in text  # the duplicates were skipped


async def test_replay_after_wiping_redis_restores_identical_answers(service_settings, topics, kafka_settings):
    settings = service_settings(AnalyticsSettings)
    urls = [f"/api/v1/ideas/{idea}" for idea in TIMELINE_LENGTHS] + [
        "/api/v1/ideas?page_size=100",
        "/api/v1/ideas?organisation=tekniska-verken&page_size=2&page=2",
        "/api/v1/ideas?q=badhus",
        *(
            f"/api/v1/stats/{name}"
            for name in ("overview", "funnel", "time-in-state", "response-times", "participation")
        ),
        *(f"/api/v1/stats/{name}?format=csv" for name in ("overview", "funnel", "time-in-state", "participation")),
        "/api/v1/stats/response-times?format=csv&table=missed",
        "/api/v1/stats/overview?organisation=tekniska-verken&area=klimat-och-energi&from=2025-03-01&to=2025-03-31",
    ]
    office, anna = bearer(INNOVATION_OFFICE), bearer(ANNA)
    asked = [(url, office) for url in urls] + [(f"/api/v1/ideas/{I1}", {}), ("/api/v1/people/me/ideas", anna)]

    async def answers(client) -> list[str]:
        return [(await client.get(url, headers=headers)).text for url, headers in asked]

    async with (
        running(create_app(settings)) as client,
        probe(kafka_settings, topics.dlq(topics.submitted)) as dead_letters,
        people_keyring(settings) as keyring,
    ):
        script = await history(topics, keyring)
        await publish(kafka_settings, script)
        async with raw_producer(kafka_settings) as producer:  # one record no one can parse: dead-lettered live
            await producer.send_and_wait(topics.submitted, b"{not json", key=I5.encode())
        await projected(client)
        await dead_letters.wait_count(1)
        before = await answers(client)
        mine = json.loads(before[-1])["items"]
        assert [i["idea_id"] for i in mine] == [I3, I1]  # Anna's, whatever the case of her address; newest first

        store = client._transport.app.state.read_model.store
        assert await store.wipe() > 0
        assert (await client.get(f"/api/v1/ideas/{I1}")).status_code == 404
        assert (await client.get("/api/v1/stats/overview")).json()["ideas"] == 0

        result = await rebuild(settings, progress=False)
        assert sum(result.events.values()) == len(script)
        assert result.duplicates == 2 and sum(result.malformed.values()) == 1
        assert result.ideas == 5 and result.erasures == 0
        assert result.keys_restored == 6  # Anna, Bo, Dag, Lisa, Olle and Mia
        after = await answers(client)
        for (url, _), one, other in zip(asked, before, after, strict=True):
            assert unscored(one) == unscored(other), url  # the inbox's suggested duplicates: see unscored


async def test_bad_queries_answer_422_naming_the_parameter_and_unknown_ideas_404(service_settings, topics):
    async with running(create_app(service_settings(AnalyticsSettings))) as client:
        cases = {
            "/api/v1/ideas?page=0": "page",
            "/api/v1/ideas?page_size=101": "page_size",
            "/api/v1/ideas?state=lost": "state",
            "/api/v1/ideas?organisation=nowhere": "organisation",
            "/api/v1/ideas?organisation=kirunabostader&unit=energi": "unit",
            "/api/v1/ideas?area=astronomy": "area",
            "/api/v1/stats/funnel?from=2025-05-01&to=2025-04-01": "to",
            "/api/v1/stats/funnel?from=yesterday": "from",
            "/api/v1/stats/participation?format=xml": "format",
            "/api/v1/stats/overview?organisation=Not_A_Slug": "organisation",
            "/api/v1/ideas/not-a-uuid": "idea_id",
        }
        office = bearer(INNOVATION_OFFICE)
        for url, field in cases.items():
            answer = await client.get(url, headers=office)
            assert answer.status_code == 422, url
            body = answer.json()
            assert field in [e["field"] for e in body["errors"]], (url, body)
            assert field in body["detail"]
        both = (await client.get("/api/v1/ideas?organisation=nowhere&area=astronomy", headers=office)).json()
        assert "'nowhere'" in both["detail"] and "'astronomy'" in both["detail"]

        missing = await client.get(f"/api/v1/ideas/{I1}")
        assert missing.status_code == 404
        assert (
            missing.json()["detail"].startswith("Det finns ingen idé") and "No idea" in missing.json()["messages"]["en"]
        )
        english = await client.get(f"/api/v1/ideas/{I1}?lang=en")
        assert english.json()["detail"].startswith("No idea with id")
        page = await client.get(f"/ideas/{I1}")
        assert page.status_code == 404 and "Idén hittades inte" in page.text
