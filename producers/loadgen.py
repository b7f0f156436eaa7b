"""Synthetic load from the real bookings: more volume, same shape.

Copy ``n`` of a booking gets the id ``HR-00042-Cn`` and dates shifted by
``n`` x 52 weeks (weekdays and seasons stay as they were), so copies never
collide with the originals or each other.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from datetime import timedelta

from producers.hotel_rates import Booking

SHIFT = timedelta(weeks=52)


def with_copies(bookings: Sequence[Booking], copies: int) -> Iterator[Booking]:
    """Yield the originals followed by ``copies`` shifted copies of each."""
    if copies < 0:
        raise ValueError(f"copies must be 0 or more, got {copies}")
    yield from bookings
    for n in range(1, copies + 1):
        for booking in bookings:
            yield dataclasses.replace(
                booking, copy=n, arrival_date=booking.arrival_date + SHIFT * n
            )
