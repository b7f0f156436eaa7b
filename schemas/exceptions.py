"""Errors of encoding and decoding events.

Decoding errors say whether the bytes are bad (terminal: the event belongs in
the dead-letter topic) or the registry could not answer (retriable: the same
bytes will decode once it is back).
"""

from __future__ import annotations

from booking_events.exceptions import BookingEventsError


class SchemaError(BookingEventsError):
    """Base of the event contract's errors."""


class EventEncodeError(SchemaError):
    """An event does not fit the contract; nothing was sent.

    Attributes:
        event_id: Id of the refused event.
        booking_id: Its booking.
    """

    def __init__(self, message: str, *, event_id: str, booking_id: str) -> None:
        super().__init__(f"{message} (event {event_id}, booking {booking_id})")
        self.event_id = event_id
        self.booking_id = booking_id


class EventDecodeError(SchemaError):
    """Bytes that are not a valid event of the contract.

    ``reason`` is a short code for the dead-letter topic: ``malformed`` when the
    bytes cannot be read, ``unknown_schema`` when their schema id is not in the
    registry.
    """

    reason = "malformed"


class UnknownSchemaError(EventDecodeError):
    """The message names a schema id the registry does not know."""

    reason = "unknown_schema"


class RegistryUnavailableError(SchemaError):
    """The Schema Registry did not answer; retrying later can succeed."""

    retriable = True
