"""Builders of test events: one place for the many fields of a booking."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from schemas import BookingCreated

AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def booking_created(**overrides: Any) -> BookingCreated:
    """A valid ``BookingCreated`` for booking B1; any field can be overridden."""
    fields: dict[str, Any] = {
        "booking_id": "B1",
        "seq": 1,
        "occurred_at": AT,
        "hotel": "Resort Hotel",
        "arrival_date": date(2026, 7, 1),
        "departure_date": date(2026, 7, 3),
        "adults": 2,
        "children": 0,
        "babies": 0,
        "meal_plan": "bed_and_breakfast",
        "reserved_room_type": "A",
        "average_daily_rate": Decimal("80.00"),
        "currency": "EUR",
        "market_segment": "direct",
        "distribution_channel": "direct",
        "customer_type": "transient",
        "is_repeated_guest": False,
        "previous_cancellations": 0,
        "previous_bookings_not_canceled": 0,
        "lead_time_days": 10,
        "days_in_waiting_list": 0,
        "required_car_parking_spaces": 0,
        "total_of_special_requests": 0,
    }
    fields.update(overrides)
    return BookingCreated(**fields)
