"""Property-based fuzzing of intake's JSON API (hypothesis) against the real service on the real Kafka and
Redis: whatever arrives, the answer is never a 5xx. Run with `-s` to see how many cases were tried."""

from __future__ import annotations

import asyncio
import functools
import os
import socket
import threading
import time
import uuid
from urllib.parse import quote

import httpx
import pytest
import uvicorn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.intake.app import create_app
from services.intake.settings import IntakeSettings
from shared.catalogue import load_catalogue
from shared.settings import KafkaSettings
from shared.topics import Topics, ensure_topics
from tests.conftest import _PREFIXES
from tests.support import identity

pytestmark = [
    pytest.mark.kafka,
    # intake runs in a thread beside the draws (the trace ids of its requests come from the process-wide random
    # generator): hypothesis sees that generator move during a draw and takes it for a strategy using `random`
    pytest.mark.filterwarnings("ignore:Do not use the `random` module inside strategies"),
]
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "150"))
CASES = {"count": 0}

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=300),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=20), inner, max_size=4),
    max_leaves=12,
)
texts = st.one_of(
    st.text(max_size=250),
    st.sampled_from(["", "ab", "x" * 201, "<script>alert(1)</script>", "🚀" * 50, "Fjärrvärme", "\u0000", "\ud7ff"]),
)


def fields(**known: st.SearchStrategy) -> st.SearchStrategy:
    """Dicts with any subset of the known fields (each valid-ish or arbitrary) plus, sometimes, junk keys."""
    mixed = {name: strategy | json_values for name, strategy in known.items()}
    return st.fixed_dictionaries({}, optional=mixed) | json_values


idea_bodies = fields(
    title=texts,
    description=texts,
    language=st.sampled_from(["sv", "en", "fi", ""]),
    area_hints=st.lists(st.sampled_from(["boende", "rymden", "BAD ID"]), max_size=3),
    anonymous=st.booleans(),
    organisation_hints=st.lists(st.sampled_from(["kirunabostader", "nasa"]), max_size=3),
    submitter=fields(name=texts, email=st.sampled_from(["a@kiruna.se", "not-an-email", ""]), organisation=texts),
    channel=st.sampled_from(["api", "web", "fax"]),
)
status_bodies = fields(
    to_state=st.sampled_from(["acknowledged", "declined", "merged", "spread", "nonsense"]),
    reason=texts,
    merged_into=st.sampled_from([str(uuid.uuid4()), "x", None]),
)
engagement_bodies = fields(text=texts, person=st.sampled_from(["per@kiruna.se", "nope", ""]))
reroute_bodies = fields(
    organisations=st.lists(fields(organisation=st.sampled_from(["kirunabostader", "nasa"]), unit=texts), max_size=3),
    areas=st.lists(st.sampled_from(["boende", "x"]), max_size=3),
    reason=texts,
)
idea_ids = st.sampled_from(["not-a-uuid", str(uuid.uuid4()), "../../etc/passwd", "%00"])
UNKNOWN_PERSON = "nobody.at.all@kiruna.se"
person_ids = st.one_of(
    st.text(max_size=80),
    st.sampled_from(
        [UNKNOWN_PERSON, "NOBODY.AT.ALL@KIRUNA.SE", "not an address", "a@b", "x" * 400 + "@kiruna.se", "../me", "%40"]
    ),
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def intake_url():
    """Intake served by uvicorn over real HTTP in a thread, on its own topics."""
    prefix = f"fuzz{uuid.uuid4().hex[:8]}."
    _PREFIXES.append(prefix)  # the session deletes these topics at its end (tests/conftest.py)
    kafka = KafkaSettings(
        bootstrap_servers=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"), topic_prefix=prefix, partitions=1
    )
    asyncio.run(ensure_topics(kafka, Topics(prefix).specs(kafka, load_catalogue().organisation_ids)))
    app_settings = IntakeSettings(
        kafka=kafka,
        redis_prefix=f"test{prefix}",
        rate_limit_per_minute=1_000_000,
        smtp_enabled=False,
        port=free_port(),
        group_id=f"fuzz-{prefix}",
    )
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(app_settings), host="127.0.0.1", port=app_settings.port, log_level="warning", lifespan="on"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{app_settings.port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz").status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    idea = httpx.post(f"{url}/api/v1/ideas", json={"title": "Fuzzmålet", "anonymous": True}).json()["idea_id"]
    token = identity.token(identity.INNOVATION_OFFICE)  # a real token from the local Keycloak
    yield url, idea, token
    server.should_exit = True
    thread.join(timeout=20)
    print(f"\nfuzz: {CASES['count']} requests, none answered 5xx")


def check(response: httpx.Response) -> None:
    CASES["count"] += 1
    assert response.status_code < 500, (response.request.method, response.request.url, response.text)
    if response.status_code >= 400:  # every refusal says why: JSON for the API, a page for the form
        if response.headers.get("content-type", "").startswith("application/json"):
            assert response.json()["detail"]
        else:
            assert response.headers["content-type"].startswith("text/html") and "<main>" in response.text


FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))


