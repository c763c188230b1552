"""Intake's JSON API against the real Kafka, Redis and Keycloak: idempotency, officers' authorisation, the
lifecycle, engagement, re-routes and the raw Kafka door."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from services.intake.app import create_app as intake_app
from services.intake.domain import ID_PREFIX, intake_id
from services.intake.settings import IntakeSettings
from shared.events import EngagementEvent, Envelope, IdeaRouted, PersonRef, RoutingTarget, SubmittedEvent
from tests.support.apps import running
from tests.support.identity import ANNA, EMAIL, ERIK, INNOVATION_OFFICE, MARIA, PER, SARA, bearer
from tests.support.kafka import eventually, probe, raw_producer

pytestmark = pytest.mark.kafka

IDEA = {"title": "Laddstolpar vid stadshuset", "description": "Fler laddplatser för elbilar.", "anonymous": True}


@pytest.fixture
def settings(service_settings):
    return service_settings(IntakeSettings, rate_limit_per_minute=1000)


async def routed_to(kafka_settings, topics, idea_id: str, *orgs: str) -> None:
    """Play routing's part: publish where the idea went."""
    event = Envelope.wrap(
        IdeaRouted(idea_id=idea_id, organisations=tuple(RoutingTarget(organisation=o) for o in orgs), reason="test"),
        source="/tests",
    )
    async with raw_producer(kafka_settings) as producer:
        await producer.send_and_wait(topics.routed, event.to_bytes(), key=idea_id.encode())


async def test_ten_concurrent_retries_with_one_key_make_one_idea_and_one_event(settings, topics, kafka_settings):
    async with running(intake_app(settings)) as intake, probe(kafka_settings, topics.submitted) as submitted:
        headers = {"Idempotency-Key": str(uuid.uuid4())}
        started = time.monotonic()
        answers = await asyncio.gather(*(intake.post("/api/v1/ideas", json=IDEA, headers=headers) for _ in range(10)))
        assert time.monotonic() - started < 10  # nobody waits for the first attempt (it took 30 s, then 500)
        assert {a.status_code for a in answers} <= {202, 409} and 202 in {a.status_code for a in answers}
        for pending in (a for a in answers if a.status_code == 409):
            assert (
                int(pending.headers["Retry-After"]) >= 1 and pending.json()["errors"][0]["field"] == "Idempotency-Key"
            )
        accepted = {json.dumps(a.json(), sort_keys=True) for a in answers if a.status_code == 202}
        assert len(accepted) == 1

        # a retry after the first finished gets the same 202 answer
        async def retried():
            again = await intake.post("/api/v1/ideas", json=IDEA, headers=headers)
            return again.status_code == 202 and json.dumps(again.json(), sort_keys=True) in accepted

        await eventually(retried)
        other = await intake.post("/api/v1/ideas", json=IDEA)  # no key: a second idea, which also marks the end
        await submitted.wait_for(lambda rs: any(json.loads(r.value)["subject"] == other.json()["idea_id"] for r in rs))
        assert len(submitted.records) == 2
        reused = await intake.post("/api/v1/ideas", json={**IDEA, "title": "Något annat"}, headers=headers)
        assert reused.status_code == 422 and reused.json()["errors"][0]["field"] == "Idempotency-Key"


async def idempotency_records(app) -> list[str]:
    store = app.state.intake.store
    return [key async for key in store.redis.scan_iter(match=f"{store.prefix}:idempotency:*")]


async def test_a_key_used_again_after_its_record_is_gone_makes_a_new_idea_that_is_kept(
    settings, topics, kafka_settings
):
    app = intake_app(settings)
    async with running(app) as intake, probe(kafka_settings, topics.submitted) as submitted:
        headers = {"Idempotency-Key": str(uuid.uuid4())}
        first = await intake.post("/api/v1/ideas", json=IDEA, headers=headers)
        [record] = await idempotency_records(app)
        assert 0 < await app.state.intake.store.redis.ttl(record) <= settings.idempotency_ttl_s
        await app.state.intake.store.redis.delete(record)  # the key expired, or Redis was lost
        second = await intake.post("/api/v1/ideas", json=IDEA, headers=headers)
        assert (first.status_code, second.status_code) == (202, 202)
        assert first.json()["idea_id"] != second.json()["idea_id"]  # a new idea, not one every consumer drops
        records = await submitted.wait_count(2)
        assert len({json.loads(r.value)["id"] for r in records}) == 2


