"""The people's rights at intake on the real Kafka, Redis and Keycloak: what a signed-in person does is sealed in
every event (a plain Kafka consumer reading the topics from the start finds neither their address nor their name),
the export gives it all back decrypted, and after an erasure the export is empty, the keyring has no key and Redis
holds nothing that names them."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from redis.asyncio import Redis

from services.intake.app import create_app as intake_app
from services.intake.settings import IntakeSettings
from tests.support.apps import running
from tests.support.identity import ADMIN, ANNA, EMAIL, MARIA, PER, bearer
from tests.support.kafka import eventually, probe

pytestmark = pytest.mark.kafka

IDEA = {"title": "Värmeslingor i trappan vid stadshuset", "description": "Trappan är isig varje morgon."}


@pytest.fixture
def settings(service_settings):
    return service_settings(IntakeSettings, rate_limit_per_minute=1000, smtp_enabled=False)


async def redis_contents(redis: Redis, pattern: str) -> dict[str, str]:
    """Every key matching ``pattern`` with its value as text, whatever its type (a SCAN, never KEYS)."""
    contents: dict[str, str] = {}
    async for key in redis.scan_iter(match=pattern, count=1000):
        kind = await redis.type(key)
        if kind == "string":
            value: Any = await redis.get(key)
        elif kind == "hash":
            value = await redis.hgetall(key)
        elif kind == "set":
            value = sorted(await redis.smembers(key))
        elif kind == "zset":
            value = await redis.zrange(key, 0, -1, withscores=True)
        elif kind == "list":
            value = await redis.lrange(key, 0, -1)
        else:
            value = kind
        contents[key] = json.dumps(value, ensure_ascii=False, default=str)
    return contents


def naming(text: str, *clues: str) -> list[str]:
    return [clue for clue in clues if clue.lower() in text.lower()]


async def test_a_persons_data_is_sealed_exported_and_erased(settings, topics, kafka_settings, redis_prefix):
    app = intake_app(settings)
    async with (
        running(app) as intake,
        probe(kafka_settings, topics.submitted) as submitted,
        probe(kafka_settings, topics.engagement) as engagement,
        probe(kafka_settings, topics.people_keys) as keys,
        probe(kafka_settings, topics.people_erasures) as erasures,
    ):
        keyring = app.state.runtime.keyring
        redis: Redis = app.state.runtime.redis
        anna, per, maria = bearer(ANNA), bearer(PER), bearer(MARIA)
        name = (await intake.get("/auth/me", headers=anna)).json()["name"]
        assert name == "Anna Svensson"
        clues = (EMAIL[ANNA], name, "Svensson")
        anna_p, per_p, maria_p = (keyring.pseudonym(EMAIL[who]) for who in (ANNA, PER, MARIA))

        # Anna submits a named idea (with an Idempotency-Key), comments, supports and follows it
        answer = await intake.post("/api/v1/ideas", json=IDEA, headers={**anna, "Idempotency-Key": str(uuid.uuid4())})
        assert answer.status_code == 202
        idea_id = answer.json()["idea_id"]
        comment = "Ja! Jag halkade där i tisdags. /Anna Svensson"
        for path, body in (("comments", {"text": comment}), ("support", None), ("follow", None)):
            assert (await intake.post(f"/api/v1/ideas/{idea_id}/{path}", json=body, headers=anna)).status_code == 202
        # Per supports it, Maria comments and supports it
        assert (await intake.post(f"/api/v1/ideas/{idea_id}/support", headers=per)).status_code == 202
        maria_says = {"text": "Bra förslag från samhällsbyggnad."}
        said = await intake.post(f"/api/v1/ideas/{idea_id}/comments", json=maria_says, headers=maria)
        assert said.status_code == 202
        assert (await intake.post(f"/api/v1/ideas/{idea_id}/support", headers=maria)).status_code == 202

        # read raw from the start: no address, no name, no comment text in the clear
        await submitted.wait_count(1)
        await engagement.wait_count(6)
        for reader in (submitted, engagement, keys):
            raw = b"\n".join(r.value or b"" for r in reader.records).decode()
            assert naming(raw, *clues, "Per Niemi", EMAIL[PER], "Maria Nilsson", EMAIL[MARIA], "halkade") == []
        assert {r.key.decode() for r in keys.records} >= {anna_p, per_p, maria_p}  # keyed by pseudonym

        # the export: everything, decrypted; the same for an admin acting on her request
        export = (await intake.get("/api/v1/people/me/export", headers=anna)).json()
        assert export["person"]["pseudonym"] == anna_p
        assert (export["person"]["email"], export["person"]["name"]) == (EMAIL[ANNA], name)
        assert [(i["idea_id"], i["title"], i["channel"]) for i in export["ideas"]] == [(idea_id, IDEA["title"], "api")]
        assert [(c["idea_id"], c["text"]) for c in export["comments"]] == [(idea_id, comment)]
        assert [s["idea_id"] for s in export["supports"]] == [idea_id]
        assert [f["idea_id"] for f in export["follows"]] == [idea_id]
        assert "Maria" not in json.dumps(export) and "samhällsbyggnad" not in json.dumps(export)
        by_admin = (await intake.get(f"/api/v1/people/{EMAIL[ANNA]}/export", headers=bearer(ADMIN))).json()
        assert {k: v for k, v in by_admin.items() if k != "exported_at"} == {
            k: v for k, v in export.items() if k != "exported_at"
        }

        # who may ask
        other = f"/api/v1/people/{EMAIL[ANNA]}"
        for method, path in (("POST", "/api/v1/people/me/erasure"), ("GET", "/api/v1/people/me/export")):
            assert (await intake.request(method, path)).status_code == 401
        assert (await intake.post(f"{other}/erasure", headers=per)).status_code == 403
        assert (await intake.get(f"{other}/export", headers=per)).status_code == 403
        assert (await intake.post("/api/v1/people/not-an-address/erasure", headers=bearer(ADMIN))).status_code == 422
        assert await redis.exists(f"{redis_prefix}:people:key:{anna_p}")  # nothing erased by a refusal

        # Anna erases herself, an admin erases Per on his request, and someone the platform never knew
        mine = await intake.post("/api/v1/people/me/erasure", headers=anna)
        pers = await intake.post(f"/api/v1/people/{EMAIL[PER]}/erasure", headers=bearer(ADMIN))
        unknown = await intake.post("/api/v1/people/nobody.here@kiruna.se/erasure", headers=bearer(ADMIN))
        assert (mine.status_code, pers.status_code, unknown.status_code) == (202, 202, 202)
        assert mine.json()["detail"] == unknown.json()["detail"] and "former employee" in mine.json()["detail"]
        requests = [json.loads(r.value) for r in await erasures.wait_count(3)]
        assert {(r["data"]["pseudonym"], r["data"]["requested_by"], r["data"].get("admin")) for r in requests} == {
            (anna_p, "person", None),
            (per_p, "admin", ADMIN),
            (keyring.pseudonym("nobody.here@kiruna.se"), "admin", ADMIN),
        }

        async def erased() -> bool:
            gone = [not await redis.exists(f"{redis_prefix}:people:key:{p}") for p in (anna_p, per_p)]
            return all(gone)

        await eventually(erased, timeout=30)
        await keys.wait_for(lambda records: any(r.key.decode() == anna_p and r.value is None for r in records))
        assert await keyring.current(anna_p) is None and await keyring.current(per_p) is None
        assert await keyring.current(maria_p) is not None  # the others are untouched

        export = (await intake.get("/api/v1/people/me/export", headers=anna)).json()
        assert export["person"] is None and export["preferences"] is None
        assert [export[part] for part in ("ideas", "comments", "supports", "follows", "notifications")] == [[]] * 5
        assert (await intake.get(f"/api/v1/people/{EMAIL[PER]}/export", headers=bearer(ADMIN))).json()["person"] is None
        marias = (await intake.get(f"/api/v1/people/{EMAIL[MARIA]}/export", headers=bearer(ADMIN))).json()
        assert [c["text"] for c in marias["comments"]] == [maria_says["text"]] and len(marias["supports"]) == 1

        # Redis names neither of them (every key and value of the test), and intake forgot their markers
        everything = await redis_contents(redis, f"{redis_prefix}:*")
        assert everything, "the scan found nothing at all"
        text = "\n".join(f"{k} {v}" for k, v in everything.items())
        assert naming(text, *clues, EMAIL[PER], "Per Niemi") == []
        intakes = "\n".join(f"{k} {v}" for k, v in everything.items() if k.startswith(f"{redis_prefix}:intake:"))
        assert naming(intakes, ANNA, PER, anna_p, per_p) == []  # not even their user names or pseudonyms
        assert await redis.smembers(f"{redis_prefix}:intake:supporters:{idea_id}") == {maria_p}

        # the idea stays, the organisation's record; a repeated request changes nothing
        assert (await app.state.intake.store.idea(idea_id)) is not None
        assert (await intake.post("/api/v1/people/me/erasure", headers=anna)).status_code == 202
        await erasures.wait_count(4)
        await keys.wait_for(lambda rs: sum(r.key == anna_p.encode() and r.value is None for r in rs) >= 2)
        assert await keyring.current(maria_p) is not None
        assert (await intake.get("/api/v1/people/me/export", headers=anna)).json()["comments"] == []


async def test_the_rate_limits_name_no_one(settings, topics, redis_prefix):
    app = intake_app(settings)
    async with running(app) as intake:
        assert (await intake.post("/api/v1/ideas", json=IDEA, headers=bearer(ANNA))).status_code == 202
        everything = await redis_contents(app.state.runtime.redis, f"{redis_prefix}:*")
        assert naming("\n".join(f"{k} {v}" for k, v in everything.items()), ANNA, EMAIL[ANNA], "Svensson") == []


async def test_the_export_without_kafka_is_a_503_with_retry_after(service_settings, kafka_settings):
    away = kafka_settings.model_copy(update={"bootstrap_servers": "127.0.0.1:1"})
    settings = service_settings(IntakeSettings, kafka=away, smtp_enabled=False, export_timeout_s=5)
    app = intake_app(settings)
    async with running(app, wait_for_kafka=False) as intake:
        keyring = app.state.runtime.keyring
        # Kafka is away: let Anna's key be made here without recording it (or restoring the keyring first)
        keyring.writer.record = _recorded
        await app.state.runtime.redis.set(f"{settings.redis_prefix}:people:keyring-restored", "1")
        await keyring.key_for(EMAIL[ANNA])
        answer = await intake.get("/api/v1/people/me/export", headers=bearer(ANNA))
        assert answer.status_code == 503 and int(answer.headers["Retry-After"]) >= 1
        assert "export cannot be read" in answer.json()["detail"]
        erasure = await intake.post("/api/v1/people/me/erasure", headers=bearer(ANNA))
        assert erasure.status_code == 503 and "Retry-After" in erasure.headers  # nothing requested, nothing said


async def _recorded(key) -> None:
    return None