@FUZZ
@given(
    body=idea_bodies, key=st.one_of(st.none(), st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40))
)
def test_submitting_anything_never_answers_5xx(intake_url, body, key):
    url, _, _ = intake_url
    headers = {"Idempotency-Key": key} if key and key.strip() == key else {}
    check(httpx.post(f"{url}/api/v1/ideas", json=body, headers=headers))


@FUZZ
@given(body=status_bodies, idea=idea_ids, authorised=st.booleans())
def test_status_changes_never_answer_5xx(intake_url, body, idea, authorised):
    url, known, token = intake_url
    target = known if idea.startswith("0") else idea
    headers = {"Authorization": f"Bearer {token}"} if authorised else {"Authorization": "Bearer junk"}
    check(httpx.post(f"{url}/api/v1/ideas/{target}/status", json=body, headers=headers))


@FUZZ
@given(body=engagement_bodies, which=st.sampled_from(["comments", "support"]), known_idea=st.booleans())
def test_engagement_never_answers_5xx(intake_url, body, which, known_idea):
    url, known, _ = intake_url
    check(httpx.post(f"{url}/api/v1/ideas/{known if known_idea else uuid.uuid4()}/{which}", json=body))


@FUZZ
@given(body=reroute_bodies)
def test_reroutes_never_answer_5xx(intake_url, body):
    url, known, token = intake_url
    check(httpx.post(f"{url}/api/v1/ideas/{known}/reroute", json=body, headers={"Authorization": f"Bearer {token}"}))


@FUZZ
@given(
    raw=st.binary(max_size=500),
    content_type=st.sampled_from(["application/json", "text/plain", "", "application/x-www-form-urlencoded"]),
)
def test_raw_bytes_never_answer_5xx(intake_url, raw, content_type):
    url, _, _ = intake_url
    check(httpx.post(f"{url}/api/v1/ideas", content=raw, headers={"content-type": content_type}))
    check(httpx.post(f"{url}/ideas", content=raw, headers={"content-type": content_type}))


@functools.cache
def admin_token() -> str:
    return identity.token(identity.ADMIN)


@settings(max_examples=min(EXAMPLES, 60), deadline=None, suppress_health_check=list(HealthCheck))
@given(person=person_ids, what=st.sampled_from(["erasure", "export"]), as_admin=st.booleans())
def test_the_people_endpoints_never_answer_5xx_and_an_unknown_person_is_accepted_all_the_same(
    intake_url, person, what, as_admin
):
    """Erasure and export by an admin, for any "person" at all: never a 5xx; an erasure for someone the platform
    does not know answers 202 like any other (nothing to tell an attacker), and without the admin role 401/403."""
    url, _, _ = intake_url
    headers = {"Authorization": f"Bearer {admin_token()}"} if as_admin else {}
    path = f"{url}/api/v1/people/{quote(person, safe='')}/{what}"
    response = httpx.post(path, headers=headers) if what == "erasure" else httpx.get(path, headers=headers)
    check(response)
    if not as_admin:
        assert response.status_code in (401, 403, 404, 405, 422), response.text
    elif what == "erasure" and person.strip().lower() == UNKNOWN_PERSON:
        assert response.status_code == 202, response.text
