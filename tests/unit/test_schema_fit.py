"""Values that do not fit the contract are refused at emit, naming the field;
events of a newer contract still decode."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

import evolved
import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient
from factories import booking_created

from schemas import (
    EventDeserializer,
    EventEncodeError,
    EventSerializer,
    EventType,
    GuestCheckedOut,
    UnlistedEvent,
    fit,
)
from schemas.fit import misfits

AT = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def registry() -> SchemaRegistryClient:
    return SchemaRegistryClient.new_client({"url": f"mock://{uuid.uuid4()}"})


def checkout(total: Decimal) -> GuestCheckedOut:
    return GuestCheckedOut(
        booking_id="B-1",
        seq=5,
        occurred_at=AT,
        nights=1,
        total_amount=total,
        currency="EUR",
    )


@pytest.mark.parametrize(
    ("total", "message"),
    [
        (Decimal("10.005"), "10.005 has 3 decimal places, decimal(12,2) allows 2"),
        (Decimal("12345678901.00"), "has 11 digits before the point, decimal(12,2)"),
        (Decimal("NaN"), "is not a finite number"),
    ],
)
def test_a_decimal_that_does_not_fit_is_refused_not_rounded(
    registry: SchemaRegistryClient, total: Decimal, message: str
) -> None:
    serializer = EventSerializer(registry, auto_register=True)

    with pytest.raises(EventEncodeError) as info:
        serializer.serialize(checkout(total), "raw")

    assert "payload<GuestCheckedOut>.total_amount" in str(info.value)
    assert message in str(info.value)
    assert registry.get_subjects() == []  # refused before the registry was asked


def test_the_largest_decimal_that_fits_passes(registry: SchemaRegistryClient) -> None:
    serializer = EventSerializer(registry, auto_register=True)

    data = serializer.serialize(checkout(Decimal("9999999999.99")), "raw")

    event = EventDeserializer(registry).event(data, "raw")
    assert isinstance(event, GuestCheckedOut)
    assert event.total_amount == Decimal("9999999999.99")


def test_a_null_for_a_field_that_is_not_nullable_is_refused_by_name(
    registry: SchemaRegistryClient,
) -> None:
    event = booking_created(hotel=None)

    with pytest.raises(EventEncodeError) as info:
        EventSerializer(registry, auto_register=True).serialize(event, "raw")

    assert "field payload<BookingCreated>.hotel is null" in str(info.value)
    assert info.value.event_id == str(event.event_id)


def test_an_int_out_of_range_is_refused(registry: SchemaRegistryClient) -> None:
    with pytest.raises(EventEncodeError, match=r"adults: 4294967296 is outside"):
        EventSerializer(registry, auto_register=True).serialize(
            booking_created(adults=2**32), "raw"
        )


def test_nested_values_are_checked_by_path() -> None:
    record = evolved.record(
        checkout(Decimal("1.00")),
        minibar={"water": Decimal("2.505")},
        charges=[{"label": None, "amount": Decimal("1.00"), "at": AT}],
    )

    problems = misfits(evolved.rich(), record)

    assert problems == [
        "field payload<GuestCheckedOut>.minibar['water']: 2.505 has 3 decimal"
        " places, decimal(12,2) allows 2; refused, not rounded",
        "field payload<GuestCheckedOut>.charges[0].label is null, but its type"
        " (string) is not",
    ]


def test_an_event_of_a_newer_type_decodes_as_unlisted(
    registry: SchemaRegistryClient,
) -> None:
    newer = EventSerializer(
        registry, auto_register=True, schema_str=evolved.text(evolved.v3())
    )
    written = evolved.no_show(
        booking_created(seq=2),
        noted_at=AT,
        no_show_fee=Decimal("80.00"),
        currency="EUR",
    )

    event = EventDeserializer(registry).event(newer.serialize(written, "raw"), "raw")

    assert isinstance(event, UnlistedEvent)
    assert event.event_type.value == "GUEST_NO_SHOW"
    assert event.event_type not in list(EventType)
    assert (event.booking_id, event.seq) == ("B1", 2)
    assert event.fields["no_show_fee"] == Decimal("80.00")


def test_a_newer_writers_known_event_is_resolved_to_the_contract(
    registry: SchemaRegistryClient,
) -> None:
    newer = EventSerializer(
        registry, auto_register=True, schema_str=evolved.text(evolved.v3())
    )
    data = newer.serialize(
        evolved.record(booking_created(), loyalty_tier="gold"), "raw"
    )

    resolved = EventDeserializer(registry).record(data, "raw")
    as_written = EventDeserializer(registry, resolve=False).record(data, "raw")

    assert "loyalty_tier" not in resolved["payload"][1]
    assert as_written["payload"][1]["loyalty_tier"] == "gold"


def test_a_payload_is_checked_against_its_own_record_not_a_namesake() -> None:
    schema = evolved.contract()
    payload = next(f for f in schema["fields"] if f["name"] == "payload")
    lenient = {"type": "record", "name": "OldGuestCheckedOut", "fields": []}
    payload["type"].insert(0, lenient)
    record = checkout(Decimal("10.005")).to_avro()

    problems = misfits(schema, record)

    assert problems and "payload<GuestCheckedOut>.total_amount" in problems[0]


def test_the_serializer_walks_the_schema_for_names_once_not_per_event(
    registry: SchemaRegistryClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    walks: list[object] = []
    collect = fit._collect
    monkeypatch.setattr(fit, "_collect", lambda *a: walks.append(a) or collect(*a))
    serializer = EventSerializer(registry, auto_register=True)
    walks.clear()

    for seq in range(1, 4):
        serializer.serialize(booking_created(seq=seq), "raw")

    assert walks == []
