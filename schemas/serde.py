"""Confluent wire format (magic byte, schema id, Avro body) through a registry.

The Avro work is done by confluent-kafka's serializers; this module fixes the
schema, turns typed events into records and back, and translates the library's
errors into the contract's, keeping the retriable/terminal distinction.
"""

from __future__ import annotations

import logging
from typing import Any

from confluent_kafka.schema_registry import (
    SchemaRegistryClient,
    topic_subject_name_strategy,
)
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import (
    MessageField,
    SerializationContext,
    SerializationError,
)

from schemas.contract import EVENT_SCHEMA
from schemas.events import BookingEvent
from schemas.exceptions import (
    EventDecodeError,
    EventEncodeError,
    RegistryUnavailableError,
    UnknownSchemaError,
)

log = logging.getLogger(__name__)

MAGIC_BYTE = 0


def _event_to_record(event: BookingEvent, _ctx: SerializationContext) -> dict[str, Any]:
    return event.to_avro()


def _is_registry_outage(exc: BaseException) -> bool:
    if isinstance(exc, SchemaRegistryError):
        return exc.http_status_code >= 500 or exc.http_status_code < 0
    # Connection errors come from the HTTP client; match them by name so this
    # module does not depend on which client confluent-kafka ships with.
    names = {cls.__name__ for cls in type(exc).__mro__}
    return bool(names & {"ConnectError", "ConnectionError", "TimeoutException"})


class EventSerializer:
    """Encodes events for one topic.

    Args:
        registry: Client of the Schema Registry.
        auto_register: Register the schema under ``<topic>-value`` when missing.
            Production producers set False and rely on a registered schema.
    """

    def __init__(self, registry: SchemaRegistryClient, *, auto_register: bool) -> None:
        self._serializer = AvroSerializer(
            registry,
            EVENT_SCHEMA,
            _event_to_record,
            conf={
                "auto.register.schemas": auto_register,
                "subject.name.strategy": topic_subject_name_strategy,
            },
        )

    def serialize(self, event: BookingEvent, topic: str) -> bytes:
        """Return the wire-format bytes of ``event`` for ``topic``."""
        ctx = SerializationContext(topic, MessageField.VALUE)
        try:
            data = self._serializer(event, ctx)
        except SchemaRegistryError as exc:
            if _is_registry_outage(exc):
                raise RegistryUnavailableError(
                    f"schema registry unavailable while encoding: {exc}"
                ) from exc
            raise EventEncodeError(
                f"the registry refused the schema for topic {topic!r}: {exc}",
                event_id=str(event.event_id),
                booking_id=event.booking_id,
            ) from exc
        except Exception as exc:
            if _is_registry_outage(exc):
                raise RegistryUnavailableError(
                    f"schema registry unavailable while encoding: {exc}"
                ) from exc
            raise EventEncodeError(
                f"{event.event_type} does not fit the contract: {exc}",
                event_id=str(event.event_id),
                booking_id=event.booking_id,
            ) from exc
        assert data is not None
        return data


class EventDeserializer:
    """Decodes wire-format bytes with the writer's schema (looked up by id).

    Records are resolved to this code's reader schema, so fields added by a
    newer writer are dropped and fields missing from an older one take their
    defaults.
    """

    def __init__(self, registry: SchemaRegistryClient) -> None:
        self._deserializer = AvroDeserializer(
            registry,
            EVENT_SCHEMA,
            return_record_name=True,
            conf={"subject.name.strategy": topic_subject_name_strategy},
        )

    def record(self, data: bytes | None, topic: str) -> dict[str, Any]:
        """Return the decoded record; raise ``EventDecodeError`` for bad bytes."""
        if not data or len(data) < 6 or data[0] != MAGIC_BYTE:
            raise EventDecodeError(
                "not in Confluent wire format (magic byte 0, 4-byte schema id,"
                f" Avro body): got {len(data or b'')} bytes"
            )
        ctx = SerializationContext(topic, MessageField.VALUE)
        try:
            record = self._deserializer(data, ctx)
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404:
                schema_id = int.from_bytes(data[1:5], "big")
                raise UnknownSchemaError(
                    f"schema id {schema_id} is not in the registry: {exc}"
                ) from exc
            if _is_registry_outage(exc):
                raise RegistryUnavailableError(
                    f"schema registry unavailable while decoding: {exc}"
                ) from exc
            raise EventDecodeError(f"registry lookup failed: {exc}") from exc
        except SerializationError as exc:
            raise EventDecodeError(str(exc)) from exc
        except Exception as exc:
            if _is_registry_outage(exc):
                raise RegistryUnavailableError(
                    f"schema registry unavailable while decoding: {exc}"
                ) from exc
            raise EventDecodeError(
                f"Avro body unreadable: {type(exc).__name__}: {exc}"
            ) from exc
        if not isinstance(record, dict):
            raise EventDecodeError(f"decoded to {type(record).__name__}, not a record")
        return record

    def event(self, data: bytes | None, topic: str) -> BookingEvent:
        """Return the typed event; raise ``EventDecodeError`` for bad bytes."""
        record = self.record(data, topic)
        try:
            return BookingEvent.from_avro(record)
        except (KeyError, ValueError, TypeError) as exc:
            raise EventDecodeError(f"record does not form an event: {exc}") from exc
