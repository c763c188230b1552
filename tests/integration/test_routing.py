"""Routing on the real Kafka and Redis: multi-organisation routing, triage, odd input, re-routing and learning,
the catalogue reloaded without a restart, and a named idea (its submitter sealed, on ideas.submitted.v2) routed
without a trace of who submitted it."""

from __future__ import annotations

import json
import shutil
import uuid

import pytest

from services.routing.app import create_app as routing_app
from services.routing.settings import RoutingSettings
from shared.catalogue import DEFAULT_CATALOGUE_PATH
from shared.events import AreaMatch, Envelope, IdeaEdited, IdeaSubmitted, RerouteIdea, RoutingTarget
from tests.integration.test_analytics_projections import people_keyring
from tests.support.apps import running
from tests.support.identity import ANNA, EMAIL, MARIA, bearer
from tests.support.kafka import eventually, probe, raw_producer

pytestmark = pytest.mark.kafka


def submitted(title: str, description: str = "", idea_id: str | None = None, submitter=None) -> Envelope:
    idea_id = idea_id or str(uuid.uuid4())
    idea = IdeaSubmitted(
        idea_id=idea_id, title=title, description=description, submitter=submitter, anonymous=submitter is None
    )
    return Envelope.wrap(idea, source="/tests")


def routed_for(records, idea_id: str) -> list[dict]:
    return [json.loads(r.value)["data"] for r in records if r.key == idea_id.encode()]


async def test_ideas_go_to_every_organisation_they_touch_and_the_rest_to_triage(
    service_settings, topics, kafka_settings
):
    cross = submitted(
        "Informationsträffar om flytten av stadskärnan",
        "Invånarna vet inte när deras kvarter ska flyttas. Ordna träffar med kommunen och "
        "bostadsbolaget för hyresgästerna.",
    )
    nothing = submitted("Lorem ipsum", "dolor sit amet")
    odd = [submitted(""), submitted("Пожалуйста", "Это идея 🚀" * 5), submitted("x" * 200, "fjärrvärme " * 1200)]
    async with (
        running(routing_app(service_settings(RoutingSettings))),
        probe(kafka_settings, topics.routed) as routed,
        probe(kafka_settings, topics.organisation("kirunabostader")) as housing,
        probe(kafka_settings, topics.organisation("innovationsplattformen")) as triage,
        raw_producer(kafka_settings) as producer,
    ):
        for event in (cross, nothing, *odd):
            await producer.send_and_wait(topics.submitted, event.to_bytes(), key=event.subject.encode())
        await routed.wait_count(5)
        decision = routed_for(routed.records, cross.subject)[0]
        assert {"kiruna-kommun", "kirunabostader"} <= {t["organisation"] for t in decision["organisations"]}
        assert {"stadsomvandling", "boende"} <= {a["area"] for a in decision["areas"]}
        assert decision["catalogue_version"].startswith("sha256:") and "->" in decision["reason"]
        await housing.wait_for(lambda rs: routed_for(rs, cross.subject))
        lost = routed_for(routed.records, nothing.subject)[0]
        assert lost["triage"] and [t["organisation"] for t in lost["organisations"]] == ["innovationsplattformen"]
        await triage.wait_for(lambda rs: routed_for(rs, nothing.subject))
        assert all(routed_for(routed.records, e.subject) for e in odd)  # odd input is routed, not stuck


