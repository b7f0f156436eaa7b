"""Stateless business rules: what one event must satisfy on its own.

Each rule is a pure function of the event returning the violations it found;
``check_event`` runs the rules that apply to the event's type. A violation's
``code`` is the stable ``dlq.reason`` of the dead-letter topic; ``detail`` is
for people and names the field and its value.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from schemas import BookingCreated, BookingEvent, BookingModified, GuestCheckedOut


@dataclass(frozen=True, slots=True)
class Violation:
    """One broken rule.

    Attributes:
        code: Short stable code, the ``dlq.reason`` header.
        detail: What is wrong, naming the field and the value.
    """

    code: str
    detail: str


DEAD_LETTER_REASONS = (
    "malformed",
    "unknown_schema",
    "key_mismatch",
    "departure_not_after_arrival",
    "negative_amount",
    "negative_guest_count",
    "negative_nights",
    "first_event_not_created",
    "created_not_first",
    "seq_gap",
    "seq_not_increasing",
    "checkout_before_checkin",
    "checkin_after_cancellation",
    "oversized",
)
"""Every ``dlq.reason`` the processor writes (README, "Dead-letter topic").

Its metrics are labelled by these up front, so a dashboard sees a reason's
first dead letter as an increase from zero.
"""

Rule = Callable[[BookingEvent], list[Violation]]

AMOUNT_FIELDS = ("average_daily_rate", "cancellation_fee", "total_amount")
GUEST_FIELDS = ("adults", "children", "babies")


def departure_after_arrival(event: BookingEvent) -> list[Violation]:
    """A stay ends after it starts: departure_date > arrival_date."""
    if not isinstance(event, BookingCreated | BookingModified):
        return []
    if event.departure_date > event.arrival_date:
        return []
    return [
        Violation(
            "departure_not_after_arrival",
            f"departure_date {event.departure_date.isoformat()} is not after"
            f" arrival_date {event.arrival_date.isoformat()}",
        )
    ]


def non_negative_amounts(event: BookingEvent) -> list[Violation]:
    """Prices, fees and totals are never negative."""
    return [
        Violation("negative_amount", f"{name} is {value} (must be >= 0)")
        for name, value in _present(event, AMOUNT_FIELDS)
        if value < Decimal(0)
    ]


def non_negative_guests(event: BookingEvent) -> list[Violation]:
    """Guest counts are never negative."""
    return [
        Violation("negative_guest_count", f"{name} is {value} (must be >= 0)")
        for name, value in _present(event, GUEST_FIELDS)
        if value < 0
    ]


def non_negative_nights(event: BookingEvent) -> list[Violation]:
    """A check-out reports zero or more nights."""
    if isinstance(event, GuestCheckedOut) and event.nights < 0:
        detail = f"nights is {event.nights} (must be >= 0)"
        return [Violation("negative_nights", detail)]
    return []


RULES: tuple[Rule, ...] = (
    departure_after_arrival,
    non_negative_amounts,
    non_negative_guests,
    non_negative_nights,
)
"""Every stateless rule, in the order their violations are reported."""


def check_event(event: BookingEvent, rules: Iterable[Rule] = RULES) -> list[Violation]:
    """Return every violation of the stateless rules; empty when the event is valid."""
    violations: list[Violation] = []
    for rule in rules:
        violations.extend(rule(event))
    return violations


def _present(event: BookingEvent, names: Iterable[str]) -> list[tuple[str, Any]]:
    # Slotted dataclasses have no __dict__: read only the fields the type has.
    return [(n, getattr(event, n)) for n in names if hasattr(event, n)]
