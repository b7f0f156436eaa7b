"""Confluent wire format (magic byte, schema id, Avro body) through a registry.

Encoding goes through confluent-kafka's serializer. Decoding reads the frame
itself and hands the body to fastavro with the writer's schema, parsed once per
schema id: confluent-kafka's deserializer re-walks the schema for its rule
engine on every record, which cost the processor most of its time. Both
directions translate the libraries' errors into the contract's, keeping the
retriable/terminal distinction.
"""

from __future__ import annotations

import io
import json
import logging
from typing import Any

from confluent_kafka.schema_registry import (
    SchemaRegistryClient,
    topic_subject_name_strategy,
)
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import (
    MessageField,
    SerializationContext,
)
from fastavro import parse_schema, schemaless_reader

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
            if exc.http_status_code == 404:
                # auto.register.schemas is off and the lookup found nothing.
                raise EventEncodeError(
                    f"schema not registered under subject '{topic}-value' and"
                    " auto-registration is off; nothing was sent: run"
                    f" `booking-events schemas register` ({exc})",
                    event_id=str(event.event_id),
                    booking_id=event.booking_id,
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
    defaults. Writer schemas are fetched once per id and kept parsed; a writer
    schema equal to the reader's is read without resolution.
    """

    def __init__(self, registry: SchemaRegistryClient) -> None:
        self._registry = registry
        self._reader = parse_schema(json.loads(EVENT_SCHEMA))
        # schema id -> (parsed writer schema, reader schema or None if equal)
        self._writers: dict[int, tuple[Any, Any]] = {}

    def record(self, data: bytes | None, topic: str) -> dict[str, Any]:
        """Return the decoded record; raise ``EventDecodeError`` for bad bytes.

        ``topic`` is kept for the API; the schema is found by the id in the frame.
        """
        if not data or len(data) < 6 or data[0] != MAGIC_BYTE:
            raise EventDecodeError(
                "not in Confluent wire format (magic byte 0, 4-byte schema id,"
                f" Avro body): got {len(data or b'')} bytes"
            )
        schema_id = int.from_bytes(data[1:5], "big")
        schemas = self._writers.get(schema_id)
        if schemas is None:
            schemas = self._writers[schema_id] = self._fetch(schema_id)
        writer, reader = schemas

        body = io.BytesIO(data)
        body.seek(5)
        try:
            record = schemaless_reader(body, writer, reader, return_record_name=True)
        except Exception as exc:
            raise EventDecodeError(
                f"Avro body unreadable with schema id {schema_id}:"
                f" {type(exc).__name__}: {exc}"
            ) from exc
        if body.tell() != len(data):
            raise EventDecodeError(
                f"{len(data) - body.tell()} bytes left after the Avro body of"
                f" schema id {schema_id}: not one record of that schema"
            )
        if not isinstance(record, dict):
            raise EventDecodeError(f"decoded to {type(record).__name__}, not a record")
        return record

    def _fetch(self, schema_id: int) -> tuple[Any, Any]:
        """Return the parsed writer schema of ``schema_id`` and the reader to use."""
        try:
            schema = self._registry.get_schema(schema_id)
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404:
                raise UnknownSchemaError(
                    f"schema id {schema_id} is not in the registry: {exc}"
                ) from exc
            if _is_registry_outage(exc):
                raise RegistryUnavailableError(
                    f"schema registry unavailable while decoding: {exc}"
                ) from exc
            raise EventDecodeError(f"registry lookup failed: {exc}") from exc
        except Exception as exc:
            if _is_registry_outage(exc):
                raise RegistryUnavailableError(
                    f"schema registry unavailable while decoding: {exc}"
                ) from exc
            raise EventDecodeError(
                f"registry lookup of schema id {schema_id} failed:"
                f" {type(exc).__name__}: {exc}"
            ) from exc
        if schema.schema_type not in (None, "AVRO"):
            raise EventDecodeError(
                f"schema id {schema_id} is a {schema.schema_type} schema, not Avro"
            )
        try:
            writer = parse_schema(json.loads(schema.schema_str))
        except Exception as exc:
            raise EventDecodeError(
                f"schema id {schema_id} is not a readable Avro schema: {exc}"
            ) from exc
        reader = None if writer == self._reader else self._reader
        log.debug(
            "writer schema cached schema_id=%s resolved=%s", schema_id, bool(reader)
        )
        return writer, reader

    def event(self, data: bytes | None, topic: str) -> BookingEvent:
        """Return the typed event; raise ``EventDecodeError`` for bad bytes."""
        record = self.record(data, topic)
        try:
            return BookingEvent.from_avro(record)
        except (KeyError, ValueError, TypeError) as exc:
            raise EventDecodeError(f"record does not form an event: {exc}") from exc
