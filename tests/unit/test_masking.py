"""No e-mail address in a log line, a dead-letter header or a span attribute (issue 13, "minimal everywhere
else"): each is masked to its first letter and domain (``a***@kiruna.se``)."""

from __future__ import annotations

import io
import json
import logging
import smtplib
from types import SimpleNamespace

import pytest
from aiokafka import TopicPartition
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import BaseModel, ValidationError

from shared.deadletter import DeadLetters, PermanentError
from shared.logs import JsonFormatter, MaskEmails, configure_logging, log_context, masked
from shared.metrics import ServiceMetrics
from shared.tracing import MaskingSpanExporter

ADDRESS = "anna.svensson@kiruna.se"
OTHER = "Per.Niemi+ideer@tekniskaverken.se"


def test_masked_keeps_the_first_letter_and_the_domain_everywhere_in_a_value():
    assert masked(f"to {ADDRESS} and {OTHER}") == "to a***@kiruna.se and P***@tekniskaverken.se"
    assert masked(masked(ADDRESS)) == "a***@kiruna.se"  # masking twice changes nothing
    value = {"to": [ADDRESS, ("x", OTHER)], ADDRESS: 3, "n": 5, "b": ADDRESS.encode()}
    assert masked(value) == {
        "to": ["a***@kiruna.se", ("x", "P***@tekniskaverken.se")],
        "a***@kiruna.se": 3,
        "n": 5,
        "b": "a***@kiruna.se",
    }
    assert masked("no address here @ all") == "no address here @ all"
    assert masked(TopicPartition(f"t:{ADDRESS}", 1)) == TopicPartition("t:a***@kiruna.se", 1)  # named tuples too

    class Odd(list):
        def __init__(self, first, second) -> None:  # cannot be rebuilt from one iterable
            super().__init__([first, second])

    assert masked(Odd(ADDRESS, 1)) == "['a***@kiruna.se', 1]"
    assert masked(b"\x00\xffbytes") == b"\x00\xffbytes"  # bytes without an address stay bytes


