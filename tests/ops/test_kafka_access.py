"""Kafka access control (shared/kafka_access.py): the plan of users and ACLs against what each service really
reads and writes, and, on the secured three-broker cluster (deploy/kafka/cluster.sh), that an organisation reads
its own topic and nothing else, that a service cannot write a topic that is not its own, and that the apply
command changes nothing the second time."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid

import pytest
import yaml
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import TopicAuthorizationFailedError
from pydantic import SecretStr

from services.analytics.app import create_app as analytics_app
from services.analytics.settings import AnalyticsSettings
from services.intake.app import create_app as intake_app
from services.intake.settings import IntakeSettings
from services.notifications.app import create_app as notifications_app
from services.notifications.settings import NotificationsSettings
from services.routing.app import create_app as routing_app
from services.routing.settings import RoutingSettings
from shared import kafka_access
from shared.catalogue import load_catalogue
from shared.kafka import client_options
from shared.settings import KafkaSettings
from shared.topics import Topics, ensure_topics
from tests.ops.conftest import DEPLOY, ROOT, cluster_settings

pytestmark = [pytest.mark.ops]


def on_the_cluster(test):
    """A test that needs the three-broker cluster (``-m cluster``)."""
    return pytest.mark.kafka(pytest.mark.cluster(test))


APPS = {
    "intake": (intake_app, IntakeSettings),
    "routing": (routing_app, RoutingSettings),
    "notifications": (notifications_app, NotificationsSettings),
    "analytics": (analytics_app, AnalyticsSettings),
}
T = Topics()
# Read without a subscription: every keyring restores people's keys from people.keys.v1; notifications' rebuild
# replays what it sent.
REPLAYED = {  # read without a subscription: restoring the keyring, a rebuild, an export
    "intake": {T.people_keys, T.preferences, T.notifications_sent},  # the keyring; the export reads them
    "routing": {T.people_keys},
    "notifications": {T.people_keys, T.notifications_sent},
    "analytics": {T.people_keys},
}
KEYS_WRITTEN = {"intake": {T.people_keys}, "notifications": {T.people_keys}}  # by the keyring's own producer


def allowed(principal: kafka_access.Principal, operation: str, topic: str) -> bool:
    return any(
        acl.resource == "topic"
        and acl.operation == operation
        and (acl.name == topic if acl.pattern == "literal" else topic.startswith(acl.name))
        for acl in principal.acls
    )


@pytest.mark.parametrize("service", list(APPS))
def test_each_service_may_read_what_it_subscribes_to_and_write_what_it_publishes_and_no_more(service):
    create_app, settings_class = APPS[service]
    broker = create_app(settings_class()).state.runtime.broker  # built, never started
    consumed = {topic for subscriber in broker.subscribers for topic in subscriber.topic_names}
    published = {publisher.topic for publisher in broker.publishers}
    groups = {subscriber.group_id for subscriber in broker.subscribers}
    catalogue = load_catalogue()
    principal = next(p for p in kafka_access.plan(Topics(), catalogue) if p.user == service)

    assert all(allowed(principal, "READ", topic) for topic in consumed)
    assert all(allowed(principal, "WRITE", topic) for topic in published | {f"{t}.dlq" for t in consumed})
    for acl in principal.acls:  # and nothing it does not use
        if acl.resource == "topic" and acl.pattern == "literal" and acl.operation == "READ":
            assert acl.name in consumed | REPLAYED.get(service, set()), acl
        if acl.resource == "topic" and acl.pattern == "literal" and acl.operation == "WRITE":
            written = published | KEYS_WRITTEN.get(service, set()) | {"notifications.dlq"}
            assert acl.name in written | {f"{t}.dlq" for t in consumed}, acl
        if acl.resource == "group":
            assert all(group.startswith(acl.name) for group in groups), acl


def test_the_people_topics_are_read_by_every_service_and_written_only_where_keys_are_made():
    """Issue 13: every keyring restores from people.keys.v1 and every service forgets an erased person
    (people.erasures.v1, its own group); keys are made by intake and notifications, erasures only by intake, and
    no organisation sees a key or a pseudonym."""
    principals = {p.user: p for p in kafka_access.plan(Topics("x."), load_catalogue())}
    keys, erasures = "x.people.keys.v1", "x.people.erasures.v1"
    for service in APPS:
        assert allowed(principals[service], "READ", keys) and allowed(principals[service], "READ", erasures)
        assert allowed(principals[service], "WRITE", f"{erasures}.dlq")
        assert not allowed(principals[service], "WRITE", f"{keys}.dlq")  # not a subscription: nothing to dead-letter
        assert allowed(principals[service], "WRITE", keys) == (service in ("intake", "notifications"))
        assert allowed(principals[service], "WRITE", erasures) == (service == "intake")
    for user, principal in principals.items():
        if user not in APPS:
            assert not any("people." in acl.name for acl in principal.acls), user
    for old in ("x.ideas.submitted.v1", "x.ideas.engagement.v1", "x.notifications.preferences.v1"):  # migration's
        assert not any(acl.name == old for p in principals.values() for acl in p.acls), old


def test_each_subscribing_organisation_may_read_only_its_own_topic_in_its_own_groups():
    catalogue = load_catalogue()
    principals = {p.user: p for p in kafka_access.plan(Topics("x."), catalogue)}
    for org in catalogue.organisations:
        user = kafka_access.organisation_user(org.id)
        if not org.subscribes:
            assert user not in principals
            continue
        acls = {(a.resource, a.pattern, a.name, a.operation) for a in principals[user].acls}
        topic = f"x.org.{org.id}.ideas.v1"
        group = f"x.org.{org.id}."
        assert acls == {
            ("topic", "literal", topic, "READ"),
            ("topic", "literal", topic, "DESCRIBE"),
            ("group", "prefixed", group, "READ"),
        }


def test_passwords_come_from_the_environment_and_production_has_no_defaults():
    principals = kafka_access.plan(Topics(), load_catalogue())
    given = kafka_access.passwords(principals, {"KAFKA_PASSWORD_ORG_TEKNISKA_VERKEN": "s3cret"})
    assert given["org-tekniska-verken"] == "s3cret" and given["intake"] == kafka_access.local_password("intake")
    with pytest.raises(kafka_access.MissingPasswords, match="KAFKA_PASSWORD_INTAKE"):
        kafka_access.passwords(principals, {"KIRUNA_ENV": "production"})
    every = {p.password_variable: "x" for p in principals}
    assert kafka_access.passwords(principals, {"KIRUNA_ENV": "production", **every})["routing"] == "x"


# --- on the secured cluster ------------------------------------------------------------------------------------


@pytest.fixture
async def admin(cluster: str, cluster_admin_env: dict[str, str], test_id: str):
    """The superuser's settings with this test's topic prefix; the topics of the catalogue exist, the users and
    ACLs have been applied for them, and the topics are deleted at the end."""
    settings = cluster_settings(cluster_admin_env, topic_prefix=f"k{test_id}.", partitions=2)
    topics = Topics(settings.topic_prefix)
    await ensure_topics(settings, topics.specs(settings, load_catalogue().organisation_ids), wait_s=60)
    yield settings
    from aiokafka.admin import AIOKafkaAdminClient

    client = AIOKafkaAdminClient(**client_options(settings))
    try:
        await client.start()
        doomed = [t for t in await client.list_topics() if t.startswith(settings.topic_prefix)]
        if doomed:
            await client.delete_topics(doomed, timeout_ms=30_000)
    finally:
        await client.close()


@pytest.fixture
async def access(admin: KafkaSettings):
    """The plan for this test's topics, applied; ``access(user)`` gives that user's settings."""
    principals = kafka_access.plan(Topics(admin.topic_prefix), load_catalogue())
    secrets = kafka_access.passwords(principals)
    await kafka_access.apply(admin, principals, secrets)

    def as_user(user: str) -> KafkaSettings:
        return admin.model_copy(update={"sasl_username": user, "sasl_password": SecretStr(secrets[user])})

    return as_user


def organisation(org_id: str) -> str:
    return kafka_access.organisation_user(org_id)


@on_the_cluster
async def test_an_organisation_reads_its_own_topic(access, admin):
    topic = Topics(admin.topic_prefix).organisation("tekniska-verken")
    key, value = str(uuid.uuid4()).encode(), b'{"type": "se.kiruna.innovation.idea.routed.v1"}'
    producer = AIOKafkaProducer(**client_options(access("routing")), acks="all", enable_idempotence=True)
    await producer.start()
    try:
        await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()

    group = f"{admin.topic_prefix}org.tekniska-verken.ideas-reader"
    consumer = AIOKafkaConsumer(
        topic, **client_options(access(organisation("tekniska-verken"))), group_id=group, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        record = await consumer.getone()  # the first record of a topic with one record; getone waits for it
        assert (record.key, record.value) == (key, value)
        await consumer.commit()  # its own consumer group works too
    finally:
        await consumer.stop()


@on_the_cluster
async def test_an_organisation_is_refused_another_organisations_topic(access, admin):
    topics = Topics(admin.topic_prefix)
    consumer = AIOKafkaConsumer(
        topics.organisation("kirunabostader"),
        **client_options(access(organisation("tekniska-verken"))),
        group_id=f"{admin.topic_prefix}org.tekniska-verken.snooping",
        auto_offset_reset="earliest",
    )
    try:
        with pytest.raises(TopicAuthorizationFailedError) as refused:
            await consumer.start()  # it asks for the topic's metadata: refused at once
            await consumer.getmany(timeout_ms=15_000)
        assert topics.organisation("kirunabostader") in str(refused.value)
    finally:
        await consumer.stop()


@on_the_cluster
async def test_intake_cannot_write_the_routed_topic(access, admin):
    topics = Topics(admin.topic_prefix)
    producer = AIOKafkaProducer(**client_options(access("intake")), acks="all", enable_idempotence=True)
    await producer.start()
    try:
        await producer.send_and_wait(topics.submitted, b"{}", key=b"allowed")  # its own topic: fine
        with pytest.raises(TopicAuthorizationFailedError):
            await producer.send_and_wait(topics.routed, b"{}", key=b"refused")
    finally:
        await producer.stop()


@on_the_cluster
async def test_only_the_services_that_make_keys_may_write_them_and_no_organisation_reads_them(access, admin):
    topics = Topics(admin.topic_prefix)
    intake = AIOKafkaProducer(**client_options(access("intake")), acks="all", enable_idempotence=True)
    analytics = AIOKafkaProducer(**client_options(access("analytics")), acks="all", enable_idempotence=True)
    await intake.start()
    await analytics.start()
    try:
        await intake.send_and_wait(topics.people_keys, None, key=b"-")  # a tombstone, as intake's keyring writes
        with pytest.raises(TopicAuthorizationFailedError):
            await analytics.send_and_wait(topics.people_keys, None, key=b"-")
    finally:
        await intake.stop()
        await analytics.stop()
    consumer = AIOKafkaConsumer(
        topics.people_keys,
        **client_options(access(organisation("tekniska-verken"))),
        group_id=f"{admin.topic_prefix}org.tekniska-verken.keys",
        auto_offset_reset="earliest",
    )
    try:
        with pytest.raises(TopicAuthorizationFailedError):
            await consumer.start()
            await consumer.getmany(timeout_ms=15_000)
    finally:
        await consumer.stop()


async def apply_command(env: dict[str, str]) -> str:
    """``python -m shared.kafka_access apply``, as an operator runs it; what it printed."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "shared.kafka_access",
        "apply",
        env=env,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode == 0, output.decode()
    return output.decode()


