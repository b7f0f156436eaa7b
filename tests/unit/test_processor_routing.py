"""Routing decisions, output headers and broker options of the processor."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal

import faust
import pytest
from factories import booking_created
from pydantic import SecretStr

from booking_events.exceptions import ConfigurationError
from booking_events.settings import KafkaSettings, TopicSettings
from processors.app import EventRouter
from processors.broker import broker_credentials, broker_urls
from processors.config import ProcessorSettings
from processors.ordering import BookingState
from processors.routing import (
    Outcome,
    SourceRecord,
    dead_letter_headers,
    fit_dead_letter,
    judge,
    record_size,
    validated_headers,
)
from processors.rules import Violation
from schemas import BookingCreated, UnknownSchemaError
from schemas.exceptions import RegistryUnavailableError


def created() -> BookingCreated:
    return booking_created(
        occurred_at=datetime(2026, 3, 1, tzinfo=UTC),
        hotel="City Hotel",
        departure_date=date(2026, 7, 2),
        adults=1,
        meal_plan="no_meal_package",
        average_daily_rate=Decimal("90.00"),
        lead_time_days=3,
    )


SOURCE = SourceRecord(
    topic="raw", partition=3, offset=41, key=b"B1", value=b"\x00abc", headers=()
)


def test_valid_first_event_is_validated_with_new_state() -> None:
    verdict = judge(SOURCE, created(), BookingState())
    assert verdict.valid
    assert verdict.state is not None and verdict.state.last_seq == 1


def test_a_repeat_is_dropped_and_a_conflict_dead_lettered() -> None:
    event = created()
    state = judge(SOURCE, event, BookingState()).state
    assert state is not None

    repeat = judge(SOURCE, event, state)
    assert repeat.outcome is Outcome.DROPPED
    assert not repeat.valid and repeat.state is None and not repeat.violations

    conflict = dataclasses.replace(event, event_id=uuid.uuid4())
    verdict = judge(SOURCE, conflict, state)
    assert verdict.outcome is Outcome.DEAD_LETTERED
    assert [v.code for v in verdict.violations] == ["seq_not_increasing"]


def test_a_dead_letter_value_too_large_is_cut_and_marked() -> None:
    headers = [("dlq.reason", b"oversized")]
    value = bytes(range(256)) * 40

    same, kept = fit_dead_letter(value, headers, b"B1", limit=100_000)
    assert same is value and kept == headers

    cut, marked = fit_dead_letter(value, headers, b"B1", limit=2_000)
    assert cut is not None and value.startswith(cut) and 0 < len(cut) < 2_000
    assert dict(marked)["dlq.value_truncated"] == b"true"
    assert dict(marked)["dlq.value_size"] == str(len(value)).encode()
    assert record_size(b"B1", cut, marked) <= 2_000


def test_key_must_be_the_booking_id() -> None:
    source = SourceRecord(topic="raw", partition=0, offset=0, key=b"B2", value=b"")
    verdict = judge(source, created(), BookingState())
    assert not verdict.valid
    assert [v.code for v in verdict.violations] == ["key_mismatch"]


def test_stateless_violation_skips_the_history() -> None:
    event = dataclasses.replace(created(), departure_date=date(2026, 7, 1))
    verdict = judge(SOURCE, event, BookingState())
    assert [v.code for v in verdict.violations] == ["departure_not_after_arrival"]
    assert verdict.state is None


def test_validated_headers_add_event_id_and_type() -> None:
    event = created()
    source = SourceRecord(
        topic="raw",
        partition=0,
        offset=0,
        key=b"B1",
        value=b"",
        headers=(("trace", b"t1"), ("event_id", b"stale")),
    )
    assert validated_headers(source, event) == [
        ("trace", b"t1"),
        ("event_id", str(event.event_id).encode()),
        ("event_type", b"BOOKING_CREATED"),
    ]


def test_dead_letter_headers_carry_reason_and_coordinates() -> None:
    at = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    headers = dict(
        dead_letter_headers(
            SOURCE,
            [Violation("seq_gap", "seq is 3"), Violation("x", "second")],
            processor="proc",
            event_id="e-1",
            failed_at=at,
        )
    )
    assert headers == {
        "dlq.reason": b"seq_gap",
        "dlq.detail": b"seq is 3; second",
        "dlq.source.topic": b"raw",
        "dlq.source.partition": b"3",
        "dlq.source.offset": b"41",
        "dlq.processor": b"proc",
        "dlq.failed_at": b"2026-03-01T12:00:00.000+00:00",
        "dlq.event_id": b"e-1",
    }
    no_id = dict(
        dead_letter_headers(SOURCE, [Violation("malformed", "x")], processor="p")
    )
    assert "dlq.event_id" not in no_id


def test_broker_urls_and_plaintext() -> None:
    kafka = KafkaSettings(bootstrap_servers="h1:9092, h2:9093")
    assert broker_urls(kafka) == ["kafka://h1:9092", "kafka://h2:9093"]
    assert broker_credentials(kafka) is None


def test_sasl_ssl_maps_to_sasl_credentials_with_tls() -> None:
    kafka = KafkaSettings(
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="user",
        sasl_password=SecretStr("secret"),
    )
    credentials = broker_credentials(kafka)
    assert isinstance(credentials, faust.SASLCredentials)
    assert credentials.protocol.value == "SASL_SSL"
    assert credentials.mechanism.value == "SCRAM-SHA-512"
    assert credentials.ssl_context is not None
    assert "secret" not in repr(credentials)


def test_sasl_without_password_is_a_configuration_error() -> None:
    kafka = KafkaSettings(security_protocol="SASL_PLAINTEXT", sasl_username="u")
    with pytest.raises(ConfigurationError, match="SASL_PASSWORD"):
        broker_credentials(kafka)


class FlakyDeserializer:
    """Raises RegistryUnavailableError ``failures`` times, then decodes."""

    def __init__(self, failures: int, result: object) -> None:
        self.failures = failures
        self.result = result
        self.calls = 0

    def event(self, data: bytes | None, topic: str) -> object:
        self.calls += 1
        if self.calls <= self.failures:
            raise RegistryUnavailableError("registry down")
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


def make_router(deserializer: FlakyDeserializer) -> EventRouter:
    settings = ProcessorSettings(registry_retry_initial_ms=1, registry_retry_max_ms=2)
    return EventRouter(
        None,  # type: ignore[arg-type]
        {},
        deserializer,  # type: ignore[arg-type]
        settings,
        TopicSettings(),
    )


def test_decode_retries_while_the_registry_is_unavailable() -> None:
    event = created()
    deserializer = FlakyDeserializer(3, event)
    assert asyncio.run(make_router(deserializer).decode(SOURCE)) is event
    assert deserializer.calls == 4


def test_decode_returns_bad_bytes_as_an_error_for_the_dead_letter_topic() -> None:
    error = UnknownSchemaError("schema id 99 is not in the registry")
    decoded = asyncio.run(make_router(FlakyDeserializer(1, error)).decode(SOURCE))
    assert decoded is error
    assert decoded.reason == "unknown_schema"


class FakeTable:
    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}


def test_a_record_is_known_processed_by_its_booking_or_partition_offset() -> None:
    from processors.router import offset_key

    table = FakeTable()
    router = EventRouter(
        None,  # type: ignore[arg-type]
        table,
        FlakyDeserializer(0, None),  # type: ignore[arg-type]
        ProcessorSettings(),
        TopicSettings(),
    )
    event = created()
    at = dataclasses.replace
    outputs, state = router.plan(SOURCE, event)
    assert [o.topic for o in outputs] == [TopicSettings().validated]
    assert state is not None
    table.data[state[0]] = state[1]

    # Stamped with partition 3 offset 41: that record and earlier ones of
    # partition 3 were processed, later ones and other partitions' not.
    assert router._processed(SOURCE, event)
    assert router._processed(at(SOURCE, offset=40), event)
    assert not router._processed(at(SOURCE, offset=42), event)
    assert not router._processed(at(SOURCE, partition=2), event)

    # Records that change no booking are covered by the partition's offset.
    error = UnknownSchemaError("schema id 7 is not in the registry")
    assert not router._processed(at(SOURCE, offset=50), error)
    table.data[offset_key(3)] = b"50"
    assert router._processed(at(SOURCE, offset=50), error)
    assert router._processed(at(SOURCE, offset=45), event)


def test_an_output_too_large_for_the_validated_topic_is_dead_lettered() -> None:
    router = EventRouter(
        None,  # type: ignore[arg-type]
        FakeTable(),
        FlakyDeserializer(0, None),  # type: ignore[arg-type]
        ProcessorSettings(),
        TopicSettings(),
    )
    router.set_limits({TopicSettings().validated: 150}, max_request_bytes=10**6)
    source = dataclasses.replace(SOURCE, value=b"\x00" * 100)
    outputs, state = router.plan(source, created())
    assert state is None
    [output] = outputs
    assert output.topic == TopicSettings().dead_letter
    assert dict(output.headers or [])["dlq.reason"] == b"oversized"
    assert output.value == source.value
