"""Per-booking ordering rules: a pure function of the state and the event."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from factories import booking_created

from processors.ordering import RECENT_IDS, BookingState, advance, is_repeat
from schemas import (
    BookingCancelled,
    BookingCreated,
    BookingEvent,
    GuestCheckedIn,
    GuestCheckedOut,
    RoomAssigned,
)

AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def created(seq: int = 1) -> BookingCreated:
    return booking_created(seq=seq, occurred_at=AT)


def room(seq: int) -> RoomAssigned:
    return RoomAssigned(
        booking_id="B1", seq=seq, occurred_at=AT, room_type="C", reserved_room_type="A"
    )


def check_in(seq: int) -> GuestCheckedIn:
    return GuestCheckedIn(
        booking_id="B1",
        seq=seq,
        occurred_at=AT,
        room_type="A",
        adults=2,
        children=0,
        babies=0,
    )


def check_out(seq: int) -> GuestCheckedOut:
    return GuestCheckedOut(
        booking_id="B1",
        seq=seq,
        occurred_at=AT,
        nights=2,
        total_amount=Decimal("160.00"),
        currency="EUR",
    )


def cancel(seq: int) -> BookingCancelled:
    return BookingCancelled(
        booking_id="B1",
        seq=seq,
        occurred_at=AT,
        cancellation_fee=Decimal("0.00"),
        currency="EUR",
    )


def run(events: list[BookingEvent]) -> BookingState:
    """Apply events that must all be accepted."""
    state = BookingState()
    for event in events:
        state, violations = advance(state, event)
        assert violations == [], event
    return state


def test_a_full_stay_is_accepted_and_tracked() -> None:
    events = [created(), room(2), check_in(3), check_out(4)]
    state = run(events)
    assert state.last_seq == 4
    assert state.checked_in
    assert not state.cancelled
    assert state.recent_ids == tuple(str(e.event_id) for e in events)


def test_cancellation_is_tracked() -> None:
    state = run([created(), cancel(2)])
    assert state.cancelled and not state.checked_in


def test_first_event_must_be_booking_created() -> None:
    state, violations = advance(BookingState(), room(1))
    assert [v.code for v in violations] == ["first_event_not_created"]
    assert state == BookingState()


def test_first_event_must_have_seq_1() -> None:
    _, violations = advance(BookingState(), created(seq=2))
    assert [v.code for v in violations] == ["seq_gap"]
    assert "expected 1" in violations[0].detail


def test_created_twice_is_rejected() -> None:
    state = run([created()])
    _, violations = advance(state, created(seq=2))
    assert [v.code for v in violations] == ["created_not_first"]


@pytest.mark.parametrize(("seq", "code"), [(3, "seq_gap"), (10, "seq_gap")])
def test_seq_gap(seq: int, code: str) -> None:
    state = run([created()])
    new, violations = advance(state, room(seq))
    assert [v.code for v in violations] == [code]
    assert f"seq is {seq}, expected 2" in violations[0].detail
    assert new is state


@pytest.mark.parametrize("seq", [1, 2])
def test_seq_not_increasing(seq: int) -> None:
    state = run([created(), room(2)])
    new, violations = advance(state, room(seq))
    assert [v.code for v in violations] == ["seq_not_increasing"]
    assert "already at seq 2" in violations[0].detail
    assert new is state


def test_checkout_before_checkin_is_rejected() -> None:
    state = run([created()])
    new, violations = advance(state, check_out(2))
    assert [v.code for v in violations] == ["checkout_before_checkin"]
    assert new is state


def test_checkin_after_cancellation_is_rejected() -> None:
    state = run([created(), cancel(2)])
    _, violations = advance(state, check_in(3))
    assert [v.code for v in violations] == ["checkin_after_cancellation"]


def test_a_rejected_event_does_not_advance_the_state() -> None:
    state = run([created()])
    state, _ = advance(state, room(3))  # gap: rejected
    assert state.last_seq == 1
    state, violations = advance(state, room(2))  # the missing one: accepted
    assert violations == []
    assert state.last_seq == 2


def test_several_violations_are_all_reported() -> None:
    state = run([created()])
    _, violations = advance(state, check_out(5))
    assert [v.code for v in violations] == ["seq_gap", "checkout_before_checkin"]


def test_a_repeated_delivery_is_recognised_and_leaves_the_state() -> None:
    first, second = created(), room(2)
    state = run([first, second])
    for repeat in (first, second):
        assert is_repeat(state, repeat)
        new, violations = advance(state, repeat)
        assert violations == []
        assert new is state


def test_only_the_last_ids_are_remembered() -> None:
    events: list[BookingEvent] = [created(), *(room(s) for s in range(2, 13))]
    state = run(events)
    assert state.last_seq == 12
    assert len(state.recent_ids) == RECENT_IDS
    assert state.id_at(12) == str(events[-1].event_id)
    assert state.id_at(12 - RECENT_IDS + 1) == str(events[12 - RECENT_IDS].event_id)
    assert state.id_at(12 - RECENT_IDS) is None

    # A repeat older than the window cannot be told from a conflicting event.
    assert is_repeat(state, events[12 - RECENT_IDS])
    assert not is_repeat(state, events[0])
    _, violations = advance(state, events[0])
    assert [v.code for v in violations] == ["seq_not_increasing"]
    assert "older than" in violations[0].detail


def test_an_event_after_a_gap_keeps_failing_until_the_missing_one_arrives() -> None:
    state = run([created()])
    for late in (room(3), check_in(4)):
        _, violations = advance(state, late)
        assert [v.code for v in violations] == ["seq_gap"]
    state = run([created(), room(2), room(3), check_in(4)])
    assert state.last_seq == 4 and state.checked_in


def test_same_seq_with_another_event_id_is_not_a_repeat() -> None:
    state = run([created(), room(2)])
    other = RoomAssigned(
        booking_id="B1",
        seq=2,
        occurred_at=AT,
        room_type="D",
        reserved_room_type="A",
        event_id=uuid.uuid4(),
    )
    _, violations = advance(state, other)
    assert [v.code for v in violations] == ["seq_not_increasing"]


def test_state_round_trips_through_the_table_form() -> None:
    state = run([created(), check_in(2)]).at(partition=3, offset=1234)
    assert BookingState.from_bytes(state.to_bytes()) == state
    assert BookingState.from_bytes(None) == BookingState()
    # Small: a full window of ids stays well under half a kilobyte.
    full = run([created(), *(room(s) for s in range(2, 20))]).at(5, 10**9)
    assert len(full.to_bytes()) < 400
