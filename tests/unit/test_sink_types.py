"""The Avro -> ClickHouse column mapping, from the real contract."""

from __future__ import annotations

import copy

import pytest

from schemas import PAYLOAD_SCHEMAS
from sinks.exceptions import SchemaMappingError, classify
from sinks.schema import create_table_sql, quote_string
from sinks.types import (
    clickhouse_type,
    envelope_columns,
    make_nullable,
    payload_columns,
    table_columns,
)


@pytest.mark.parametrize(
    ("avro_type", "expected"),
    [
        ("string", "String"),
        ("int", "Int32"),
        ("long", "Int64"),
        ("boolean", "Bool"),
        ({"type": "int", "logicalType": "date"}, "Date32"),
        ({"type": "long", "logicalType": "timestamp-millis"}, "DateTime64(3, 'UTC')"),
        ({"type": "string", "logicalType": "uuid"}, "UUID"),
        (
            {"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 2},
            "Decimal(12, 2)",
        ),
        (["null", "string"], "Nullable(String)"),
        (["null", {"type": "int", "logicalType": "date"}], "Nullable(Date32)"),
        ({"type": "enum", "name": "E", "symbols": ["A"]}, "LowCardinality(String)"),
    ],
)
def test_avro_types_map_to_clickhouse(avro_type: object, expected: str) -> None:
    assert clickhouse_type(avro_type) == expected


def test_low_cardinality_strings_stay_low_cardinality_when_nullable() -> None:
    assert clickhouse_type("string", low_cardinality=True) == "LowCardinality(String)"
    assert (
        clickhouse_type(["null", "string"], low_cardinality=True)
        == "LowCardinality(Nullable(String))"
    )
    assert make_nullable("Nullable(Int32)") == "Nullable(Int32)"


@pytest.mark.parametrize(
    "avro_type",
    [
        ["null", {"type": "map", "values": "int"}],
        ["null", {"type": "array", "items": "int"}],
        ["null", "int", "string"],
        "fixed",
    ],
)
def test_unmapped_types_are_refused(avro_type: object) -> None:
    with pytest.raises(SchemaMappingError):
        clickhouse_type(avro_type)


def test_envelope_columns() -> None:
    types = {c.name: c.type for c in envelope_columns()}

    assert types == {
        "event_id": "UUID",
        "booking_id": "String",
        "seq": "UInt32",
        "event_type": "LowCardinality(String)",
        "occurred_at": "DateTime64(3, 'UTC')",
        "source": "LowCardinality(String)",
        "schema_version": "UInt16",
    }


def test_payload_columns_are_the_union_of_every_payload_field() -> None:
    columns = {c.name: c for c in payload_columns()}
    fields = {f["name"] for s in PAYLOAD_SCHEMAS.values() for f in s["fields"]}

    assert set(columns) == fields
    assert columns["arrival_date"].type == "Nullable(Date32)"
    assert columns["average_daily_rate"].type == "Nullable(Decimal(12, 2))"
    assert columns["currency"].type == "LowCardinality(Nullable(String))"
    assert columns["is_repeated_guest"].type == "Nullable(Bool)"
    assert columns["nights"].type == "Nullable(Int32)"
    # Every payload field is missing from some event type, so all are nullable.
    assert all("Nullable(" in c.type for c in columns.values())


def test_a_field_carried_by_every_payload_and_not_null_is_not_nullable() -> None:
    schemas = {
        "A": {"fields": [{"name": "x", "type": "int", "doc": "x of A"}]},
        "B": {"fields": [{"name": "x", "type": "int", "doc": "x of B"}]},
    }

    (column,) = payload_columns(schemas)

    assert column.type == "Int32"
    assert column.comment == "A: x of A B: x of B"


def test_comments_come_from_the_avro_docs() -> None:
    columns = {c.name: c for c in table_columns()}

    assert columns["seq"].comment.startswith("Position of the event")
    assert columns["hotel"].comment.startswith("Name of the property booked.")
    assert "Set by BOOKING_CREATED;" in columns["hotel"].comment
    assert "GUEST_CHECKED_IN: Number of adults who checked in." in (
        columns["adults"].comment
    )
    assert all(c.comment for c in columns.values())


def test_disagreeing_types_for_one_field_name_are_refused() -> None:
    schemas = copy.deepcopy(PAYLOAD_SCHEMAS)
    schemas["GuestCheckedOut"]["fields"].append({"name": "currency", "type": "int"})

    with pytest.raises(SchemaMappingError, match="currency"):
        payload_columns(schemas)


def test_a_new_optional_field_becomes_a_column() -> None:
    schemas = copy.deepcopy(PAYLOAD_SCHEMAS)
    schemas["GuestCheckedOut"]["fields"].append(
        {"name": "tip", "type": ["null", "string"], "default": None, "doc": "Tip."}
    )

    columns = {c.name: c.type for c in payload_columns(schemas)}

    assert columns["tip"] == "Nullable(String)"


def test_table_ddl() -> None:
    sql = create_table_sql("db", "booking_events")

    assert sql.startswith("CREATE TABLE IF NOT EXISTS `db`.`booking_events`")
    assert "PARTITION BY toYYYYMM(occurred_at)" in sql
    assert "ORDER BY (booking_id, seq, event_id)" in sql
    assert "non_replicated_deduplication_window = " in sql
    assert sql.count("COMMENT '") == len(table_columns()) + 1
    assert quote_string("it's \\") == "'it\\'s \\\\'"


class _DriverError(Exception):
    def __init__(self, message: str, code: int | None) -> None:
        super().__init__(message)
        self.code = code


@pytest.mark.parametrize(
    ("code", "retriable"),
    [(252, True), (159, True), (210, True), (62, False), (53, False), (60, False)],
)
def test_clickhouse_error_codes_are_classified(code: int, retriable: bool) -> None:
    error = classify(_DriverError("boom", code), what="insert")

    assert error.retriable is retriable
    assert f"code {code}" in str(error)


def test_network_errors_are_retriable() -> None:
    from clickhouse_connect.driver.exceptions import OperationalError

    assert classify(OperationalError("refused"), what="insert").retriable
    assert classify(ConnectionRefusedError(), what="insert").retriable
    assert not classify(ValueError("bad"), what="insert").retriable
