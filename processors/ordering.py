"""Per-booking rules: what an event must satisfy given the booking's history.

The history is condensed into a ``BookingState``; ``advance`` is a pure
function from the previous state and the next event to the state after it and
the violations found. The faust table stores the state as a dict (see
``to_dict``); a rejected event leaves the state as it was.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from processors.rules import Violation
from schemas import BookingEvent, EventType


@dataclass(frozen=True, slots=True)
class BookingState:
    """What the processor remembers of one booking.

    Attributes:
        last_seq: seq of the last accepted event; 0 before the first.
        checked_in: A GUEST_CHECKED_IN was accepted.
        cancelled: A BOOKING_CANCELLED was accepted.
        event_ids: Ids of the accepted events, in seq order, so that a repeated
            delivery of one of them (producer retry, processor restart) is
            recognised and passed on rather than taken for a seq error.
    """

    last_seq: int = 0
    checked_in: bool = False
    cancelled: bool = False
    event_ids: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON-friendly form stored in the table."""
        return {
            "last_seq": self.last_seq,
            "checked_in": self.checked_in,
            "cancelled": self.cancelled,
            "event_ids": list(self.event_ids),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> BookingState:
        """Rebuild the state from ``to_dict``'s form; None is a new booking."""
        if not data:
            return cls()
        return cls(
            last_seq=int(data["last_seq"]),
            checked_in=bool(data["checked_in"]),
            cancelled=bool(data["cancelled"]),
            event_ids=tuple(data.get("event_ids", ())),
        )


def advance(
    state: BookingState, event: BookingEvent
) -> tuple[BookingState, list[Violation]]:
    """Apply ``event`` to ``state``.

    Returns the new state and no violations when the event is accepted, or the
    unchanged ``state`` and the violations when it is rejected. A repeated
    delivery of an accepted event returns ``state`` itself and no violations:
    it is passed on again, and consumers drop it by ``event_id``.
    """
    if _is_repeat(state, event):
        return state, []

    violations = _sequence_violations(state, event)
    if event.event_type is EventType.GUEST_CHECKED_OUT and not state.checked_in:
        violations.append(
            Violation(
                "checkout_before_checkin",
                f"GUEST_CHECKED_OUT at seq {event.seq} but booking"
                f" {event.booking_id} has no accepted GUEST_CHECKED_IN",
            )
        )
    if event.event_type is EventType.GUEST_CHECKED_IN and state.cancelled:
        violations.append(
            Violation(
                "checkin_after_cancellation",
                f"GUEST_CHECKED_IN at seq {event.seq} but booking"
                f" {event.booking_id} was cancelled",
            )
        )
    if violations:
        return state, violations

    return (
        replace(
            state,
            last_seq=event.seq,
            checked_in=state.checked_in
            or event.event_type is EventType.GUEST_CHECKED_IN,
            cancelled=state.cancelled
            or event.event_type is EventType.BOOKING_CANCELLED,
            event_ids=(*state.event_ids, str(event.event_id)),
        ),
        [],
    )


def _is_repeat(state: BookingState, event: BookingEvent) -> bool:
    index = event.seq - 1
    return 0 <= index < len(state.event_ids) and state.event_ids[index] == str(
        event.event_id
    )


def _sequence_violations(state: BookingState, event: BookingEvent) -> list[Violation]:
    expected = state.last_seq + 1
    created = event.event_type is EventType.BOOKING_CREATED
    if event.seq > expected:
        return [
            Violation(
                "seq_gap",
                f"seq is {event.seq}, expected {expected}: events"
                f" {expected}..{event.seq - 1} of booking {event.booking_id}"
                " are missing",
            )
        ]
    if event.seq < expected:
        return [
            Violation(
                "seq_not_increasing",
                f"seq is {event.seq} but booking {event.booking_id} is already"
                f" at seq {state.last_seq}",
            )
        ]
    if state.last_seq == 0 and not created:
        return [
            Violation(
                "first_event_not_created",
                f"first event of booking {event.booking_id} is"
                f" {event.event_type} (seq 1), not BOOKING_CREATED",
            )
        ]
    if state.last_seq > 0 and created:
        return [
            Violation(
                "created_not_first",
                f"BOOKING_CREATED at seq {event.seq} but booking"
                f" {event.booking_id} already exists",
            )
        ]
    return []
