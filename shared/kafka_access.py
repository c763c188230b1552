"""Who may do what on Kafka: one SCRAM user per service and per organisation whose systems subscribe to their
topic, each with only the topics and consumer groups it needs (``python -m shared.kafka_access apply|plan``).

The cluster runs Kafka's ``StandardAuthorizer`` with no ACL meaning no access; the nodes, topic creation
(``python -m shared.topics create``) and this command are the superuser (``kafka-admin`` locally). ``apply``
creates what is missing and changes nothing that is already right, so it may run at every start:

- a SCRAM-SHA-512 credential per user, its password from ``KAFKA_PASSWORD_<USER>`` (``KAFKA_PASSWORD_INTAKE``,
  ``KAFKA_PASSWORD_ORG_TEKNISKA_VERKEN`` ...). Without it a fixed local development value is used, which
  ``KIRUNA_ENV=production`` refuses. A user whose password no longer authenticates gets the configured one.
- the ACLs of :func:`plan`, on the topic names with ``KAFKA_TOPIC_PREFIX``; ACLs it did not plan are left alone.

aiokafka's admin client has no calls for SCRAM users and ACLs; its protocol layer carries the requests
(CreateAcls/DescribeAcls v1, Alter/DescribeUserScramCredentials v0), so this needs no Java.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import secrets
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from shared.catalogue import Catalogue
from shared.settings import KafkaSettings
from shared.topics import Topics

SERVICES = ("intake", "routing", "notifications", "analytics")
KEY_MAKERS = ("intake", "notifications")
"""The services that make people's data keys (and so write people.keys.v1): intake for submitters, commenters and
supporters (and the keys' tombstones), notifications for a person's preferences."""
MECHANISM = "SCRAM-SHA-512"
ITERATIONS = 8192


@dataclass(frozen=True, order=True)
class Acl:
    """One ALLOW rule: ``principal`` may ``operation`` on the ``resource`` (topic, group) ``name``, taken
    literally or as a prefix of names, from any host."""

    principal: str
    resource: str
    pattern: str
    name: str
    operation: str

    def __str__(self) -> str:
        where = f"{self.name}*" if self.pattern == "prefixed" else self.name
        return f"{self.principal} {self.operation} {self.resource} {where}"


@dataclass(frozen=True)
class Principal:
    """A SCRAM user and everything it may do."""

    user: str
    acls: tuple[Acl, ...]

    @property
    def password_variable(self) -> str:
        return "KAFKA_PASSWORD_" + re.sub(r"[^A-Z0-9]", "_", self.user.upper())


def _grants(
    user: str, *, reads=(), writes=(), groups=(), prefixed_writes=(), prefixed_creates=(), transactional_ids=()
) -> Principal:
    name = f"User:{user}"
    acls = {Acl(name, "topic", "literal", topic, "READ") for topic in reads}
    acls |= {Acl(name, "topic", "literal", topic, "WRITE") for topic in writes}
    acls |= {Acl(name, "topic", "prefixed", prefix, "WRITE") for prefix in prefixed_writes}
    acls |= {Acl(name, "topic", "prefixed", prefix, "CREATE") for prefix in prefixed_creates}
    acls |= {Acl(name, "group", "prefixed", prefix, "READ") for prefix in groups}  # READ implies DESCRIBE
    # WRITE on a transactional id implies DESCRIBE: begin, send, add offsets and commit transactions under it
    acls |= {Acl(name, "transactional_id", "prefixed", prefix, "WRITE") for prefix in transactional_ids}
    return Principal(user, tuple(sorted(acls)))


def plan(topics: Topics, catalogue: Catalogue, groups: Mapping[str, str] | None = None) -> list[Principal]:
    """Pure: every principal and its ACLs. ``groups`` maps a service to its ``<SERVICE>_GROUP_ID`` (default the
    service's name); each subscription's consumer group is ``<group>.<topic>`` (shared.kafka.subscriber_options).
    READ and WRITE imply DESCRIBE (metadata, offsets, the lag metric). Each service writes the ``.dlq`` of what
    it consumes; reads include the topics its rebuild replays (tests/ops/test_kafka_access.py checks this table
    against the services' own subscribers and publishers).

    The people's topics (issue 13): every service reads ``people.keys.v1`` (its keyring restores from it, without
    a consumer group) and subscribes to ``people.erasures.v1`` in its own group; the services that seal personal
    data write ``people.keys.v1`` (a key is made on first need: intake for submitters, commenters and supporters,
    notifications for a person's preferences); intake alone writes ``people.erasures.v1`` and the keys' tombstones.
    No organisation reads either: a data key or a pseudonym is never theirs to see."""
    group_ids = {service: (groups or {}).get(service) or service for service in SERVICES}
    groups = {service: f"{group}." for service, group in group_ids.items()}
    dlq = Topics.dlq
    ideas = tuple(topics.idea_events())  # submitted, routed, status-changed, engagement, edited, assignments
    people = (topics.people_erasures,)  # what every service subscribes to about people
    challenges = (topics.challenges,)  # intake judges answers, notifications tells the audience, analytics shows
    intake_reads = (topics.intake_raw, *ideas, *challenges, *people)
    routing_reads = (topics.submitted, topics.edited, topics.routing_commands, *people)  # an edit is placed anew
    notifications_consumes = (*ideas, *challenges, topics.preferences, *people)
    analytics_reads = (*ideas, *challenges, topics.notifications_sent, *people)
    keys = (topics.people_keys,)  # read by every keyring: not a subscription, so no dead letters

    def made_keys(service: str) -> tuple[str, ...]:
        return keys if service in KEY_MAKERS else ()

    principals = [
        _grants(
            "intake",
            # the export (GET /api/v1/people/me/export) reads what notifications holds about the person too
            reads=(*intake_reads, *keys, topics.preferences, topics.notifications_sent),
            writes=(
                topics.submitted,
                topics.status_changed,
                topics.engagement,
                topics.edited,
                topics.assignments,
                topics.challenges,
                topics.routing_commands,
                topics.people_erasures,
                *made_keys("intake"),
                *map(dlq, intake_reads),
            ),
            groups=[groups["intake"]],
        ),
        _grants(
            "routing",
            reads=(*routing_reads, *keys),
            writes=(topics.routed, *made_keys("routing"), *map(dlq, routing_reads)),
            # every organisation's topic, and the topic of an organisation added to the catalogue while it runs
            prefixed_writes=[topics.organisation("")[: -len(".ideas.v1")]],
            prefixed_creates=[topics.organisation("")[: -len(".ideas.v1")]],
            groups=[groups["routing"]],
            # its transactions (shared/transactions.py): transactional.id <group>-<ROUTING_INSTANCE>
            transactional_ids=[f"{group_ids['routing']}-"],
        ),
        _grants(
            "notifications",
            reads=(*notifications_consumes, topics.notifications_sent, *keys),  # its rebuild replays what it sent
            writes=(
                topics.notifications_sent,
                topics.preferences,
                *made_keys("notifications"),
                topics.notifications_dlq,
                *map(dlq, notifications_consumes),
            ),
            groups=[groups["notifications"]],
        ),
        _grants(
            "analytics",
            reads=(*analytics_reads, *keys),
            writes=(*made_keys("analytics"), *map(dlq, analytics_reads)),
            groups=[groups["analytics"]],
        ),
    ]
    for org in catalogue.organisations:
        if org.subscribes:
            topic = topics.organisation(org.id)
            principal = _grants(organisation_user(org.id), reads=[topic], groups=[organisation_group(topics, org.id)])
            describe = Acl(f"User:{principal.user}", "topic", "literal", topic, "DESCRIBE")
            principals.append(Principal(principal.user, tuple(sorted({*principal.acls, describe}))))
    return principals


def organisation_user(org_id: str) -> str:
    return f"org-{org_id}"


def organisation_group(topics: Topics, org_id: str) -> str:
    """The prefix of an organisation's own consumer groups, e.g. ``org.tekniska-verken.`` + anything."""
    return f"{topics.prefix}org.{org_id}."


class MissingPasswords(RuntimeError):
    """In production every password must be given; the local development values are public."""


def passwords(principals: Iterable[Principal], environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Each user's password from ``KAFKA_PASSWORD_<USER>``; a local development value where it is not set,
    except with ``KIRUNA_ENV=production``."""
    environ = os.environ if environ is None else environ
    found = {p.user: environ.get(p.password_variable, "") for p in principals}
    missing = sorted(p.password_variable for p in principals if not found[p.user])
    if missing and environ.get("KIRUNA_ENV", "").lower() == "production":
        raise MissingPasswords(f"KIRUNA_ENV=production: set {', '.join(missing)}")
    return {user: password or local_password(user) for user, password in found.items()}


def local_password(user: str) -> str:
    """The fixed development password of a user: for a local cluster only."""
    return f"{user}-local-only"


# --- Kafka's admin protocol, through aiokafka's protocol layer ------------------------------------------------

_RESOURCE = {"topic": 2, "group": 3, "transactional_id": 5}
_PATTERN = {"literal": 3, "prefixed": 4}
_OPERATION = {"READ": 3, "WRITE": 4, "CREATE": 5, "DESCRIBE": 8}
_ALLOW = 3
_SCRAM_SHA_512 = 2


def _protocol():
    """The request classes (defined on first use, so that importing this module costs nothing)."""
    from aiokafka.protocol.admin import (
        CreateAclsRequest_v1,
        DescribeAclsRequest_v1,
    )
    from aiokafka.protocol.api import Request, RequestStruct, Response
    from aiokafka.protocol.types import (
        CompactArray,
        CompactBytes,
        CompactString,
        Int8,
        Int16,
        Int32,
        Schema,
        TaggedFields,
    )

    class DescribeUserScramCredentialsResponse_v0(Response):
        API_KEY = 50
        API_VERSION = 0
        SCHEMA = Schema(
            ("throttle_time_ms", Int32),
            ("error_code", Int16),
            ("error_message", CompactString("utf-8")),
            (
                "results",
                CompactArray(
                    ("user", CompactString("utf-8")),
                    ("error_code", Int16),
                    ("error_message", CompactString("utf-8")),
                    (
                        "credential_infos",
                        CompactArray(("mechanism", Int8), ("iterations", Int32), ("tags", TaggedFields)),
                    ),
                    ("tags", TaggedFields),
                ),
            ),
            ("tags", TaggedFields),
        )

    class DescribeUserScramCredentialsRequest_v0(RequestStruct):
        FLEXIBLE_VERSION = True
        API_KEY = 50
        API_VERSION = 0
        RESPONSE_TYPE = DescribeUserScramCredentialsResponse_v0
        SCHEMA = Schema(
            ("users", CompactArray(("name", CompactString("utf-8")), ("tags", TaggedFields))), ("tags", TaggedFields)
        )

    class AlterUserScramCredentialsResponse_v0(Response):
        API_KEY = 51
        API_VERSION = 0
        SCHEMA = Schema(
            ("throttle_time_ms", Int32),
            (
                "results",
                CompactArray(
                    ("user", CompactString("utf-8")),
                    ("error_code", Int16),
                    ("error_message", CompactString("utf-8")),
                    ("tags", TaggedFields),
                ),
            ),
            ("tags", TaggedFields),
        )

    class AlterUserScramCredentialsRequest_v0(RequestStruct):
        FLEXIBLE_VERSION = True
        API_KEY = 51
        API_VERSION = 0
        RESPONSE_TYPE = AlterUserScramCredentialsResponse_v0
        SCHEMA = Schema(
            ("deletions", CompactArray(("name", CompactString("utf-8")), ("mechanism", Int8), ("tags", TaggedFields))),
            (
                "upsertions",
                CompactArray(
                    ("name", CompactString("utf-8")),
                    ("mechanism", Int8),
                    ("iterations", Int32),
                    ("salt", CompactBytes),
                    ("salted_password", CompactBytes),
                    ("tags", TaggedFields),
                ),
            ),
            ("tags", TaggedFields),
        )

    def fixed(struct: type) -> type:
        """A request of exactly one version, built from its fields as given."""

        class Fixed(Request[struct]):  # type: ignore[valid-type]
            API_KEY = struct.API_KEY

            def __init__(self, *fields: Any) -> None:
                self._fields = fields

            def build(self, request_struct_class: type) -> Any:
                return request_struct_class(*self._fields)

        return Fixed

    return {
        "describe_users": fixed(DescribeUserScramCredentialsRequest_v0),
        "alter_users": fixed(AlterUserScramCredentialsRequest_v0),
        "describe_acls": fixed(DescribeAclsRequest_v1),
        "create_acls": fixed(CreateAclsRequest_v1),
    }


class KafkaAccessError(RuntimeError):
    """Kafka refused a request of the access command; the message says which and why."""


def salted_password(password: str, salt: bytes, iterations: int = ITERATIONS) -> bytes:
    """SCRAM's SaltedPassword := Hi(password, salt, i), i.e. PBKDF2 with HMAC-SHA-512 (RFC 5802)."""
    return hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)


class AccessAdmin:
    """The four admin requests the access command needs, on an open aiokafka client (a superuser's)."""

    def __init__(self, settings: KafkaSettings) -> None:
        self.settings = settings
        self._client: Any = None
        self._requests = _protocol()

    async def __aenter__(self) -> AccessAdmin:
        from aiokafka.client import AIOKafkaClient

        from shared.kafka import client_options

        self._client = AIOKafkaClient(**client_options(self.settings), request_timeout_ms=15_000)
        try:
            await self._client.bootstrap()
        except BaseException:
            await self._client.close()
            raise
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._client.close()

    @property
    def nodes(self) -> list[int]:
        return sorted(broker.nodeId for broker in self._client.cluster.brokers())

    async def _send(self, request_class: type, *fields: Any, node: int | None = None) -> Any:
        request = request_class(*fields)
        return await self._client.send(self._client.get_random_node() if node is None else node, request)

    async def scram_users(self) -> set[str]:
        """Users that have a SCRAM-SHA-512 credential."""
        response = await self._send(self._requests["describe_users"], None, {})
        if response.error_code:
            raise KafkaAccessError(f"DescribeUserScramCredentials: {response.error_code} {response.error_message}")
        return {
            user
            for user, error, _, infos, _ in response.results
            if not error and any(mechanism == _SCRAM_SHA_512 for mechanism, _, _ in infos)
        }

    async def set_password(self, user: str, password: str) -> None:
        salt = secrets.token_bytes(32)
        upsert = (user, _SCRAM_SHA_512, ITERATIONS, salt, salted_password(password, salt), {})
        response = await self._send(self._requests["alter_users"], [], [upsert], {})
        for name, error, message, _ in response.results:
            if error:
                raise KafkaAccessError(f"could not set the SCRAM credential of {name}: error {error} {message}")

    async def acls(self, node: int | None = None) -> set[Acl]:
        """Every ALLOW ACL of the cluster (as ``node`` knows them) that this module can express."""
        any_ = 1  # ANY resource, pattern, operation and permission
        response = await self._send(
            self._requests["describe_acls"], any_, None, any_, None, None, any_, any_, node=node
        )
        if response.error_code:
            raise KafkaAccessError(f"DescribeAcls: error {response.error_code} {response.error_message}")
        resources = {v: k for k, v in _RESOURCE.items()}
        patterns = {v: k for k, v in _PATTERN.items()}
        operations = {v: k for k, v in _OPERATION.items()}
        found = set()
        for resource, name, pattern, entries in response.resources:
            for principal, host, operation, permission in entries:
                if (
                    host == "*"
                    and permission == _ALLOW
                    and resource in resources
                    and pattern in patterns
                    and operation in operations
                ):
                    found.add(Acl(principal, resources[resource], patterns[pattern], name, operations[operation]))
        return found

    async def create_acls(self, acls: Iterable[Acl]) -> None:
        acls = list(acls)
        creations = [
            (_RESOURCE[a.resource], a.name, _PATTERN[a.pattern], a.principal, "*", _OPERATION[a.operation], _ALLOW)
            for a in acls
        ]
        if not creations:
            return
        response = await self._send(self._requests["create_acls"], creations)
        refused = [
            (acl, error, message)
            for acl, (error, message) in zip(acls, response.creation_responses, strict=True)
            if error
        ]
        if refused:
            raise KafkaAccessError(f"could not create ACLs: {refused}")


async def authenticates(settings: KafkaSettings, user: str, password: str, node_hosts: Iterable[str] = ()) -> bool:
    """Whether ``user`` can sign in with ``password`` (on every given broker, or on the bootstrap servers)."""
    from aiokafka.client import AIOKafkaClient

    from shared.kafka import client_options

    options = client_options(settings.model_copy(update={"sasl_username": user, "sasl_password": _secret(password)}))
    for hosts in list(node_hosts) or [settings.bootstrap_servers]:
        client = AIOKafkaClient(**{**options, "bootstrap_servers": hosts}, request_timeout_ms=10_000)
        try:
            await client.bootstrap()
        except Exception:
            return False
        finally:
            await client.close()
    return True


def _secret(value: str) -> Any:
    from pydantic import SecretStr

    return SecretStr(value)


@dataclass
class Outcome:
    users_created: list[str]
    users_updated: list[str]
    users_existing: list[str]
    acls_created: list[Acl]
    acls_existing: list[Acl]

    @property
    def changed(self) -> bool:
        return bool(self.users_created or self.users_updated or self.acls_created)

    def lines(self) -> list[str]:
        out = [f"user {u}: created" for u in self.users_created]
        out += [f"user {u}: password set again (it no longer authenticated)" for u in self.users_updated]
        out += [f"acl {a}: created" for a in self.acls_created]
        users = len(self.users_created) + len(self.users_updated) + len(self.users_existing)
        out.append(
            f"kafka access: {users} users ({len(self.users_created)} created, {len(self.users_updated)} updated, "
            f"{len(self.users_existing)} already there), {len(self.acls_created) + len(self.acls_existing)} ACLs "
            f"({len(self.acls_created)} created, {len(self.acls_existing)} already there)"
        )
        return out


async def apply(
    settings: KafkaSettings,
    principals: list[Principal],
    passwords: Mapping[str, str],
    *,
    wait_s: float = 60.0,
) -> Outcome:
    """Create the missing users and ACLs (as the superuser of ``settings``), then wait until every broker knows
    them, so that the principals can work as soon as this returns. Idempotent."""
    deadline = time.monotonic() + wait_s
    while True:  # the cluster may still be starting
        try:
            async with AccessAdmin(settings) as admin:
                return await _apply(admin, settings, principals, passwords, deadline)
        except KafkaAccessError:
            raise
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(1.0)


async def _apply(
    admin: AccessAdmin,
    settings: KafkaSettings,
    principals: list[Principal],
    passwords: Mapping[str, str],
    deadline: float,
) -> Outcome:
    outcome = Outcome([], [], [], [], [])
    known = await admin.scram_users()
    for principal in principals:
        user, password = principal.user, passwords[principal.user]
        if user in known and await authenticates(settings, user, password):
            outcome.users_existing.append(user)
            continue
        await admin.set_password(user, password)
        (outcome.users_updated if user in known else outcome.users_created).append(user)
    wanted = sorted({acl for p in principals for acl in p.acls})
    existing = await admin.acls()
    outcome.acls_existing = [acl for acl in wanted if acl in existing]
    outcome.acls_created = [acl for acl in wanted if acl not in existing]
    await admin.create_acls(outcome.acls_created)

    hosts = [f"{b.host}:{b.port}" for b in admin._client.cluster.brokers()]
    changed_users = outcome.users_created + outcome.users_updated
    while True:  # credentials and ACLs reach every broker through the metadata log, a moment later
        pending = [u for u in changed_users if not await authenticates(settings, u, passwords[u], hosts)]
        for node in admin.nodes:
            if not set(wanted) <= await admin.acls(node):
                pending.append(f"ACLs on broker {node}")
        if not pending:
            return outcome
        if time.monotonic() > deadline:
            raise KafkaAccessError(f"not yet known on every broker: {pending}")
        await asyncio.sleep(0.2)


def service_groups(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Each service's ``<SERVICE>_GROUP_ID`` as the services read it (default: the service's name)."""
    environ = os.environ if environ is None else environ
    return {service: environ.get(f"{service.upper()}_GROUP_ID") or service for service in SERVICES}


def main(argv: list[str] | None = None) -> int:
    """``python -m shared.kafka_access [apply|plan]``: the services' and the subscribing organisations' SCRAM
    users and ACLs, from the catalogue (connect as a superuser: KAFKA_SASL_USERNAME / KAFKA_SASL_PASSWORD)."""
    import argparse
    import logging

    from shared.catalogue import load_catalogue
    from shared.settings import ServiceSettings

    parser = argparse.ArgumentParser(prog="python -m shared.kafka_access", description=main.__doc__)
    parser.add_argument("command", choices=["apply", "plan"], nargs="?", default="apply")
    parser.add_argument("--bootstrap", help="bootstrap servers (default KAFKA_BOOTSTRAP_SERVERS)")
    args = parser.parse_args(argv)
    settings = ServiceSettings()
    kafka = settings.kafka
    if args.bootstrap:
        kafka = kafka.model_copy(update={"bootstrap_servers": args.bootstrap})
    principals = plan(Topics(kafka.topic_prefix), load_catalogue(settings.catalogue_path), service_groups())
    if args.command == "plan":
        for principal in principals:
            print(f"{principal.user} (password: {principal.password_variable})")
            for acl in principal.acls:
                print(f"  {acl}")
        return 0
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # a refused sign-in is an answer here, not an error
    try:
        secrets_of = passwords(principals)
        outcome = asyncio.run(apply(kafka, principals, secrets_of))
    except (MissingPasswords, KafkaAccessError) as exc:
        print(f"kafka access: {exc}")
        return 1
    except Exception as exc:
        print(f"kafka access: Kafka at {kafka.bootstrap_servers} did not answer as a superuser: {exc!r}")
        return 1
    for line in outcome.lines():
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
