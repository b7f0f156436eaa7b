"""Per-booking rules: what an event must satisfy given the booking's history.

The history is condensed into a ``BookingState``; ``advance`` is a pure
function from the previous state and the next event to the state after it and
the violations found. A rejected event leaves the state as it was.

Repeats. The state remembers the ids of the last ``RECENT_IDS`` accepted
events, so an event is a repeat when its seq is one of those and its id is the
one accepted at that seq: it is dropped, not forwarded and not dead-lettered.
Another event claiming an accepted seq is dead-lettered as
``seq_not_increasing``; so is an event older than the remembered window, since
a repeat and a conflicting event cannot be told apart there. Repeats through a
processor restart do not depend on this window: ``processors.app`` skips source
records it already handled by their offset.

Gaps. An event past ``last_seq + 1`` is dead-lettered as ``seq_gap`` and does
not move the state, so every later event of the booking fails the same way
until the missing one arrives; once it does, the booking continues from it
and the dead-lettered successors can be replayed from the dead-letter topic.
Nothing is buffered.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace

from processors.rules import Violation
from schemas import BookingEvent, EventType

RECENT_IDS = 8
"""Accepted event ids kept per booking for recognising repeated deliveries."""


@dataclass(frozen=True, slots=True)
class BookingState:
    """What the processor remembers of one booking.

    Attributes:
        last_seq: seq of the last accepted event; 0 before the first.
        checked_in: A GUEST_CHECKED_IN was accepted.
        cancelled: A BOOKING_CANCELLED was accepted.
        recent_ids: Ids of the accepted events with seq ``last_seq -
            len(recent_ids) + 1`` to ``last_seq``, oldest first; at most
            ``RECENT_IDS``.
        source_partition: Raw-topic partition of the last accepted event; -1
            before the first.
        source_offset: Its offset there; -1 before the first.
    """

    last_seq: int = 0
    checked_in: bool = False
    cancelled: bool = False
    recent_ids: tuple[str, ...] = ()
    source_partition: int = -1
    source_offset: int = -1

    def at(self, partition: int, offset: int) -> BookingState:
        """Return this state marked as written by the record at those coordinates."""
        return replace(self, source_partition=partition, source_offset=offset)

    def id_at(self, seq: int) -> str | None:
        """Return the id accepted at ``seq`` if it is still remembered."""
        back = self.last_seq - seq
        if seq < 1 or back < 0 or back >= len(self.recent_ids):
            return None
        return self.recent_ids[-1 - back]

    def to_bytes(self) -> bytes:
        """Return the compact form stored in the table and its changelog."""
        flags = int(self.checked_in) | int(self.cancelled) << 1
        head = [self.last_seq, flags, self.source_partition, self.source_offset]
        return json.dumps([*head, *self.recent_ids], separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, data: bytes | None) -> BookingState:
        """Rebuild the state from ``to_bytes``'s form; None is a new booking."""
        if not data:
            return cls()
        last_seq, flags, partition, offset, *ids = json.loads(data)
        return cls(
            last_seq=last_seq,
            checked_in=bool(flags & 1),
            cancelled=bool(flags & 2),
            recent_ids=tuple(ids),
            source_partition=partition,
            source_offset=offset,
        )


def is_repeat(state: BookingState, event: BookingEvent) -> bool:
    """True when ``event`` is an accepted event delivered again."""
    return event.seq <= state.last_seq and state.id_at(event.seq) == str(event.event_id)


def advance(
    state: BookingState, event: BookingEvent
) -> tuple[BookingState, list[Violation]]:
    """Apply ``event`` to ``state``.

    Returns the new state and no violations when the event is accepted, or the
    unchanged ``state`` and the violations when it is rejected. A repeat (see
    ``is_repeat``) returns ``state`` itself and no violations; the caller drops
    it.
    """
    if is_repeat(state, event):
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
            recent_ids=(*state.recent_ids, str(event.event_id))[-RECENT_IDS:],
        ),
        [],
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
        known = state.id_at(event.seq)
        why = (
            f"seq {event.seq} was accepted as event {known}"
            if known is not None
            else f"seq {event.seq} is older than the last {RECENT_IDS} remembered"
        )
        return [
            Violation(
                "seq_not_increasing",
                f"seq is {event.seq} but booking {event.booking_id} is already"
                f" at seq {state.last_seq} ({why})",
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
