"""Compatibility governance against the real registry (Apicurio, ccompat API)."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from click.testing import CliRunner
from confluent_kafka import Consumer, TopicPartition

from booking_events import schema_registry
from booking_events.cli.main import main
from booking_events.settings import KafkaSettings, RegistrySettings, TopicSettings
from producers import BookingEventProducer, ProducerSettings
from schemas import EVENT_SCHEMA, EventEncodeError, GuestCheckedOut

pytestmark = pytest.mark.integration


def variant(change: str) -> str:
    """The working tree's schema with one incompatible change."""
    schema: dict[str, Any] = copy.deepcopy(json.loads(EVENT_SCHEMA))
    fields = schema["fields"]
    if change == "required_field":
        fields.append({"name": "tenant", "type": "string"})
    elif change == "type_changed":
        next(f for f in fields if f["name"] == "seq")["type"] = "string"
    return json.dumps(schema)


def checkout() -> GuestCheckedOut:
    return GuestCheckedOut(
        booking_id="B-1042",
        seq=5,
        occurred_at=datetime.now(UTC),
        nights=3,
        total_amount=Decimal("389.70"),
        currency="EUR",
    )


def test_register_is_idempotent_and_sets_the_level(
    topics: TopicSettings, registry_settings: RegistrySettings
) -> None:
    registry = schema_registry.client(registry_settings)
    subjects = schema_registry.subjects(topics)

    first = schema_registry.register(registry, EVENT_SCHEMA, subjects)
    again = schema_registry.register(registry, EVENT_SCHEMA, subjects)

    assert [r.schema_id for r in first] == [r.schema_id for r in again]
    for subject in subjects:
        assert registry.get_compatibility(subject) == "BACKWARD"
        assert registry.get_versions(subject) == [1]


def test_register_with_another_level(
    topics: TopicSettings, registry_settings: RegistrySettings
) -> None:
    result = CliRunner().invoke(
        main, ["schemas", "register", "--compatibility", "full"]
    )

    assert result.exit_code == 0, result.output
    registry = schema_registry.client(registry_settings)
    for subject in schema_registry.subjects(topics):
        assert registry.get_compatibility(subject) == "FULL"


def test_check_passes_before_and_after_registration(topics: TopicSettings) -> None:
    runner = CliRunner()

    before = runner.invoke(main, ["schemas", "check"])
    assert before.exit_code == 0, before.output
    assert f"{topics.raw}-value\tnot registered yet" in before.output

    assert runner.invoke(main, ["schemas", "register"]).exit_code == 0
    after = runner.invoke(main, ["schemas", "check"])
    assert after.exit_code == 0, after.output
    assert "level=BACKWARD\tcompatible" in after.output


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ("required_field", "field tenant: added without a default"),
        ("type_changed", "field seq: type changed from long to string"),
    ],
)
def test_check_fails_on_an_incompatible_schema_naming_the_field(
    topics: TopicSettings,
    registry_settings: RegistrySettings,
    change: str,
    expected: str,
) -> None:
    registry = schema_registry.client(registry_settings)
    schema_registry.register(registry, EVENT_SCHEMA, schema_registry.subjects(topics))

    result = schema_registry.check(registry, variant(change), f"{topics.raw}-value")

    assert not result.compatible
    assert result.level == "BACKWARD"
    assert any(expected in problem for problem in result.problems), result.problems


def test_check_command_exits_1_on_an_incompatible_schema(
    topics: TopicSettings,
    registry_settings: RegistrySettings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    registry = schema_registry.client(registry_settings)
    schema_registry.register(registry, EVENT_SCHEMA, schema_registry.subjects(topics))
    monkeypatch.setattr("schemas.EVENT_SCHEMA", variant("required_field"))

    result = CliRunner().invoke(main, ["schemas", "check"])

    assert result.exit_code == 1, result.output
    assert "INCOMPATIBLE" in result.output
    assert "field tenant: added without a default" in result.output


def test_check_fails_when_the_subject_accepts_anything(
    topics: TopicSettings, registry_settings: RegistrySettings
) -> None:
    registry = schema_registry.client(registry_settings)
    schema_registry.register(
        registry, EVENT_SCHEMA, schema_registry.subjects(topics), "NONE"
    )

    result = schema_registry.check(registry, EVENT_SCHEMA, f"{topics.raw}-value")

    assert not result.compatible
    assert "compatibility level is NONE" in result.problems[0]


def end_offsets(topic: str) -> int:
    consumer = Consumer({**KafkaSettings().librdkafka(), "group.id": "offsets"})
    try:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        return sum(
            consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in meta.partitions
        )
    finally:
        consumer.close()


def test_production_producer_refuses_an_unregistered_schema(
    topics: TopicSettings, registry_settings: RegistrySettings
) -> None:
    settings = ProducerSettings(auto_register_schema=False)
    with BookingEventProducer(
        settings=settings, topics=topics, handle_sigterm=False
    ) as producer:
        with pytest.raises(EventEncodeError) as refused:
            producer.emit(checkout())
    assert f"'{topics.raw}-value'" in str(refused.value)
    assert "schemas register" in str(refused.value)
    assert end_offsets(topics.raw) == 0
    registry = schema_registry.client(registry_settings)
    assert registry.get_subjects().count(f"{topics.raw}-value") == 0

    schema_registry.register(registry, EVENT_SCHEMA, schema_registry.subjects(topics))
    with BookingEventProducer(
        settings=settings, topics=topics, handle_sigterm=False
    ) as producer:
        producer.emit(checkout())
    assert end_offsets(topics.raw) == 1


def test_production_producer_refuses_a_schema_other_than_the_registered(
    topics: TopicSettings, registry_settings: RegistrySettings
) -> None:
    registry = schema_registry.client(registry_settings)
    other = json.loads(EVENT_SCHEMA)
    other["fields"].append({"name": "tenant", "type": "string", "default": ""})
    schema_registry.register(
        registry, json.dumps(other), schema_registry.subjects(topics)
    )

    settings = ProducerSettings(auto_register_schema=False)
    with BookingEventProducer(
        settings=settings, topics=topics, handle_sigterm=False
    ) as producer:
        with pytest.raises(EventEncodeError, match="schema not registered"):
            producer.emit(checkout())
    assert end_offsets(topics.raw) == 0