@on_the_cluster
async def test_the_apply_command_changes_nothing_the_second_time(admin, cluster_admin_env):
    env = {**os.environ, **cluster_admin_env, "KAFKA_TOPIC_PREFIX": admin.topic_prefix}
    first = await apply_command(env)  # this test's topics are new: their ACLs are created
    assert f"acl User:org-tekniska-verken READ topic {admin.topic_prefix}org.tekniska-verken.ideas.v1: created" in first
    second = await apply_command(env)
    users = len(kafka_access.plan(Topics(), load_catalogue()))
    summary = second.strip().splitlines()
    assert len(summary) == 1, second  # nothing created or updated: only the summary line
    assert f"{users} users (0 created, 0 updated, {users} already there)" in summary[0]
    assert "ACLs (0 created," in summary[0], summary


def test_compose_secures_kafka_and_gives_every_principal_its_own_password():
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    for node in ("kafka-1", "kafka-2", "kafka-3"):
        env = services[node]["environment"]
        assert env["KAFKA_AUTHORIZER_CLASS_NAME"] == "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
        assert env["KAFKA_SUPER_USERS"] == "User:kafka-admin" and env["KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND"] == "false"
        assert "PLAINTEXT:PLAINTEXT" not in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"]  # no unauthenticated door
        assert services[node]["command"] == ["bash", "/opt/kiruna/compose-node.sh"]
    job = services["kafka-access"]
    assert job["command"] == ["python", "-m", "shared.kafka_access", "apply"]
    assert job["environment"]["KIRUNA_ENV"] == "production"  # no development password can slip through
    for principal in kafka_access.plan(Topics(), load_catalogue()):
        assert ":?" in job["environment"][principal.password_variable], principal.password_variable
    for service in APPS:
        env = services[service]["environment"]
        assert env["KAFKA_SECURITY_PROTOCOL"] == "SASL_PLAINTEXT" and env["KAFKA_SASL_USERNAME"] == service
        assert env["KAFKA_SASL_PASSWORD"].startswith(f"${{KAFKA_PASSWORD_{service.upper()}:?")
        assert services[service]["depends_on"]["kafka-access"]["condition"] == "service_completed_successfully"