async def test_a_reroute_replaces_the_routing_and_the_router_learns_from_it(service_settings, topics, kafka_settings):
    first = submitted(
        "Bättre skyltning vid Kiirunavaara",
        "Besökare hittar inte till utsiktsplatsen uppe vid gruvan och turistbussarna stannar fel.",
    )
    settings = service_settings(RoutingSettings)
    async with (
        running(routing_app(settings)),
        probe(kafka_settings, topics.routed) as routed,
        raw_producer(kafka_settings) as producer,
    ):
        await producer.send_and_wait(topics.submitted, first.to_bytes(), key=first.subject.encode())
        before = routed_for(await routed.wait_count(1), first.subject)[0]
        assert "kultur-och-fritid" not in {t.get("unit") for t in before["organisations"]}
        order = Envelope.wrap(
            RerouteIdea(
                idea_id=first.subject,
                organisations=(RoutingTarget(organisation="kiruna-kommun", unit="kultur-och-fritid"),),
                areas=(AreaMatch(area="kultur-och-fritid"),),
                requested_by="innovation.office",
                reason="Besöksnäringen sköts av kultur och fritid",
            ),
            source="/tests",
        )
        await producer.send_and_wait(topics.routing_commands, order.to_bytes(), key=first.subject.encode())
        after = await routed.wait_for(lambda rs: len(routed_for(rs, first.subject)) == 2)
        rerouted = routed_for(after, first.subject)[1]
        assert rerouted["rerouted_by"] == "innovation.office" and "kultur och fritid" in rerouted["reason"]
        assert [(t["organisation"], t["unit"]) for t in rerouted["organisations"]] == [
            ("kiruna-kommun", "kultur-och-fritid")
        ]

    # after a restart, an idea like the re-routed one goes where the officer sent it
    similar = submitted(
        "Skyltning vid Kiirunavaara",
        "Besökare hittar inte utsiktsplatsen vid gruvan, turistbussarna stannar på fel ställe.",
    )
    async with (
        running(routing_app(settings)),
        probe(kafka_settings, topics.routed) as routed,
        raw_producer(kafka_settings) as producer,
    ):
        await producer.send_and_wait(topics.submitted, similar.to_bytes(), key=similar.subject.encode())
        decision = routed_for(await routed.wait_for(lambda rs: routed_for(rs, similar.subject)), similar.subject)[0]
        assert ("kiruna-kommun", "kultur-och-fritid") in {
            (t["organisation"], t.get("unit")) for t in decision["organisations"]
        }


async def test_the_catalogue_reloads_without_a_restart_and_a_broken_one_is_refused(service_settings, topics, tmp_path):
    path = tmp_path / "catalogue.toml"
    shutil.copy(DEFAULT_CATALOGUE_PATH, path)
    app = routing_app(service_settings(RoutingSettings, catalogue_path=path, catalogue_check_interval_s=0.1))
    async with running(app) as routing:
        version = (await routing.get("/api/v1/catalogue")).json()["version"]
        path.write_text(path.read_text() + '\n[[organisations]]\nid = "BROKEN ID"\nname = "x"\n')

        async def refused():
            return "kiruna_catalogue_reload_errors_total 1.0" in (await routing.get("/metrics")).text

        await eventually(refused, timeout=10)
        assert (await routing.get("/api/v1/catalogue")).json()["version"] == version
        shutil.copy(DEFAULT_CATALOGUE_PATH, path)
        path.write_text(
            path.read_text() + '\n[[officers]]\nid = "ny.handlaggare"\nname = "Ny Handläggare"\n'
            'email = "ny.handlaggare@kiruna.se"\norganisation = "kiruna-kommun"\n'
        )

        async def reloaded():
            answer = (await routing.get("/api/v1/catalogue")).json()
            return answer["version"] != version and answer

        new_version = (await eventually(reloaded, timeout=10))["version"]
        tried = (
            await routing.get("/api/v1/route", params={"title": "Snöröjning av cykelbanorna"}, headers=bearer(MARIA))
        ).json()
        assert tried["catalogue_version"] == new_version


async def test_an_idea_corrected_by_its_submitter_is_routed_again_and_the_rebuild_keeps_the_correction(
    service_settings, topics, kafka_settings
):
    from redis.asyncio import Redis

    from services.routing.rebuild import rebuild
    from services.routing.store import RoutingStore

    settings = service_settings(RoutingSettings)
    idea = submitted("Snöröjning vid skolan", "Gångbanorna vid skolan plogas för sent på morgonen.")
    correction = Envelope.wrap(
        IdeaEdited(
            idea_id=idea.subject,
            title="Fjärrvärme till badhuset",
            description="Anslut badhuset till fjärrvärmenätet i stället för elpannan.",
            edited_by="ab12",
        ),
        source="/tests",
    )
    async with (
        running(routing_app(settings)),
        probe(kafka_settings, topics.routed) as routed,
        probe(kafka_settings, topics.organisation("tekniska-verken")) as energy,
        raw_producer(kafka_settings) as producer,
    ):
        await producer.send_and_wait(topics.submitted, idea.to_bytes(), key=idea.subject.encode())
        await routed.wait_for(lambda rs: routed_for(rs, idea.subject))
        await producer.send_and_wait(topics.edited, correction.to_bytes(), key=idea.subject.encode())
        decisions = await routed.wait_for(lambda rs: len(routed_for(rs, idea.subject)) >= 2)
        first, again = routed_for(decisions, idea.subject)
        assert "tekniska-verken" not in {t["organisation"] for t in first["organisations"]}
        assert "tekniska-verken" in {t["organisation"] for t in again["organisations"]}
        assert again["title"] == "Fjärrvärme till badhuset"
        await energy.wait_for(lambda rs: routed_for(rs, idea.subject))  # the organisation's own topic too
    assert (await rebuild(settings, progress=False)).edits >= 1
    redis = Redis.from_url(settings.redis_url, decode_responses=True)
    try:
        assert (await RoutingStore(redis, settings.redis_prefix).text(idea.subject))[0] == "Fjärrvärme till badhuset"
    finally:
        await redis.aclose()


