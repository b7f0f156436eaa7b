"""Typed booking events: what booking code builds and what consumers get back.

Each class is one event type. Its fields are the envelope (shared by all types)
followed by the payload of that type, mirroring ``avro/*.avsc``. Instances are
immutable; ``to_avro`` and ``from_avro`` convert to and from the dict shape
fastavro reads and writes.
"""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, ClassVar

from schemas.contract import CONTRACT_VERSION, NAMESPACE


class EventType(StrEnum):
    """The lifecycle steps of a booking; the names match the Avro enum."""

    BOOKING_CREATED = "BOOKING_CREATED"
    BOOKING_MODIFIED = "BOOKING_MODIFIED"
    ROOM_ASSIGNED = "ROOM_ASSIGNED"
    BOOKING_CANCELLED = "BOOKING_CANCELLED"
    GUEST_CHECKED_IN = "GUEST_CHECKED_IN"
    GUEST_CHECKED_OUT = "GUEST_CHECKED_OUT"


ENVELOPE_FIELDS = (
    "event_id",
    "booking_id",
    "seq",
    "event_type",
    "occurred_at",
    "source",
    "schema_version",
)


@dataclass(frozen=True, kw_only=True, slots=True)
class BookingEvent:
    """The envelope every event carries.

    Attributes:
        booking_id: The booking the event belongs to; the Kafka key.
        seq: Position in the booking's history, 1 for the first event.
        occurred_at: When it happened; must be timezone-aware. Kept as UTC,
            cut to whole milliseconds (the contract's precision).
        source: The emitting system. Left empty, the producer fills in its own.
        event_id: Unique id; a random UUID unless given.
        schema_version: Contract version the event was built against.
    """

    event_type: ClassVar[EventType]
    avro_name: ClassVar[str]

    booking_id: str
    seq: int
    occurred_at: datetime
    source: str = ""
    event_id: uuid.UUID = field(default_factory=uuid.uuid4)
    schema_version: int = CONTRACT_VERSION

    def __post_init__(self) -> None:
        if not self.booking_id:
            raise ValueError("booking_id must not be empty")
        if self.seq < 1:
            raise ValueError(
                f"seq must be 1 or more, got {self.seq} ({self.booking_id})"
            )
        if self.occurred_at.tzinfo is None:
            raise ValueError(
                f"occurred_at must be timezone-aware, got naive {self.occurred_at}"
                f" ({self.booking_id} seq {self.seq}): a naive time is ambiguous"
            )
        # The contract's precision (timestamp-millis): cut here, where the
        # caller can see it, so the event holds exactly what is stored.
        at = self.occurred_at.astimezone(UTC)
        at = at.replace(microsecond=at.microsecond // 1000 * 1000)
        object.__setattr__(self, "occurred_at", at)
        if isinstance(self.event_id, str):
            object.__setattr__(self, "event_id", uuid.UUID(self.event_id))

    def payload(self) -> dict[str, Any]:
        """Return the payload fields (everything but the envelope) as a dict."""
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name not in ENVELOPE_FIELDS
        }

    def with_source(self, source: str) -> BookingEvent:
        """Return a copy with ``source`` set."""
        return dataclasses.replace(self, source=source)

    def to_avro(self) -> dict[str, Any]:
        """Return the record in fastavro's shape, the payload as a named union."""
        return {
            "event_id": str(self.event_id),
            "booking_id": self.booking_id,
            "seq": self.seq,
            "event_type": self.event_type.value,
            "occurred_at": self.occurred_at,
            "source": self.source,
            "schema_version": self.schema_version,
            "payload": (f"{NAMESPACE}.{self.avro_name}", self.payload()),
        }

    @staticmethod
    def from_avro(record: dict[str, Any]) -> BookingEvent:
        """Build the typed event from a decoded record.

        Payload fields the reader's class does not know (a newer writer) are
        ignored here; the sink reads them from the raw record instead.
        """
        payload = record["payload"]
        payload_name = ""
        if isinstance(payload, tuple):
            payload_name, payload = payload
        try:
            cls = PAYLOAD_TYPES[EventType(record["event_type"])]
        except ValueError:
            # A type of a newer contract (see UnlistedEvent).
            cls = UnlistedEvent
            kwargs = {
                "type_name": str(record["event_type"]),
                "payload_name": str(payload_name).rsplit(".", 1)[-1],
                "fields": dict(payload),
            }
        else:
            known = {f.name for f in dataclasses.fields(cls)}
            kwargs = {k: v for k, v in payload.items() if k in known}
        occurred_at = record["occurred_at"]
        if occurred_at.tzinfo is None:
            occurred_at = occurred_at.replace(tzinfo=UTC)
        return cls(
            event_id=uuid.UUID(str(record["event_id"])),
            booking_id=record["booking_id"],
            seq=record["seq"],
            occurred_at=occurred_at,
            source=record["source"],
            schema_version=record.get("schema_version", CONTRACT_VERSION),
            **kwargs,
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class BookingCreated(BookingEvent):
    """A booking was made. Amounts are in ``currency``."""

    event_type: ClassVar[EventType] = EventType.BOOKING_CREATED
    avro_name: ClassVar[str] = "BookingCreated"

    hotel: str
    arrival_date: date
    departure_date: date
    adults: int
    children: int
    babies: int
    meal_plan: str
    reserved_room_type: str
    average_daily_rate: Decimal
    currency: str
    market_segment: str
    distribution_channel: str
    customer_type: str
    is_repeated_guest: bool
    previous_cancellations: int
    previous_bookings_not_canceled: int
    lead_time_days: int
    days_in_waiting_list: int
    required_car_parking_spaces: int
    total_of_special_requests: int
    country: str | None = None
    agent: str | None = None
    company: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class BookingModified(BookingEvent):
    """The booking's terms changed; fields hold the terms after the change."""

    event_type: ClassVar[EventType] = EventType.BOOKING_MODIFIED
    avro_name: ClassVar[str] = "BookingModified"

    change_number: int
    arrival_date: date
    departure_date: date
    adults: int
    children: int
    babies: int
    meal_plan: str
    reserved_room_type: str
    average_daily_rate: Decimal
    currency: str


@dataclass(frozen=True, kw_only=True, slots=True)
class RoomAssigned(BookingEvent):
    """A room of another type than the one booked was allocated."""

    event_type: ClassVar[EventType] = EventType.ROOM_ASSIGNED
    avro_name: ClassVar[str] = "RoomAssigned"

    room_type: str
    reserved_room_type: str


@dataclass(frozen=True, kw_only=True, slots=True)
class BookingCancelled(BookingEvent):
    """The booking was cancelled before check-in."""

    event_type: ClassVar[EventType] = EventType.BOOKING_CANCELLED
    avro_name: ClassVar[str] = "BookingCancelled"

    cancellation_fee: Decimal
    currency: str
    reason: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class GuestCheckedIn(BookingEvent):
    """The guests arrived and took their room."""

    event_type: ClassVar[EventType] = EventType.GUEST_CHECKED_IN
    avro_name: ClassVar[str] = "GuestCheckedIn"

    room_type: str
    adults: int
    children: int
    babies: int


@dataclass(frozen=True, kw_only=True, slots=True)
class GuestCheckedOut(BookingEvent):
    """The guests left; ``total_amount`` is what the stay cost."""

    event_type: ClassVar[EventType] = EventType.GUEST_CHECKED_OUT
    avro_name: ClassVar[str] = "GuestCheckedOut"

    nights: int
    total_amount: Decimal
    currency: str


def unlisted_event_type(name: str) -> EventType:
    """An ``EventType`` value for a symbol this code's enum does not list.

    It is not a member: it equals no listed type (``is`` and ``==`` are
    false for every member), and its ``value`` and ``str()`` are the symbol.
    """
    value = str.__new__(EventType, name)
    value._name_ = name
    value._value_ = name
    return value


@dataclass(frozen=True, kw_only=True, slots=True)
class UnlistedEvent(BookingEvent):
    """An event of a type a newer contract added and this code does not list.

    Producers may start emitting a new event type (a new ``EventType`` symbol
    and its payload record, registered as a BACKWARD-compatible schema) before
    this code is upgraded. Such an event still decodes: the processor applies
    the envelope rules (key, seq order, repeats) and forwards it; the sink
    stores it, adding columns for its payload fields. Upgrading the contract
    gives it a class of its own.

    Attributes:
        type_name: The ``event_type`` symbol as written.
        payload_name: Short name of its payload record.
        fields: The payload fields as decoded with the writer's schema.
    """

    avro_name: ClassVar[str] = ""

    type_name: str
    payload_name: str = ""
    fields: dict[str, Any] = field(default_factory=dict)

    @property
    def event_type(self) -> EventType:  # type: ignore[override]
        """The symbol as an unlisted ``EventType`` value."""
        return unlisted_event_type(self.type_name)

    def payload(self) -> dict[str, Any]:
        """The payload fields as decoded."""
        return dict(self.fields)

    def to_avro(self) -> dict[str, Any]:
        """The record in fastavro's shape, payload under its own record name."""
        record = super(UnlistedEvent, self).to_avro()
        record["payload"] = (f"{NAMESPACE}.{self.payload_name}", dict(self.fields))
        return record


PAYLOAD_TYPES: dict[EventType, type[BookingEvent]] = {
    cls.event_type: cls
    for cls in (
        BookingCreated,
        BookingModified,
        RoomAssigned,
        BookingCancelled,
        GuestCheckedIn,
        GuestCheckedOut,
    )
}
"""Event class for each event type."""
