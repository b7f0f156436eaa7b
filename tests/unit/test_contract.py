"""The event contract: .avsc files, typed events and the wire format."""

from __future__ import annotations

import dataclasses
import json
import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from importlib import resources

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient

from schemas import (
    EVENT_SCHEMA,
    PAYLOAD_SCHEMAS,
    PAYLOAD_TYPES,
    BookingCancelled,
    BookingCreated,
    BookingEvent,
    BookingModified,
    EventDecodeError,
    EventDeserializer,
    EventEncodeError,
    EventSerializer,
    EventType,
    GuestCheckedIn,
    GuestCheckedOut,
    RoomAssigned,
    UnknownSchemaError,
)
from schemas.events import ENVELOPE_FIELDS

AT = datetime(2017, 3, 4, 15, 0, 0, 123000, tzinfo=UTC)
TERMS = {
    "arrival_date": date(2017, 3, 4),
    "departure_date": date(2017, 3, 8),
    "adults": 2,
    "children": 1,
    "babies": 0,
    "meal_plan": "bed_and_breakfast",
    "reserved_room_type": "A",
    "average_daily_rate": Decimal("104.95"),
    "currency": "EUR",
}


def one_of_each() -> list[BookingEvent]:
    env = {"booking_id": "B-1", "occurred_at": AT, "source": "test"}
    return [
        BookingCreated(
            **env,
            seq=1,
            **TERMS,
            hotel="Resort Hotel",
            country="PRT",
            market_segment="direct",
            distribution_channel="direct",
            customer_type="transient",
            agent=None,
            company="acme",
            is_repeated_guest=True,
            previous_cancellations=0,
            previous_bookings_not_canceled=3,
            lead_time_days=30,
            days_in_waiting_list=0,
            required_car_parking_spaces=1,
            total_of_special_requests=2,
        ),
        BookingModified(**env, seq=2, **TERMS, change_number=1),
        RoomAssigned(**env, seq=3, room_type="C", reserved_room_type="A"),
        GuestCheckedIn(**env, seq=4, room_type="C", adults=2, children=1, babies=0),
        GuestCheckedOut(
            **env, seq=5, nights=4, total_amount=Decimal("419.80"), currency="EUR"
        ),
        BookingCancelled(
            **env, seq=6, cancellation_fee=Decimal("0.00"), currency="EUR", reason=None
        ),
    ]


@pytest.fixture
def registry() -> SchemaRegistryClient:
    return SchemaRegistryClient.new_client({"url": f"mock://{uuid.uuid4()}"})


def test_every_field_and_record_is_documented() -> None:
    def walk(schema: dict) -> None:
        assert schema.get("doc"), f"record {schema['name']} has no doc"
        for field in schema["fields"]:
            assert field.get("doc"), f"{schema['name']}.{field['name']} has no doc"

    schema = json.loads(EVENT_SCHEMA)
    walk(schema)
    for payload in PAYLOAD_SCHEMAS.values():
        walk(payload)


def test_avsc_files_are_the_registered_schema() -> None:
    files = {
        p.name
        for p in resources.files("schemas").joinpath("avro").iterdir()
        if p.name.endswith(".avsc")
    }
    assert files == {"BookingEvent.avsc"} | {f"{n}.avsc" for n in PAYLOAD_SCHEMAS}


def test_typed_events_mirror_the_avro_payloads() -> None:
    assert {t.avro_name for t in PAYLOAD_TYPES.values()} == set(PAYLOAD_SCHEMAS)
    for cls in PAYLOAD_TYPES.values():
        fields = {f.name for f in dataclasses.fields(cls)} - set(ENVELOPE_FIELDS)
        avro = {f["name"] for f in PAYLOAD_SCHEMAS[cls.avro_name]["fields"]}
        assert fields == avro, cls.__name__


def test_event_type_enum_matches_avro() -> None:
    envelope = json.loads(EVENT_SCHEMA)
    field = next(f for f in envelope["fields"] if f["name"] == "event_type")
    assert field["type"]["symbols"] == [t.value for t in EventType]


