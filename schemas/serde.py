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
from typing import Any, NamedTuple

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
from fastavro.read import SchemaResolutionError

from schemas.contract import EVENT_SCHEMA
from schemas.events import BookingEvent
from schemas.exceptions import (
    EventDecodeError,
    EventEncodeError,
    RegistryUnavailableError,
    UnknownSchemaError,
)
from schemas.fit import misfits, named_types

log = logging.getLogger(__name__)

MAGIC_BYTE = 0


def _read(body: io.BytesIO, writer: Any, reader: Any) -> Any:
    # A [null, record] union reads as the record alone; the payload union
    # (several records) as (record name, fields).
    return schemaless_reader(
        body,
        writer,
        reader,
        return_record_name=True,
        return_record_name_override=True,
    )


def _to_record(event: Any, _ctx: SerializationContext) -> dict[str, Any]:
    if isinstance(event, BookingEvent):
        return event.to_avro()
    # A record already in fastavro's shape: a schema other than the contract's
    # (``schema_str``), e.g. a newer writer in the schema-evolution tests.
    record: dict[str, Any] = event
    return record


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

    def __init__(
        self,
        registry: SchemaRegistryClient,
        *,
        auto_register: bool,
        schema_str: str = EVENT_SCHEMA,
    ) -> None:
        self._schema = json.loads(schema_str)
        self._names = named_types(self._schema)
        self._serializer = AvroSerializer(
            registry,
            schema_str,
            _to_record,
            conf={
                "auto.register.schemas": auto_register,
                "subject.name.strategy": topic_subject_name_strategy,
            },
        )

    def serialize(self, event: BookingEvent | dict[str, Any], topic: str) -> bytes:
        """Return the wire-format bytes of ``event`` for ``topic``.

        Raises:
            EventEncodeError: The event does not fit the schema (a null where
                the type has none, a decimal with more digits than its
                precision or scale, an int out of range: never rounded), or
                the registry refused it; the message names the field.
        """
        ctx = SerializationContext(topic, MessageField.VALUE)
        record = _to_record(event, ctx)
        problems = misfits(self._schema, record, self._names)
        if problems:
            raise EventEncodeError(
                f"{record.get('event_type')} does not fit the contract, nothing was"
                f" sent: {'; '.join(problems)}",
                event_id=str(record.get("event_id")),
                booking_id=str(record.get("booking_id")),
            )
        try:
            data = self._serializer(record, ctx)
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
                    event_id=str(record.get("event_id")),
                    booking_id=str(record.get("booking_id")),
                ) from exc
            raise EventEncodeError(
                f"the registry refused the schema for topic {topic!r}: {exc}",
                event_id=str(record.get("event_id")),
                booking_id=str(record.get("booking_id")),
            ) from exc
        except Exception as exc:
            if _is_registry_outage(exc):
                raise RegistryUnavailableError(
                    f"schema registry unavailable while encoding: {exc}"
                ) from exc
            raise EventEncodeError(
                f"{record.get('event_type')} does not fit the contract: {exc}",
                event_id=str(record.get("event_id")),
                booking_id=str(record.get("booking_id")),
            ) from exc
        assert data is not None
        return data


class Decoded(NamedTuple):
    """A record and the id of the schema it was written with."""

    schema_id: int
    record: dict[str, Any]


class EventDeserializer:
    """Decodes wire-format bytes with the writer's schema (looked up by id).

    With ``resolve`` (the processor), records are resolved to this code's
    reader schema, so fields added by a newer writer are dropped and fields
    missing from an older one take their defaults. A record the reader cannot
    resolve because it is *newer* (an event_type symbol or a payload record
    this code does not list yet) is read with its writer's schema alone, so it
    still decodes; ``BookingEvent.from_avro`` makes it an ``UnlistedEvent``.

    Without ``resolve`` (the sink), every record is read with its writer's
    schema alone and keeps every field it was written with; the sink maps the
    writer's schema to columns itself (``sinks.migrations``).

    Writer schemas are fetched once per id and kept parsed; a writer schema
    equal to the reader's is read without resolution.
    """

    def __init__(self, registry: SchemaRegistryClient, *, resolve: bool = True) -> None:
        self._registry = registry
        self._resolve = resolve
        self._reader = parse_schema(json.loads(EVENT_SCHEMA))
        # schema id -> (parsed writer schema, reader schema or None if equal)
        self._writers: dict[int, tuple[Any, Any]] = {}
        self._writer_json: dict[int, dict[str, Any]] = {}

    def record(self, data: bytes | None, topic: str) -> dict[str, Any]:
        """Return the decoded record; raise ``EventDecodeError`` for bad bytes.

        ``topic`` is kept for the API; the schema is found by the id in the frame.
        """
        return self.decode(data).record

    @property
    def registry(self) -> SchemaRegistryClient:
        """The registry client the writer schemas come from."""
        return self._registry

    def writer_schema(self, schema_id: int) -> dict[str, Any]:
        """The writer schema of ``schema_id`` as JSON (fetched when not cached)."""
        if schema_id not in self._writer_json:
            self._writers[schema_id] = self._fetch(schema_id)
        return self._writer_json[schema_id]

    def decode(self, data: bytes | None) -> Decoded:
        """Return the schema id and the decoded record of wire-format bytes."""
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
            try:
                record = _read(body, writer, reader)
            except SchemaResolutionError:
                # Newer than this reader (see the class doc): read it as written.
                body.seek(5)
                record = _read(body, writer, None)
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
        return Decoded(schema_id, record)

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
            as_json = json.loads(schema.schema_str or "")
            writer = parse_schema(as_json)
        except Exception as exc:
            raise EventDecodeError(
                f"schema id {schema_id} is not a readable Avro schema: {exc}"
            ) from exc
        self._writer_json[schema_id] = as_json
        resolved = self._resolve and writer != self._reader
        reader = self._reader if resolved else None
        log.debug(
            "writer schema cached",
            extra={"schema_id": schema_id, "resolved": bool(reader)},
        )
        return writer, reader

    def event(self, data: bytes | None, topic: str) -> BookingEvent:
        """Return the typed event; raise ``EventDecodeError`` for bad bytes.

        An event of a type this code does not list is an ``UnlistedEvent``.
        """
        record = self.record(data, topic)
        try:
            return BookingEvent.from_avro(record)
        except (KeyError, ValueError, TypeError) as exc:
            raise EventDecodeError(f"record does not form an event: {exc}") from exc