class HangsOnce:
    """Kafka's publisher, except that the first publish never returns (the attempt is in flight, or its process
    died in the middle of it)."""

    def __init__(self, publisher) -> None:
        self.publisher = publisher
        self.hung = asyncio.Event()

    async def publish(self, topic, envelope) -> None:
        if not self.hung.is_set():
            self.hung.set()
            await asyncio.Event().wait()
        await self.publisher.publish(topic, envelope)


async def test_a_key_in_flight_answers_409_with_retry_after_and_a_crashed_attempt_frees_it_soon(
    service_settings, kafka_settings, topics
):
    # the lease of a pending key is 2 x the Kafka publish timeout: 2 s here
    fast = kafka_settings.model_copy(update={"publish_timeout_s": 1})
    app = intake_app(service_settings(IntakeSettings, kafka=fast, rate_limit_per_minute=1000))
    async with running(app) as intake, probe(kafka_settings, topics.submitted) as submitted:
        app.state.intake.publisher = hanging = HangsOnce(app.state.intake.publisher)
        headers = {"Idempotency-Key": str(uuid.uuid4())}
        crashed = asyncio.ensure_future(intake.post("/api/v1/ideas", json=IDEA, headers=headers))
        await asyncio.wait_for(hanging.hung.wait(), 10)
        started = time.monotonic()
        retry = await intake.post("/api/v1/ideas", json=IDEA, headers=headers)
        assert time.monotonic() - started < 5  # at once: no 30 s wait, no 500
        assert retry.status_code == 409 and 1 <= int(retry.headers["Retry-After"]) <= 2

        async def accepted():
            answer = await intake.post("/api/v1/ideas", json=IDEA, headers=headers)
            assert answer.status_code in (202, 409), answer.text
            return answer if answer.status_code == 202 else None

        answer = await eventually(accepted, timeout=20, interval=0.5)
        [record] = await submitted.wait_count(1)
        assert json.loads(record.value)["subject"] == answer.json()["idea_id"]
        crashed.cancel()


async def test_when_redis_fails_after_kafka_acknowledged_the_idea_is_answered_and_healed_from_the_topic(
    settings, topics, kafka_settings
):
    app = intake_app(settings)
    async with running(app) as intake, probe(kafka_settings, topics.submitted) as submitted:
        store = app.state.intake.store

        async def redis_down(*args, **kwargs):
            raise RedisConnectionError("Redis went away")

        store.record_submitted, store.complete = redis_down, redis_down  # only the request's writes fail
        headers = {"Idempotency-Key": str(uuid.uuid4())}
        answer = await intake.post("/api/v1/ideas", json=IDEA, headers=headers)
        del store.record_submitted, store.complete
        assert answer.status_code == 202  # Kafka has it: not "503, nothing was stored"
        idea_id = answer.json()["idea_id"]
        await submitted.wait_count(1)
        await eventually(lambda: store.idea(idea_id))  # intake's follower recorded it from the topic

        async def settled():
            again = await intake.post("/api/v1/ideas", json=IDEA, headers=headers)
            return again.status_code == 202 and again.json() == answer.json()

        await eventually(settled)
        other = await intake.post("/api/v1/ideas", json=IDEA)  # marks the end: no second event of the first
        await submitted.wait_for(lambda rs: any(json.loads(r.value)["subject"] == other.json()["idea_id"] for r in rs))
        assert len(submitted.records) == 2