def logged(logger_name: str, write) -> list[dict]:
    """What the services' logging (configure_logging) writes while ``write(logger)`` runs, as JSON lines."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    configure_logging("notifications")
    stream = io.StringIO()
    root.handlers[0].setStream(stream)
    try:
        write(logging.getLogger(logger_name))
    finally:
        root.handlers[:], _ = saved[0], root.setLevel(saved[1])
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_the_services_logging_masks_the_message_its_arguments_extra_fields_and_the_exception():
    def write(logger: logging.Logger) -> None:
        logger.warning("mail to %s refused", ADDRESS, extra={"recipient": ADDRESS, "all": [OTHER], "n": 1})
        try:
            raise smtplib.SMTPRecipientsRefused({ADDRESS: (550, b"5.1.1 <" + ADDRESS.encode() + b"> unknown")})
        except smtplib.SMTPException as exc:
            logger.exception("delivery failed", extra={"error": exc})
        with log_context(correlation_id=f"mail:{ADDRESS}"):
            logging.getLogger("aiosmtplib").error(f"connection lost while sending to {OTHER}")  # another library's

    lines = logged("notifications", write)
    text = json.dumps(lines)
    assert ADDRESS not in text and OTHER not in text and "anna.svensson" not in text
    first, second, third = lines
    assert first["message"] == "mail to a***@kiruna.se refused"
    assert first["recipient"] == "a***@kiruna.se" and first["all"] == ["P***@tekniskaverken.se"] and first["n"] == 1
    assert "a***@kiruna.se" in second["error"] and "a***@kiruna.se" in second["exception"]
    assert "SMTPRecipientsRefused" in second["exception"]  # the exception is still there, only masked
    assert third["message"] == "connection lost while sending to P***@tekniskaverken.se"
    assert third["correlation_id"] == "mail:a***@kiruna.se"


def test_the_formatter_masks_without_the_filter_and_the_filter_never_drops_a_record():
    record = logging.makeLogRecord({"msg": "hej %s", "args": (ADDRESS,), "levelname": "INFO", "who": ADDRESS})
    assert ADDRESS not in JsonFormatter("intake").format(record)
    broken = logging.makeLogRecord({"msg": "two %s %s", "args": (ADDRESS,)})  # arguments that do not fit
    assert MaskEmails().filter(broken) is True and ADDRESS not in str(broken.msg)


class Published:
    def __init__(self) -> None:
        self.records: list[dict] = []

    async def publish(self, value, *, topic, key, headers) -> None:
        self.records.append({"value": value, "topic": topic, "key": key, "headers": headers})


def dead_letters() -> tuple[DeadLetters, Published]:
    policy = DeadLetters(
        service="notifications",
        attempts=1,
        backoff_s=0,
        metrics=ServiceMetrics.create("notifications"),
        logger=logging.getLogger("test-deadletter"),
    )
    broker = Published()
    policy.bind(broker)  # type: ignore[arg-type]
    return policy, broker


async def test_dead_letter_headers_are_masked_and_the_value_stays_byte_for_byte(caplog):
    policy, broker = dead_letters()
    value = json.dumps({"person": ADDRESS}).encode()  # a .v1 record, say: kept as it is, for a replay
    record = SimpleNamespace(
        topic="ideas.engagement.v2",
        partition=1,
        offset=7,
        key=b"idea-1",
        value=value,
        headers=[("x-from", f"front end of {OTHER}".encode()), ("ce_id", b"e1")],
    )

    async def refused() -> None:
        raise PermanentError(f"no contact for {ADDRESS}")

    with caplog.at_level(logging.INFO, logger="test-deadletter"):
        assert await policy.handle(record, refused) is None
        await policy.dead_letter_value(
            "notifications.delivery", b"{}", None, smtplib.SMTPRecipientsRefused({ADDRESS: (550, b"no")})
        )
    first, second = broker.records
    assert first["value"] == value and first["topic"] == "ideas.engagement.v2.dlq" and first["key"] == b"idea-1"
    assert first["headers"]["x-dlq-error"] == "PermanentError: no contact for a***@kiruna.se"
    assert first["headers"]["x-from"] == "front end of P***@tekniskaverken.se"
    assert first["headers"]["ce_id"] == "e1" and first["headers"]["x-dlq-source-offset"] == "7"
    for published in broker.records:
        assert ADDRESS not in json.dumps(published["headers"]) and OTHER not in json.dumps(published["headers"])
    assert "a***@kiruna.se" in second["headers"]["x-dlq-error"]
    logged_text = " ".join(f"{r.getMessage()} {vars(r)}" for r in caplog.records)
    assert ADDRESS not in logged_text


async def test_a_long_error_is_masked_before_it_is_cut():
    policy, broker = dead_letters()
    long_error = "x" * 1990 + " " + ADDRESS  # cut at 2,000 characters, it would leave "anna.sv" in the clear

    async def failing() -> None:
        raise RuntimeError(long_error)

    record = SimpleNamespace(topic="t", partition=0, offset=0, key=None, value=b"", headers=None)
    await policy.handle(record, failing)
    header = broker.records[0]["headers"]["x-dlq-error"]
    assert len(header) <= 2000 and "anna" not in header


async def test_a_validation_error_names_the_field_and_no_address():
    policy, broker = dead_letters()

    class Person(BaseModel):
        age: int

    async def invalid() -> None:
        try:
            Person.model_validate({"age": ADDRESS})
        except ValidationError as exc:
            raise exc

    record = SimpleNamespace(topic="t", partition=0, offset=0, key=None, value=b"", headers=None)
    await policy.handle(record, invalid)
    headers = broker.records[0]["headers"]
    assert headers["x-dlq-reason"] == "malformed" and headers["x-dlq-error"].startswith("age:")
    assert ADDRESS not in json.dumps(headers)


@pytest.fixture
def exported():
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(MaskingSpanExporter(memory)))
    yield provider.get_tracer("test"), memory
    provider.shutdown()


def test_exported_spans_carry_no_address_in_attributes_events_or_status(exported):
    tracer, memory = exported
    with pytest.raises(RuntimeError), tracer.start_as_current_span("notifications.preferences.v2 process") as span:
        span.set_attribute("messaging.kafka.message.key", ADDRESS.encode())
        span.set_attribute("messaging.destination.name", "notifications.preferences.v2")
        span.set_attribute("recipients", [ADDRESS, OTHER])
        span.add_event("mail", {"to": ADDRESS})
        raise RuntimeError(f"SMTP refused {ADDRESS}")
    [span] = memory.get_finished_spans()
    assert span.attributes["messaging.kafka.message.key"] == "a***@kiruna.se"
    assert span.attributes["messaging.destination.name"] == "notifications.preferences.v2"
    assert tuple(span.attributes["recipients"]) == ("a***@kiruna.se", "P***@tekniskaverken.se")
    events = {event.name: dict(event.attributes) for event in span.events}
    assert events["mail"] == {"to": "a***@kiruna.se"}
    assert "a***@kiruna.se" in events["exception"]["exception.message"]
    assert span.status.status_code == trace.StatusCode.ERROR and ADDRESS not in (span.status.description or "")
    assert ADDRESS not in str(span.to_json()) and OTHER not in str(span.to_json())
    assert span.context.trace_id and span.name == "notifications.preferences.v2 process"  # the rest as it was
