"""The event contract: Avro schemas of booking events and the code that encodes them."""

from schemas.contract import (
    CONTRACT_VERSION,
    EVENT_SCHEMA,
    PAYLOAD_SCHEMAS,
    load_event_schema,
)
from schemas.events import (
    PAYLOAD_TYPES,
    BookingCancelled,
    BookingCreated,
    BookingEvent,
    BookingModified,
    EventType,
    GuestCheckedIn,
    GuestCheckedOut,
    RoomAssigned,
    UnlistedEvent,
)
from schemas.exceptions import (
    EventDecodeError,
    EventEncodeError,
    SchemaError,
    UnknownSchemaError,
)
from schemas.serde import EventDeserializer, EventSerializer

__all__ = [
    "CONTRACT_VERSION",
    "EVENT_SCHEMA",
    "PAYLOAD_SCHEMAS",
    "PAYLOAD_TYPES",
    "BookingCancelled",
    "BookingCreated",
    "BookingEvent",
    "BookingModified",
    "EventDecodeError",
    "EventDeserializer",
    "EventEncodeError",
    "EventSerializer",
    "EventType",
    "GuestCheckedIn",
    "GuestCheckedOut",
    "RoomAssigned",
    "SchemaError",
    "UnknownSchemaError",
    "UnlistedEvent",
    "load_event_schema",
]
