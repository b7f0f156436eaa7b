"""Deriving lifecycle events from the real hotel_rates bookings."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

import pytest

from producers.hotel_rates import (
    Booking,
    event_id_for,
    events_in_time_order,
    lifecycle,
    load_bookings,
)
from producers.loadgen import with_copies
from schemas import BookingEvent, EventType


@pytest.fixture(scope="module")
def bookings() -> list[Booking]:
    return load_bookings()


@pytest.fixture(scope="module")
def events(bookings: list[Booking]) -> list[BookingEvent]:
    return events_in_time_order(bookings)


def test_the_full_data_set_is_read(bookings: list[Booking]) -> None:
    assert len(bookings) == 15_402
    assert len({b.booking_id for b in bookings}) == 15_402
    assert min(b.arrival_date for b in bookings).isoformat() == "2016-07-02"
    assert max(b.arrival_date for b in bookings).isoformat() == "2017-08-31"


def test_event_counts_follow_the_derivation_rules(
    bookings: list[Booking], events: list[BookingEvent]
) -> None:
    changes = sum(b.booking_changes for b in bookings)
    room_changes = sum(b.assigned_room_type != b.reserved_room_type for b in bookings)

    assert len(events) == 3 * len(bookings) + changes + room_changes


def test_each_lifecycle_is_ordered_and_complete(events: list[BookingEvent]) -> None:
    per_booking: dict[str, list[BookingEvent]] = defaultdict(list)
    for event in events:
        per_booking[event.booking_id].append(event)

    for booking_id, history in per_booking.items():
        assert [e.seq for e in history] == list(range(1, len(history) + 1)), booking_id
        times = [e.occurred_at for e in history]
        assert times == sorted(times) and len(set(times)) == len(times), booking_id
        assert history[0].event_type is EventType.BOOKING_CREATED
        assert history[-2].event_type is EventType.GUEST_CHECKED_IN
        assert history[-1].event_type is EventType.GUEST_CHECKED_OUT


def test_the_stream_is_in_time_order(events: list[BookingEvent]) -> None:
    times = [e.occurred_at for e in events]
    assert times == sorted(times)


def test_one_booking_in_detail(bookings: list[Booking]) -> None:
    # Row 3: lead time 248, one change, room A booked and C given, 7 nights at 81.9.
    history = lifecycle(bookings[2])

    assert [e.event_type for e in history] == [
        EventType.BOOKING_CREATED,
        EventType.BOOKING_MODIFIED,
        EventType.ROOM_ASSIGNED,
        EventType.GUEST_CHECKED_IN,
        EventType.GUEST_CHECKED_OUT,
    ]
    created, _, assigned, _, checked_out = history
    assert created.booking_id == "HR-00003"
    assert (created.arrival_date - created.occurred_at.date()).days == 248
    assert created.average_daily_rate == Decimal("81.90")
    assert (assigned.reserved_room_type, assigned.room_type) == ("A", "C")
    assert checked_out.nights == 7
    assert checked_out.total_amount == Decimal("573.30")


def test_event_ids_are_stable_across_replays(bookings: list[Booking]) -> None:
    first = lifecycle(bookings[0])
    again = lifecycle(bookings[0])

    assert [e.event_id for e in first] == [e.event_id for e in again]
    assert first[0].event_id == event_id_for("HR-00001", 1)


def test_copies_get_new_ids_and_shifted_dates(bookings: list[Booking]) -> None:
    sample = bookings[:10]
    copies = list(with_copies(sample, 2))

    assert len(copies) == 30
    assert len({b.booking_id for b in copies}) == 30
    assert (copies[10].arrival_date - sample[0].arrival_date).days == 364
    ids = {e.event_id for b in copies for e in lifecycle(b)}
    assert len(ids) == sum(len(lifecycle(b)) for b in copies)
