"""Errors the producer raises to booking code."""

from __future__ import annotations

from dataclasses import dataclass

from booking_events.exceptions import BookingEventsError


@dataclass(frozen=True, slots=True)
class FailedDelivery:
    """One event Kafka did not accept."""

    event_id: str
    booking_id: str
    topic: str
    error: str
    retriable: bool


class ProducerError(BookingEventsError):
    """Base of the producer's errors."""


class ProducerClosedError(ProducerError):
    """emit() after close(), or before start()."""


class BufferFullError(ProducerError):
    """The send buffer stayed full past ``buffer_full_timeout_ms``.

    Nothing was sent for this event; the caller may retry it later.
    """

    retriable = True

    def __init__(self, message: str, *, event_id: str) -> None:
        super().__init__(message)
        self.event_id = event_id


class DeliveryError(ProducerError):
    """Kafka did not accept some events. ``failures`` names each one."""

    def __init__(self, failures: list[FailedDelivery]) -> None:
        shown = ", ".join(f"{f.event_id} ({f.error})" for f in failures[:5])
        more = f" and {len(failures) - 5} more" if len(failures) > 5 else ""
        super().__init__(
            f"{len(failures)} event(s) were not delivered: {shown}{more};"
            " they are not in Kafka and must be emitted again"
        )
        self.failures = failures