async def test_officers_act_only_on_their_own_organisations_ideas(settings, topics, kafka_settings):
    app = intake_app(settings)
    async with running(app) as intake, probe(kafka_settings, topics.status_changed) as changes:
        idea_id = (await intake.post("/api/v1/ideas", json=IDEA)).json()["idea_id"]
        await routed_to(kafka_settings, topics, idea_id, "tekniska-verken")
        store = app.state.intake.store  # wait until intake knows the owner

        async def owned():
            record = await store.idea(idea_id)
            return record and record.organisations

        await eventually(owned)
        url = f"/api/v1/ideas/{idea_id}/status"
        assert (await intake.post(url, json={"to_state": "acknowledged"})).status_code == 401
        invalid = await intake.post(url, json={"to_state": "acknowledged"}, headers={"Authorization": "Bearer x.y.z"})
        assert invalid.status_code == 401 and "not a JSON Web Token" in invalid.json()["detail"]
        assert invalid.headers["WWW-Authenticate"].startswith("Bearer")
        other = await intake.post(url, json={"to_state": "acknowledged"}, headers=bearer(SARA))
        assert other.status_code == 403 and "tekniska-verken" in other.json()["detail"]
        employee = await intake.post(url, json={"to_state": "acknowledged"}, headers=bearer(ANNA))
        assert employee.status_code == 403 and "officer" in employee.json()["detail"]

        own = bearer(ERIK)
        wrong = await intake.post(url, json={"to_state": "implemented"}, headers=own)
        assert wrong.status_code == 409
        assert wrong.json()["current_state"] == "routed"
        assert wrong.json()["allowed_transitions"] == ["acknowledged", "declined", "merged"]
        assert (await intake.post(url, json={"to_state": "acknowledged"}, headers=own)).status_code == 202
        no_reason = await intake.post(url, json={"to_state": "declined"}, headers=own)
        assert no_reason.status_code == 422 and no_reason.json()["errors"][0]["field"] == "reason"
        declined = await intake.post(
            url, json={"to_state": "declined", "reason": "Finns redan i budgeten"}, headers=own
        )
        assert declined.status_code == 202
        office = bearer(INNOVATION_OFFICE)
        closed = await intake.post(url, json={"to_state": "in-assessment"}, headers=office)
        assert closed.status_code == 409 and closed.json()["allowed_transitions"] == []

        records = await changes.wait_count(2)
        events = [json.loads(r.value)["data"] for r in records]
        assert [(e["from_state"], e["to_state"], e["changed_by"]) for e in events] == [
            ("routed", "acknowledged", "erik.lindberg"),
            ("acknowledged", "declined", "erik.lindberg"),
        ]
        assert events[1]["reason"] == "Finns redan i budgeten"


async def test_the_innovation_office_changes_and_reroutes_any_idea(settings, topics, kafka_settings):
    async with running(intake_app(settings)) as intake, probe(kafka_settings, topics.routing_commands) as commands:
        idea_id = (await intake.post("/api/v1/ideas", json=IDEA)).json()["idea_id"]
        office = bearer(INNOVATION_OFFICE)
        officer = bearer(MARIA)
        body = {
            "organisations": [{"organisation": "kirunabostader", "unit": "forvaltning"}],
            "areas": ["boende"],
            "reason": "Gäller hyresgästernas laddplatser",
        }
        assert (await intake.post(f"/api/v1/ideas/{idea_id}/reroute", json=body, headers=officer)).status_code == 403
        bad = await intake.post(
            f"/api/v1/ideas/{idea_id}/reroute",
            headers=office,
            json={**body, "organisations": [{"organisation": "kirunabostader", "unit": "energi"}]},
        )
        assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "organisations.0.unit"
        assert (await intake.post(f"/api/v1/ideas/{idea_id}/reroute", json=body, headers=office)).status_code == 202
        command = json.loads((await commands.wait_count(1))[0].value)
        assert command["type"] == "se.kiruna.innovation.command.reroute-idea.v1"
        assert command["data"]["requested_by"] == "innovation.office"
        acknowledged = await intake.post(
            f"/api/v1/ideas/{idea_id}/status", json={"to_state": "acknowledged"}, headers=office
        )
        assert acknowledged.status_code == 202