def test_a_field_name_has_one_type_across_payloads() -> None:
    seen: dict[str, object] = {}
    for payload in PAYLOAD_SCHEMAS.values():
        for field in payload["fields"]:
            first = seen.setdefault(field["name"], field["type"])
            assert first == field["type"], field["name"]


@pytest.mark.parametrize("event", one_of_each(), ids=lambda e: e.event_type.value)
def test_round_trip_through_the_wire_format(
    event: BookingEvent, registry: SchemaRegistryClient
) -> None:
    data = EventSerializer(registry, auto_register=True).serialize(event, "raw")

    assert data[0] == 0  # Confluent magic byte, then a 4-byte schema id
    decoded = EventDeserializer(registry).event(data, "raw")
    assert decoded == event
    assert decoded.occurred_at.tzinfo is not None


def test_non_utc_times_are_stored_as_the_same_instant(
    registry: SchemaRegistryClient,
) -> None:
    lisbon_summer = timezone(timedelta(hours=1))
    event = GuestCheckedIn(
        booking_id="B-2",
        seq=1,
        occurred_at=datetime(2017, 7, 1, 16, 0, tzinfo=lisbon_summer),
        room_type="A",
        adults=1,
        children=0,
        babies=0,
    )
    data = EventSerializer(registry, auto_register=True).serialize(event, "raw")

    decoded = EventDeserializer(registry).event(data, "raw")
    assert decoded.occurred_at == datetime(2017, 7, 1, 15, 0, tzinfo=UTC)


def test_microseconds_are_cut_where_the_event_is_built(
    registry: SchemaRegistryClient,
) -> None:
    at = datetime(2017, 7, 1, 15, 0, 0, 123_987, tzinfo=UTC)
    event = GuestCheckedIn(
        booking_id="B-3",
        seq=1,
        occurred_at=at,
        room_type="A",
        adults=1,
        children=0,
        babies=0,
    )
    assert event.occurred_at == at.replace(microsecond=123_000)

    data = EventSerializer(registry, auto_register=True).serialize(event, "raw")
    assert EventDeserializer(registry).event(data, "raw") == event


def test_naive_datetime_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        RoomAssigned(
            booking_id="B-1",
            seq=1,
            occurred_at=datetime(2017, 1, 1),  # noqa: DTZ001 - the point of the test
            room_type="C",
            reserved_room_type="A",
        )


def test_seq_starts_at_one() -> None:
    with pytest.raises(ValueError, match="seq"):
        RoomAssigned(
            booking_id="B-1",
            seq=0,
            occurred_at=AT,
            room_type="C",
            reserved_room_type="A",
        )


def test_decimal_beyond_the_scale_is_refused_not_rounded(
    registry: SchemaRegistryClient,
) -> None:
    event = GuestCheckedOut(
        booking_id="B-1",
        seq=5,
        occurred_at=AT,
        nights=1,
        total_amount=Decimal("10.005"),
        currency="EUR",
    )
    with pytest.raises(EventEncodeError) as info:
        EventSerializer(registry, auto_register=True).serialize(event, "raw")
    assert info.value.event_id == str(event.event_id)


def test_bytes_not_in_wire_format_are_malformed(registry: SchemaRegistryClient) -> None:
    with pytest.raises(EventDecodeError) as info:
        EventDeserializer(registry).event(b"not an event", "raw")
    assert info.value.reason == "malformed"


def test_unknown_schema_id_is_named(registry: SchemaRegistryClient) -> None:
    with pytest.raises(UnknownSchemaError, match="schema id 4242") as info:
        EventDeserializer(registry).event(b"\x00\x00\x00\x10\x92\x02\x02", "raw")
    assert info.value.reason == "unknown_schema"


def test_truncated_body_is_malformed(registry: SchemaRegistryClient) -> None:
    data = EventSerializer(registry, auto_register=True).serialize(
        one_of_each()[0], "raw"
    )
    with pytest.raises(EventDecodeError) as info:
        EventDeserializer(registry).event(data[:20], "raw")
    assert info.value.reason == "malformed"
