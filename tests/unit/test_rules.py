"""Stateless business rules of the processor."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from factories import booking_created

from processors.rules import Violation, check_event
from schemas import (
    BookingCancelled,
    BookingCreated,
    BookingModified,
    GuestCheckedIn,
    GuestCheckedOut,
    RoomAssigned,
)

AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def created(**overrides: object) -> BookingCreated:
    return booking_created(occurred_at=AT, **overrides)


def modified(**overrides: object) -> BookingModified:
    fields: dict[str, object] = {
        "booking_id": "B1",
        "seq": 2,
        "occurred_at": AT,
        "change_number": 1,
        "arrival_date": date(2026, 7, 1),
        "departure_date": date(2026, 7, 3),
        "adults": 2,
        "children": 0,
        "babies": 0,
        "meal_plan": "no_meal_package",
        "reserved_room_type": "A",
        "average_daily_rate": Decimal("80.00"),
        "currency": "EUR",
    }
    fields.update(overrides)
    return BookingModified(**fields)  # type: ignore[arg-type]


def codes(violations: list[Violation]) -> list[str]:
    return [v.code for v in violations]


def test_valid_events_pass() -> None:
    events = [
        created(),
        modified(),
        RoomAssigned(
            booking_id="B1",
            seq=3,
            occurred_at=AT,
            room_type="C",
            reserved_room_type="A",
        ),
        BookingCancelled(
            booking_id="B1",
            seq=4,
            occurred_at=AT,
            cancellation_fee=Decimal(0),
            currency="EUR",
        ),
        GuestCheckedIn(
            booking_id="B1",
            seq=4,
            occurred_at=AT,
            room_type="A",
            adults=0,
            children=0,
            babies=0,
        ),
        GuestCheckedOut(
            booking_id="B1",
            seq=5,
            occurred_at=AT,
            nights=0,
            total_amount=Decimal("0.00"),
            currency="EUR",
        ),
    ]
    for event in events:
        assert check_event(event) == [], event


@pytest.mark.parametrize("factory", [created, modified])
@pytest.mark.parametrize(
    "departure", [date(2026, 7, 1), date(2026, 6, 30)], ids=["same_day", "before"]
)
def test_departure_must_be_after_arrival(factory, departure: date) -> None:  # type: ignore[no-untyped-def]
    violations = check_event(
        factory(arrival_date=date(2026, 7, 1), departure_date=departure)
    )
    assert codes(violations) == ["departure_not_after_arrival"]
    assert "departure_date" in violations[0].detail
    assert departure.isoformat() in violations[0].detail
    assert "2026-07-01" in violations[0].detail


@pytest.mark.parametrize(
    ("event", "field"),
    [
        (created(average_daily_rate=Decimal("-0.01")), "average_daily_rate"),
        (modified(average_daily_rate=Decimal("-5")), "average_daily_rate"),
        (
            BookingCancelled(
                booking_id="B1",
                seq=2,
                occurred_at=AT,
                cancellation_fee=Decimal("-10.00"),
                currency="EUR",
            ),
            "cancellation_fee",
        ),
        (
            GuestCheckedOut(
                booking_id="B1",
                seq=3,
                occurred_at=AT,
                nights=2,
                total_amount=Decimal("-1.00"),
                currency="EUR",
            ),
            "total_amount",
        ),
    ],
)
def test_amounts_must_not_be_negative(event, field: str) -> None:  # type: ignore[no-untyped-def]
    violations = check_event(event)
    assert codes(violations) == ["negative_amount"]
    assert field in violations[0].detail
    assert str(getattr(event, field)) in violations[0].detail


@pytest.mark.parametrize("field", ["adults", "children", "babies"])
def test_guest_counts_must_not_be_negative(field: str) -> None:
    checked_in = GuestCheckedIn(
        booking_id="B1",
        seq=2,
        occurred_at=AT,
        room_type="A",
        adults=1,
        children=0,
        babies=0,
    )
    for event in (created(), modified(), checked_in):
        violations = check_event(dataclasses.replace(event, **{field: -1}))  # type: ignore[arg-type]
        assert codes(violations) == ["negative_guest_count"]
        assert f"{field} is -1" in violations[0].detail


def test_nights_must_not_be_negative() -> None:
    event = GuestCheckedOut(
        booking_id="B1",
        seq=3,
        occurred_at=AT,
        nights=-1,
        total_amount=Decimal("10.00"),
        currency="EUR",
    )
    assert codes(check_event(event)) == ["negative_nights"]


def test_every_violation_is_reported_in_rule_order() -> None:
    event = created(
        departure_date=date(2026, 6, 1),
        average_daily_rate=Decimal("-1"),
        adults=-2,
        babies=-1,
    )
    assert codes(check_event(event)) == [
        "departure_not_after_arrival",
        "negative_amount",
        "negative_guest_count",
        "negative_guest_count",
    ]