async def test_comments_support_and_follows_are_the_signed_in_persons_whatever_the_body_says(
    settings, topics, kafka_settings
):
    app = intake_app(settings)
    async with running(app) as intake, probe(kafka_settings, topics.engagement) as engagement:
        keyring = app.state.runtime.keyring
        idea_id = (await intake.post("/api/v1/ideas", json=IDEA)).json()["idea_id"]
        support = f"/api/v1/ideas/{idea_id}/support"
        first = await intake.post(support, json={"person": EMAIL[ERIK]}, headers=bearer(PER))
        again = await intake.post(support, headers=bearer(PER))
        assert (first.status_code, again.status_code) == (202, 200)
        assert "already" in again.json()["detail"]
        comment = await intake.post(
            f"/api/v1/ideas/{idea_id}/comments",
            json={"person": EMAIL[ERIK], "text": "<script>alert(1)</script> 👍 Bra!"},
            headers=bearer(ANNA),
        )
        assert comment.status_code == 202
        follow = await intake.post(f"/api/v1/ideas/{idea_id}/follow", headers=bearer(ANNA))
        assert follow.status_code == 202
        missing = await intake.post(f"/api/v1/ideas/{uuid.uuid4()}/comments", json={"text": "x"}, headers=bearer(ANNA))
        assert missing.status_code == 404
        for path, body in (("comments", {"text": "vem är jag?", "person": EMAIL[ANNA]}), ("support", None)):
            signed_out = await intake.post(f"/api/v1/ideas/{idea_id}/{path}", json=body)
            assert signed_out.status_code == 401 and "WWW-Authenticate" in signed_out.headers
        records = await engagement.wait_count(3)
        events = [EngagementEvent.parse(r.value) for r in records]
        assert [(e.data.kind, e.data.person.pseudonym) for e in events] == [
            ("support", keyring.pseudonym(EMAIL[PER])),
            ("comment", keyring.pseudonym(EMAIL[ANNA])),
            ("follow", keyring.pseudonym(EMAIL[ANNA])),
        ]
        assert events[0].id == intake_id(ID_PREFIX, "support", idea_id, keyring.pseudonym(EMAIL[PER]))
        people = [await keyring.open_json(e.data.person.sealed) for e in events]
        assert [person["email"] for person in people] == [EMAIL[PER], EMAIL[ANNA], EMAIL[ANNA]]
        assert people[1]["name"] == "Anna Svensson" and events[1].data.person.organisation == "kiruna-kommun"
        assert await keyring.open(events[1].data.text) == "<script>alert(1)</script> 👍 Bra!"  # text, exactly
        raw = b"".join(r.value for r in records).decode()
        assert "Bra!" not in raw and "anna" not in raw.lower() and "niemi" not in raw.lower()  # all sealed


async def test_a_named_idea_is_the_signed_in_persons_and_an_anonymous_one_keeps_nothing(
    settings, topics, kafka_settings
):
    named = {"title": "Cykelställ vid Kulturhuset", "description": "Fler cykelställ behövs."}
    app = intake_app(settings)
    async with running(app) as intake, probe(kafka_settings, topics.submitted) as submitted:
        keyring = app.state.runtime.keyring
        unsigned = await intake.post("/api/v1/ideas", json=named)
        assert unsigned.status_code == 401 and "sign-in" in unsigned.json()["detail"]
        forged = await intake.post(
            "/api/v1/ideas", json={**named, "submitter": {"name": "Erik Lindberg"}}, headers=bearer(ANNA)
        )
        assert forged.status_code == 422 and forged.json()["errors"][0]["field"] == "submitter"
        mine = await intake.post("/api/v1/ideas", json=named, headers=bearer(ANNA))
        anonymous = await intake.post("/api/v1/ideas", json={**named, "anonymous": True}, headers=bearer(ANNA))
        assert (mine.status_code, anonymous.status_code) == (202, 202)
        records = await submitted.wait_count(2)
        by_id = {json.loads(r.value)["subject"]: json.loads(r.value)["data"] for r in records}
        submitter = PersonRef.model_validate(by_id[mine.json()["idea_id"]]["submitter"])
        assert (submitter.pseudonym, submitter.organisation, submitter.unit) == (
            keyring.pseudonym(EMAIL[ANNA]),
            "kiruna-kommun",
            "kultur-och-fritid",
        )
        assert await keyring.open_json(submitter.sealed) == {"name": "Anna Svensson", "email": EMAIL[ANNA]}
        assert "anna" not in json.dumps(by_id[mine.json()["idea_id"]]).lower()  # sealed, not in the clear
        assert by_id[anonymous.json()["idea_id"]].get("submitter") is None
        assert "anna" not in json.dumps(by_id[anonymous.json()["idea_id"]]).lower()


