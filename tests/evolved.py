"""Test-only evolutions of the event contract, and records written with them.

* :func:`v2`: ``BookingCreated`` gains ``loyalty_tier`` (string, default
  ``"standard"``): a new optional field with a default.
* :func:`v3`: v2 plus the event type ``GUEST_NO_SHOW`` (a new enum symbol) and
  its payload record ``GuestNoShow``, with a ``timestamp-micros`` field.
* :func:`rich`: ``GuestCheckedOut`` gains an array, a map, a nested record
  (nullable), an array of records, a uuid and a fixed: the types the real
  contract does not use yet, for the type-fidelity tests.

Records are in fastavro's shape, built from the contract's typed events so
that the envelope is always valid.
"""

from __future__ import annotations

import copy
import json
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from factories import booking_created

from schemas import BookingEvent, load_event_schema

DECIMAL = {"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 2}
MICROS = {"type": "long", "logicalType": "timestamp-micros"}


def contract() -> dict[str, Any]:
    """A copy of the contract's schema (v1)."""
    return copy.deepcopy(load_event_schema())


def _record(schema: dict[str, Any], name: str) -> dict[str, Any]:
    payload = next(f for f in schema["fields"] if f["name"] == "payload")
    record: dict[str, Any] = next(r for r in payload["type"] if r["name"] == name)
    return record


def v2() -> dict[str, Any]:
    schema = contract()
    _record(schema, "BookingCreated")["fields"].append(
        {
            "name": "loyalty_tier",
            "type": "string",
            "default": "standard",
            "doc": "Guest's loyalty programme tier when booking.",
        }
    )
    return schema


def v3() -> dict[str, Any]:
    schema = v2()
    event_type = next(f for f in schema["fields"] if f["name"] == "event_type")
    event_type["type"]["symbols"].append("GUEST_NO_SHOW")
    payload = next(f for f in schema["fields"] if f["name"] == "payload")
    payload["type"].append(
        {
            "type": "record",
            "name": "GuestNoShow",
            "namespace": "booking_events",
            "doc": "The guest did not arrive on the arrival date.",
            "fields": [
                {"name": "noted_at", "type": MICROS, "doc": "When noticed."},
                {
                    "name": "no_show_fee",
                    "type": ["null", DECIMAL],
                    "default": None,
                    "doc": "Fee charged, in currency.",
                },
                {"name": "currency", "type": "string", "doc": "ISO 4217 code."},
            ],
        }
    )
    return schema


def rich() -> dict[str, Any]:
    schema = contract()
    guest = {
        "type": "record",
        "name": "Guest",
        "namespace": "booking_events",
        "fields": [
            {"name": "name", "type": "string"},
            {"name": "born", "type": {"type": "int", "logicalType": "date"}},
            {"name": "vip", "type": "boolean"},
            {"name": "nickname", "type": ["null", "string"], "default": None},
        ],
    }
    charge = {
        "type": "record",
        "name": "Charge",
        "namespace": "booking_events",
        "fields": [
            {"name": "label", "type": "string"},
            {"name": "amount", "type": DECIMAL},
            {"name": "at", "type": MICROS},
        ],
    }
    _record(schema, "GuestCheckedOut")["fields"].extend(
        [
            {
                "name": "extras",
                "type": {"type": "array", "items": "string"},
                "default": [],
            },
            {
                "name": "minibar",
                "type": {"type": "map", "values": DECIMAL},
                "default": {},
            },
            {"name": "guest", "type": ["null", guest], "default": None},
            {
                "name": "charges",
                "type": {"type": "array", "items": charge},
                "default": [],
            },
            {
                "name": "invoice_id",
                "type": ["null", {"type": "string", "logicalType": "uuid"}],
                "default": None,
            },
            {"name": "checked_out_at", "type": ["null", MICROS], "default": None},
        ]
    )
    return schema


def text(schema: dict[str, Any]) -> str:
    """The schema as registry text."""
    return json.dumps(schema, separators=(",", ":"))


def record(event: BookingEvent, **extra: Any) -> dict[str, Any]:
    """``event`` in fastavro's shape with ``extra`` payload fields."""
    written = event.to_avro()
    name, fields = written["payload"]
    written["payload"] = (name, {**fields, **extra})
    return written


def no_show(event: BookingEvent, **fields: Any) -> dict[str, Any]:
    """A GUEST_NO_SHOW record with ``event``'s envelope."""
    written = event.to_avro()
    written["event_type"] = "GUEST_NO_SHOW"
    written["payload"] = ("booking_events.GuestNoShow", fields)
    return written


# --- type fidelity: one event of each kind, values at the edges ---------------

FIDELITY_AT = datetime(2024, 3, 10, 6, 59, 59, 999000, tzinfo=UTC)
"""Hours before the US daylight-saving switch: a zone shift would show."""


def fidelity_events() -> list[tuple[BookingEvent, dict[str, Any]]]:
    """Events for the round-trip test, each with its extra ``rich`` fields."""
    from schemas import GuestCheckedOut

    created = booking_created(
        booking_id="F-1",
        occurred_at=FIDELITY_AT,
        arrival_date=date(1900, 1, 1),
        departure_date=date(2299, 12, 31),
        average_daily_rate=Decimal("-0.01"),
        country="PRT",
        agent=None,
        company="ACME Ltd.",
        is_repeated_guest=True,
        adults=2**31 - 1,
        event_id=uuid.UUID("00000000-0000-4000-8000-000000000001"),
    )
    checkout = GuestCheckedOut(
        booking_id="F-1",
        seq=2,
        occurred_at=datetime(2024, 3, 10, 7, 0, 0, 1000, tzinfo=UTC),
        nights=3,
        total_amount=Decimal("9999999999.99"),
        currency="EUR",
        event_id=uuid.UUID("00000000-0000-4000-8000-000000000002"),
    )
    rich_fields: dict[str, Any] = {
        "extras": ["late checkout", "", "café ☕"],
        "minibar": {"water": Decimal("2.50"), "wine": Decimal("0.01")},
        "guest": {
            "name": "Ana",
            "born": date(1931, 7, 4),
            "vip": True,
            "nickname": None,
        },
        "charges": [
            {
                "label": "spa",
                "amount": Decimal("120.00"),
                "at": datetime(2024, 3, 9, 23, 59, 59, 999999, tzinfo=UTC),
            }
        ],
        "invoice_id": uuid.UUID("6a2f41a3-c54c-4ce8-92d2-0324e1c32e22"),
        "checked_out_at": datetime(2024, 3, 10, 7, 0, 0, 1, tzinfo=UTC),
    }
    return [(created, {}), (checkout, rich_fields)]


def produce_fidelity(topic: str) -> None:
    """Emit :func:`fidelity_events` to ``topic`` (run in a process of its own).

    The created event goes through ``BookingEventProducer`` (the contract's
    schema); the check-out through a serializer of :func:`rich`.
    """
    from confluent_kafka import Producer

    from booking_events.settings import KafkaSettings, RegistrySettings
    from producers import BookingEventProducer
    from schemas import EventSerializer
    from schemas.serde import SchemaRegistryClient

    (created, _), (checkout, fields) = fidelity_events()
    with BookingEventProducer(handle_sigterm=False) as producer:
        producer.emit(created)

    registry = SchemaRegistryClient(RegistrySettings().client_config())
    serializer = EventSerializer(registry, auto_register=True, schema_str=text(rich()))
    value = serializer.serialize(
        record(checkout.with_source("fidelity"), **fields), topic
    )
    kafka = Producer({**KafkaSettings().librdkafka(), "enable.idempotence": True})
    kafka.produce(topic, key=checkout.booking_id.encode(), value=value)
    assert kafka.flush(30) == 0
