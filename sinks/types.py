"""The columns of the events table, derived from the Avro contract.

Nothing here lists payload fields by hand: :func:`payload_columns` walks
``schemas.PAYLOAD_SCHEMAS`` (or any writer's schema, :func:`event_columns`), so
a field added to a payload record becomes a column: at start-up for the
contract's fields, and before the first record of a newer writer's schema for
its fields (``sinks.migrations``). The rules (the README's table):

* one column per field name: a name means the same thing in every payload
  record that carries it, so their ClickHouse types must agree;
* a column is ``Nullable`` when a record declares the field ``["null", T]`` or
  when some event types do not carry it at all;
* Avro ``date`` -> ``Date32`` (every real date, not only 1970-2149),
  ``decimal(p, s)`` -> ``Decimal(p, s)``, ``timestamp-millis`` ->
  ``DateTime64(3, 'UTC')``, ``uuid`` -> ``UUID``, ``int`` -> ``Int32``,
  ``long`` -> ``Int64``, ``boolean`` -> ``Bool``, ``string`` -> ``String``, or
  ``LowCardinality(String)`` for the code-like fields in
  :data:`LOW_CARDINALITY_FIELDS` and for enums, ``timestamp-micros`` ->
  ``DateTime64(6, 'UTC')``, ``fixed(n)`` -> ``FixedString(n)``;
* ``array<T>`` -> ``Array(T)``, ``map<T>`` -> ``Map(String, T)``, a nested
  record -> a named ``Tuple(field T, ...)`` (one column, read back as a dict,
  rather than flattened columns: a nullable record stays one NULL); arrays and
  maps are never Nullable (ClickHouse has none), rows without one hold it empty;
* a column's ``DEFAULT`` is the field's Avro default (``sinks.defaults``);
* the column comment is the field's Avro ``doc``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from schemas import PAYLOAD_SCHEMAS, load_event_schema
from sinks.defaults import python_value, sql_default
from sinks.exceptions import SchemaMappingError

UTC_MILLIS = "DateTime64(3, 'UTC')"

LOW_CARDINALITY_FIELDS = frozenset(
    {
        "source",
        "hotel",
        "currency",
        "country",
        "meal_plan",
        "market_segment",
        "distribution_channel",
        "customer_type",
        "reserved_room_type",
        "room_type",
    }
)
"""String fields with few distinct values (codes), stored dictionary-encoded."""

ENVELOPE_TYPE_OVERRIDES = {"seq": "UInt32", "schema_version": "UInt16"}
"""Envelope fields stored narrower than their Avro type: the contract keeps
``seq`` at 1 or more and ``schema_version`` small."""

_PRIMITIVES = {
    "string": "String",
    "int": "Int32",
    "long": "Int64",
    "boolean": "Bool",
    "float": "Float32",
    "double": "Float64",
    "bytes": "String",
}
_LOGICAL = {
    "date": "Date32",
    "timestamp-millis": UTC_MILLIS,
    "timestamp-micros": "DateTime64(6, 'UTC')",
    "uuid": "UUID",
}


@dataclass(frozen=True, slots=True)
class Column:
    """One column of the events table.

    Attributes:
        name: Column name (the Avro field name for contract fields).
        type: ClickHouse type, e.g. ``Nullable(Decimal(12, 2))``.
        comment: Text for analysts, shown by ``DESCRIBE`` and ``system.columns``.
    """

    name: str
    type: str
    comment: str
    default_sql: str | None = None
    """``DEFAULT`` expression from the Avro default; what rows stored before
    the column was added return (None: the type's own default, NULL or empty)."""


def clickhouse_type(
    avro_type: Any,
    *,
    low_cardinality: bool = False,
    names: dict[str, Any] | None = None,
) -> str:
    """Return the ClickHouse type of an Avro field type.

    Args:
        avro_type: The field's ``type`` as it appears in the ``.avsc`` JSON.
        low_cardinality: Store strings dictionary-encoded.
        names: Named types (records, enums, fixed) defined elsewhere in the
            schema, by full and by short name, for fields that refer to one.

    Raises:
        SchemaMappingError: The type (a union of several non-null types, a
            nullable array or map) has no column mapping.
    """
    names = names or {}
    if isinstance(avro_type, str) and avro_type in names:
        avro_type = names[avro_type]
    if isinstance(avro_type, list):
        branches = [t for t in avro_type if t != "null"]
        if len(branches) != 1 or len(avro_type) > 2:
            raise SchemaMappingError(
                f"only [null, T] unions map to a column: {avro_type}"
            )
        inner = clickhouse_type(
            branches[0], low_cardinality=low_cardinality, names=names
        )
        if len(avro_type) == 1:
            return inner
        if inner.startswith(("Array(", "Map(")):
            raise SchemaMappingError(
                f"ClickHouse cannot store NULL apart from an empty {inner}: declare"
                f" the field {branches[0]!r} without null and default it to empty"
            )
        return make_nullable(inner)

    if isinstance(avro_type, dict):
        kind = avro_type.get("type")
        logical = avro_type.get("logicalType")
        if logical == "decimal":
            return f"Decimal({avro_type['precision']}, {avro_type.get('scale', 0)})"
        if logical in _LOGICAL:
            return _LOGICAL[logical]
        if kind == "enum":
            return "LowCardinality(String)"
        if kind == "fixed":
            return f"FixedString({int(avro_type['size'])})"
        if kind == "array":
            return f"Array({clickhouse_type(avro_type['items'], names=names)})"
        if kind == "map":
            return f"Map(String, {clickhouse_type(avro_type['values'], names=names)})"
        if kind == "record":
            elements = ", ".join(
                f"{f['name']} {clickhouse_type(f['type'], names=names)}"
                for f in avro_type["fields"]
            )
            return f"Tuple({elements})"
        return clickhouse_type(kind, low_cardinality=low_cardinality, names=names)

    if avro_type == "string" and low_cardinality:
        return "LowCardinality(String)"
    if avro_type in _PRIMITIVES:
        return _PRIMITIVES[avro_type]
    raise SchemaMappingError(f"no ClickHouse type for Avro type {avro_type!r}")


def named_types(schema: Any, namespace: str | None = None) -> dict[str, Any]:
    """Every record, enum and fixed defined in ``schema``, by full and short name."""
    table: dict[str, Any] = {}
    if isinstance(schema, list):
        for branch in schema:
            table.update(named_types(branch, namespace))
    elif isinstance(schema, dict):
        kind = schema.get("type")
        if kind in ("record", "enum", "fixed"):
            name = str(schema["name"])
            ns = schema.get("namespace", namespace)
            full = name if "." in name or not ns else f"{ns}.{name}"
            table[full] = table[full.rsplit(".", 1)[-1]] = schema
            for field in schema.get("fields", []):
                table.update(named_types(field["type"], full.rpartition(".")[0]))
        elif kind == "array":
            table.update(named_types(schema["items"], namespace))
        elif kind == "map":
            table.update(named_types(schema["values"], namespace))
        elif isinstance(kind, (dict, list)):
            table.update(named_types(kind, namespace))
    return table


def make_nullable(ch_type: str) -> str:
    """Wrap a type in Nullable; LowCardinality keeps the outer position.

    Arrays and maps stay as they are (ClickHouse has no nullable ones): rows
    without a value hold an empty one.
    """
    if ch_type.startswith(("Nullable(", "Array(", "Map(")):
        return ch_type
    if ch_type.startswith("LowCardinality("):
        return f"LowCardinality(Nullable({ch_type[len('LowCardinality(') : -1]}))"
    return f"Nullable({ch_type})"


def base_type(ch_type: str) -> str:
    """Return the type without Nullable (LowCardinality kept)."""
    if ch_type.startswith("Nullable("):
        return ch_type[len("Nullable(") : -1]
    return ch_type.replace("LowCardinality(Nullable(String))", "LowCardinality(String)")


def envelope_columns(event_schema: dict[str, Any] | None = None) -> list[Column]:
    """Columns of the envelope fields of ``event_schema`` (the contract's default)."""
    schema = event_schema if event_schema is not None else load_event_schema()
    names = named_types(schema)
    columns = []
    for field in schema["fields"]:
        if field["name"] == "payload":
            continue
        name = field["name"]
        ch_type = ENVELOPE_TYPE_OVERRIDES.get(name) or clickhouse_type(
            field["type"], low_cardinality=name in LOW_CARDINALITY_FIELDS, names=names
        )
        default = None
        if "default" in field:
            value = python_value(field["type"], field["default"], names)
            default = sql_default(ch_type, {"*": value}, every_type=True)
        columns.append(Column(name, ch_type, field.get("doc", ""), default))
    return columns


def payload_records(event_schema: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The payload record schemas of an event schema, by short name."""
    names = named_types(event_schema)
    payload = next(f for f in event_schema["fields"] if f["name"] == "payload")
    branches = payload["type"] if isinstance(payload["type"], list) else [payload]
    records = {}
    for branch in branches:
        record = names.get(branch, branch) if isinstance(branch, str) else branch
        if isinstance(record, dict) and record.get("type") == "record":
            records[str(record["name"]).rsplit(".", 1)[-1]] = record
    return records


def payload_columns(
    payload_schemas: dict[str, dict[str, Any]] | None = None,
    names: dict[str, Any] | None = None,
) -> list[Column]:
    """Columns of the union of all payload fields, in order of first appearance.

    Args:
        payload_schemas: Payload record schemas by name; the contract's by default.
        names: Named types the records refer to (see :func:`named_types`).

    Raises:
        SchemaMappingError: Two records give one field name different types.
    """
    records = payload_schemas if payload_schemas is not None else PAYLOAD_SCHEMAS
    names = names if names is not None else named_types(list(records.values()))
    types: dict[str, str] = {}
    docs: dict[str, dict[str, str]] = {}
    defaults: dict[str, dict[str, Any]] = {}
    nullable: set[str] = set()

    for record_name, record in records.items():
        for field in record["fields"]:
            name = field["name"]
            ch_type = clickhouse_type(
                field["type"],
                low_cardinality=name in LOW_CARDINALITY_FIELDS,
                names=names,
            )
            if ch_type != base_type(ch_type):
                nullable.add(name)
            known = types.setdefault(name, base_type(ch_type))
            if known != base_type(ch_type):
                raise SchemaMappingError(
                    f"field {name!r} is {known} in one payload and"
                    f" {base_type(ch_type)} in {record_name}: rename one of them"
                )
            docs.setdefault(name, {})[record_name] = field.get("doc", "")
            if "default" in field:
                value = python_value(field["type"], field["default"], names)
                defaults.setdefault(name, {})[event_type(record_name)] = value

    columns = []
    for name, ch_type in types.items():
        carriers = docs[name]
        partial = len(carriers) < len(records)
        if partial or name in nullable:
            ch_type = make_nullable(ch_type)
        default = sql_default(ch_type, defaults.get(name, {}), every_type=not partial)
        comment = _payload_comment(carriers, partial)
        columns.append(Column(name, ch_type, comment, default))
    return columns


def event_columns(event_schema: dict[str, Any]) -> list[Column]:
    """Envelope and payload columns of any writer's event schema."""
    names = named_types(event_schema)
    payload = payload_columns(payload_records(event_schema), names)
    return [*envelope_columns(event_schema), *payload]


def _payload_comment(carriers: dict[str, str], partial: bool) -> str:
    """One doc when all carriers agree, else each record's own, and who has it."""
    texts = set(carriers.values())
    if len(texts) == 1:
        comment = texts.pop()
    else:
        comment = " ".join(f"{event_type(n)}: {doc}" for n, doc in carriers.items())
    if partial:
        kinds = ", ".join(event_type(name) for name in carriers)
        comment += f" Set by {kinds}; NULL for other event types."
    return comment


def event_type(record_name: str) -> str:
    """Return the event_type value of a payload record (GuestCheckedIn ->
    GUEST_CHECKED_IN), which is what analysts filter on."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", record_name).upper()


KAFKA_COLUMNS = (
    Column(
        "kafka_topic", "LowCardinality(String)", "Kafka topic the event was read from."
    ),
    Column("kafka_partition", "UInt16", "Kafka partition of the event."),
    Column(
        "kafka_offset",
        "UInt64",
        "Offset of the event in its partition; (kafka_topic, kafka_partition,"
        " kafka_offset) identifies the Kafka record and is unique in this table.",
    ),
    Column(
        "kafka_timestamp",
        UTC_MILLIS,
        "Timestamp of the Kafka record (UTC): when the producer sent the event;"
        " the processor keeps it when it forwards the event.",
    ),
    Column(
        "ingested_at",
        UTC_MILLIS,
        "When the sink wrote the row to ClickHouse (UTC), one value per insert.",
    ),
)
"""Where each row came from in Kafka, and when the sink stored it."""


def table_columns() -> list[Column]:
    """All columns of the events table, in table order."""
    return [*envelope_columns(), *payload_columns(), *KAFKA_COLUMNS]