async def test_anonymous_ideas_without_sign_in_can_be_switched_off(service_settings, topics):
    settings = service_settings(IntakeSettings, anonymous_without_sign_in=False)
    async with running(intake_app(settings)) as intake:
        refused = await intake.post("/api/v1/ideas", json=IDEA)
        assert refused.status_code == 401
        assert (await intake.post("/api/v1/ideas", json=IDEA, headers=bearer(PER))).status_code == 202


async def test_the_raw_kafka_door_republishes_valid_ideas_and_dead_letters_the_rest(settings, topics, kafka_settings):
    app = intake_app(settings)
    async with (
        running(app),
        probe(kafka_settings, topics.submitted) as submitted,
        probe(kafka_settings, topics.dlq(topics.intake_raw)) as rejected,
        raw_producer(kafka_settings) as producer,
    ):
        good = {"title": "Sensorer i vattenledningarna", "description": "Hitta läckor tidigt.", "anonymous": True}
        lisa = {"name": "Lisa Kurak", "email": "Lisa.Kurak@Kiruna.se", "organisation": "kiruna-kommun"}
        # one partition for the raw door here, so that the order below is the topic's order
        for body in (
            {"title": "x", "anonymous": True},
            {**good, "area_hints": ["rymden"]},
            {**good, "anonymous": False, "submitter": {"name": "Lisa Kurak"}},  # named, but no address to key
            good,
            {**good, "anonymous": False, "submitter": lisa},
        ):
            await producer.send_and_wait(topics.intake_raw, json.dumps(body).encode(), partition=0)
        records = await submitted.wait_count(2)
        events = [SubmittedEvent.parse(r.value) for r in records]
        [anonymous] = [e for e in events if e.data.anonymous]
        [named] = [e for e in events if not e.data.anonymous]
        assert [(e.data.title, e.data.channel) for e in (anonymous, named)] == [(good["title"], "kafka")] * 2
        assert anonymous.data.submitter is None
        keyring = app.state.runtime.keyring
        assert named.data.submitter.pseudonym == keyring.pseudonym("lisa.kurak@kiruna.se")
        assert await keyring.open_json(named.data.submitter.sealed) == {
            "name": "Lisa Kurak",
            "email": "lisa.kurak@kiruna.se",
        }
        assert all("lisa" not in r.value.decode().lower() for r in records)  # the raw door's names leave sealed
        records = await rejected.wait_count(3)
        reasons = [{k: v.decode() for k, v in r.headers} for r in records]
        assert "title" in reasons[0]["x-dlq-error"] and reasons[0]["x-dlq-reason"] == "malformed"
        assert "area_hints.0" in reasons[1]["x-dlq-error"] and reasons[1]["x-dlq-reason"] == "rejected"
        assert "submitter.email: required for a named idea" in reasons[2]["x-dlq-error"]
        assert reasons[2]["x-dlq-reason"] == "rejected"


async def test_writes_over_the_rate_limit_get_429_with_retry_after(service_settings, topics):
    async with running(intake_app(service_settings(IntakeSettings, rate_limit_per_minute=3))) as intake:
        answers = [await intake.post("/api/v1/ideas", json=IDEA) for _ in range(4)]
        assert [a.status_code for a in answers[:3]] == [202, 202, 202]
        assert answers[3].status_code == 429 and int(answers[3].headers["Retry-After"]) >= 1


async def test_a_body_over_the_limit_is_413(settings, topics):
    async with running(intake_app(settings)) as intake:
        answer = await intake.post(
            "/api/v1/ideas", content=b"x" * (settings.max_body_bytes + 1), headers={"content-type": "application/json"}
        )
        assert answer.status_code == 413