async def test_what_routing_learnt_is_rebuilt_from_the_topics(service_settings, topics, kafka_settings, capsys):
    from redis.asyncio import Redis

    from services.routing.rebuild import rebuild
    from services.routing.store import RoutingStore

    settings = service_settings(RoutingSettings)
    idea = submitted("Gratis bad för nyanlända familjer", "Låt nyanlända barnfamiljer prova simhallen gratis en gång.")
    order = Envelope.wrap(
        RerouteIdea(
            idea_id=idea.subject,
            organisations=(RoutingTarget(organisation="kiruna-kommun", unit="socialtjanst"),),
            requested_by="innovation.office",
            reason="Integration",
        ),
        source="/tests",
    )
    async with raw_producer(kafka_settings) as producer:
        await producer.send_and_wait(topics.submitted, idea.to_bytes(), key=idea.subject.encode())
        await producer.send_and_wait(topics.routing_commands, order.to_bytes(), key=idea.subject.encode())
    assert (await rebuild(settings)).relearnt == 1
    assert "re-routes" in capsys.readouterr().err  # the progress bar
    redis = Redis.from_url(settings.redis_url, decode_responses=True)
    try:
        entries = await RoutingStore(redis, settings.redis_prefix).feedback_entries()
    finally:
        await redis.aclose()
    assert [(e["idea_id"], e["title"], e["organisations"][0]["unit"]) for e in entries] == [
        (idea.subject, "Gratis bad för nyanlända familjer", "socialtjanst")
    ]


async def test_a_named_idea_is_routed_without_a_trace_of_its_submitter(service_settings, topics, kafka_settings):
    from redis.asyncio import Redis

    settings = service_settings(RoutingSettings)
    async with people_keyring(settings) as keyring:
        anna, _ = await keyring.person_ref(EMAIL[ANNA], "Anna Svensson", organisation="kiruna-kommun")
    idea = submitted(
        "Fjärrvärme till det nya badhuset", "Anslut badhuset till fjärrvärmenätet när det byggs om.", submitter=anna
    )
    async with (
        running(routing_app(settings)),
        probe(kafka_settings, topics.routed) as routed,
        probe(kafka_settings, topics.organisation("tekniska-verken")) as energy,
        raw_producer(kafka_settings) as producer,
    ):
        assert topics.submitted.endswith("ideas.submitted.v2")
        await producer.send_and_wait(topics.submitted, idea.to_bytes(), key=idea.subject.encode())
        [decision] = routed_for(await routed.wait_for(lambda rs: routed_for(rs, idea.subject)), idea.subject)
        await energy.wait_for(lambda rs: routed_for(rs, idea.subject))
        assert "tekniska-verken" in {t["organisation"] for t in decision["organisations"]}
        published = json.dumps([r.value.decode() for r in [*routed.records, *energy.records]])
        for trace in (EMAIL[ANNA], "Anna", "Svensson", anna.pseudonym, anna.sealed.box, "submitter"):
            assert trace not in published, trace
    redis = Redis.from_url(settings.redis_url, decode_responses=True)
    try:
        held = []
        async for key in redis.scan_iter(match=f"{settings.redis_prefix}:routing*", count=1000):
            kind = await redis.type(key)
            held.append(f"{key} {await redis.hgetall(key) if kind == 'hash' else kind}")
    finally:
        await redis.aclose()
    assert any(idea.subject in line for line in held)  # routing keeps the idea's text (to learn from re-routes)
    for trace in (EMAIL[ANNA], "Anna", "Svensson", anna.pseudonym):
        assert trace not in "\n".join(held), trace
