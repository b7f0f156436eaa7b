"""Schema evolution on the sink side, without services: plans, defaults, rows."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal

import evolved
import pytest
from factories import booking_created

from schemas import GuestCheckedOut
from sinks.defaults import python_value, sql_default
from sinks.migrations import add_column_sql, holds, plan
from sinks.rows import COLUMN_NAMES, RowLayout
from sinks.types import Column, clickhouse_type, event_columns, table_columns

AT = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
KAFKA = {"topic": "t", "partition": 0, "offset": 7, "timestamp": AT}


def contract_types() -> dict[str, str]:
    return {c.name: c.type for c in table_columns()}


def test_the_contract_needs_no_migration() -> None:
    todo = plan(contract_types(), event_columns(evolved.contract()))

    assert todo.add == [] and todo.conflicts == []


def test_a_new_field_with_a_default_is_added_with_that_default() -> None:
    todo = plan(contract_types(), event_columns(evolved.v2()))

    assert [c.name for c in todo.add] == ["loyalty_tier"]
    (column,) = todo.add
    assert column.type == "Nullable(String)"
    # Only BookingCreated carries it: older created rows read 'standard',
    # other event types NULL.
    assert column.default_sql == (
        "multiIf(event_type = 'BOOKING_CREATED', 'standard', NULL)"
    )
    assert add_column_sql("db", "events", column).startswith(
        "ALTER TABLE `db`.`events` ADD COLUMN IF NOT EXISTS `loyalty_tier`"
        " Nullable(String) DEFAULT multiIf("
    )


def test_a_new_enum_symbol_needs_no_ddl_but_its_record_adds_columns() -> None:
    v2_types = {**contract_types(), "loyalty_tier": "Nullable(String)"}

    todo = plan(v2_types, event_columns(evolved.v3()))

    assert todo.conflicts == []
    assert {c.name: c.type for c in todo.add} == {
        "noted_at": "Nullable(DateTime64(6, 'UTC'))",
        "no_show_fee": "Nullable(Decimal(12, 2))",
    }


def test_an_incompatible_type_change_is_a_conflict_naming_both_types() -> None:
    schema = evolved.contract()
    created = evolved._record(schema, "BookingCreated")
    hotel = next(f for f in created["fields"] if f["name"] == "hotel")
    hotel["type"] = "int"

    todo = plan(contract_types(), event_columns(schema))

    assert [(c.name, c.type, t) for c, t in todo.conflicts] == [
        ("hotel", "Nullable(Int32)", "LowCardinality(Nullable(String))")
    ]


@pytest.mark.parametrize(
    ("table_type", "writer_type", "ok"),
    [
        ("Nullable(String)", "String", True),
        ("LowCardinality(Nullable(String))", "LowCardinality(String)", True),
        ("LowCardinality(Nullable(String))", "String", True),
        ("String", "Nullable(String)", False),
        ("Int32", "Int64", False),
        ("Decimal(12, 2)", "Decimal(12,2)", True),
        ("Decimal(12, 2)", "Decimal(14, 3)", False),
    ],
)
def test_which_column_types_hold_which_writer_types(
    table_type: str, writer_type: str, ok: bool
) -> None:
    assert holds(table_type, writer_type) is ok


@pytest.mark.parametrize(
    ("avro_type", "default", "value"),
    [
        ({"type": "int", "logicalType": "date"}, -719162, date(1, 1, 1)),
        (
            {"type": "long", "logicalType": "timestamp-millis"},
            1_700_000_000_123,
            datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=UTC),
        ),
        (
            evolved.MICROS,
            1_700_000_000_123_456,
            datetime(2023, 11, 14, 22, 13, 20, 123456, tzinfo=UTC),
        ),
        (evolved.DECIMAL, "\u0004\u00d2", Decimal("12.34")),
        (evolved.DECIMAL, "\u00ff\u0085", Decimal("-1.23")),
        (
            {"type": "string", "logicalType": "uuid"},
            "6a2f41a3-c54c-fce8-32d2-0324e1c32e22",
            uuid.UUID("6a2f41a3-c54c-fce8-32d2-0324e1c32e22"),
        ),
        (["null", "string"], None, None),
        ({"type": "array", "items": "string"}, [], []),
    ],
)
def test_avro_defaults_become_logical_values(
    avro_type: object, default: object, value: object
) -> None:
    assert python_value(avro_type, default, {}) == value


def test_a_default_for_every_event_type_is_a_plain_literal() -> None:
    assert sql_default("UInt16", {"*": 1}, every_type=True) == "CAST('1' AS UInt16)"
    assert sql_default("Nullable(String)", {"*": None}, every_type=True) is None


@pytest.mark.parametrize(
    ("avro_type", "expected"),
    [
        (evolved.MICROS, "DateTime64(6, 'UTC')"),
        ({"type": "array", "items": "string"}, "Array(String)"),
        ({"type": "map", "values": evolved.DECIMAL}, "Map(String, Decimal(12, 2))"),
        (
            [
                "null",
                {
                    "type": "record",
                    "name": "G",
                    "fields": [
                        {"name": "a", "type": "string"},
                        {"name": "b", "type": ["null", "int"]},
                    ],
                },
            ],
            "Nullable(Tuple(a String, b Nullable(Int32)))",
        ),
        ({"type": "fixed", "name": "F", "size": 4}, "FixedString(4)"),
        ({"type": "array", "items": ["null", "long"]}, "Array(Nullable(Int64))"),
    ],
)
def test_complex_types_map_to_clickhouse(avro_type: object, expected: str) -> None:
    assert clickhouse_type(avro_type) == expected


# --- rows from writers old and new --------------------------------------------


def test_an_old_writers_event_gets_the_new_schemas_default() -> None:
    layout = RowLayout()
    new = layout.learn(evolved.v2())
    old_event = booking_created(occurred_at=AT).to_avro()

    row = dict(zip(layout.names, layout.to_row(old_event, **KAFKA), strict=True))

    assert [c.name for c in new] == ["loyalty_tier"]
    assert layout.names[: len(COLUMN_NAMES)] == list(COLUMN_NAMES)
    assert row["loyalty_tier"] == "standard"


def test_a_new_writers_field_reaches_its_column() -> None:
    layout = RowLayout()
    layout.learn(evolved.v2())
    written = evolved.record(booking_created(occurred_at=AT), loyalty_tier="gold")

    row = dict(zip(layout.names, layout.to_row(written, **KAFKA), strict=True))

    assert row["loyalty_tier"] == "gold"


def test_other_event_types_leave_a_payload_column_null() -> None:
    layout = RowLayout()
    layout.learn(evolved.v2())
    checkout = GuestCheckedOut(
        booking_id="B1",
        seq=3,
        occurred_at=AT,
        nights=1,
        total_amount=Decimal("1.00"),
        currency="EUR",
    )

    row = dict(
        zip(layout.names, layout.to_row(checkout.to_avro(), **KAFKA), strict=True)
    )

    assert row["loyalty_tier"] is None


def test_an_event_of_a_new_type_fills_its_own_columns() -> None:
    layout = RowLayout()
    layout.learn(evolved.v3())
    noted = datetime(2024, 3, 2, 9, 0, 0, 123456, tzinfo=UTC)
    written = evolved.no_show(
        booking_created(seq=2, occurred_at=AT),
        noted_at=noted,
        no_show_fee=Decimal("80.00"),
        currency="EUR",
    )

    row = dict(zip(layout.names, layout.to_row(written, **KAFKA), strict=True))

    assert row["event_type"] == "GUEST_NO_SHOW"
    assert (row["noted_at"], row["no_show_fee"]) == (noted, Decimal("80.00"))
    assert row["currency"] == "EUR"
    assert row["loyalty_tier"] is None and row["hotel"] is None


def test_a_removed_field_is_left_to_its_columns_default() -> None:
    layout = RowLayout()
    layout.learn(evolved.v2())
    schema = evolved.v2()
    created = evolved._record(schema, "BookingCreated")
    created["fields"] = [f for f in created["fields"] if f["name"] != "loyalty_tier"]

    assert layout.learn(schema) == []
    assert "loyalty_tier" in layout.names


def test_learning_a_schema_twice_adds_nothing() -> None:
    layout = RowLayout()
    assert layout.learn(evolved.v3())
    assert layout.learn(evolved.v3()) == []


def test_columns_keep_their_comment_and_default_in_the_ddl() -> None:
    column = Column("x", "String", "it's x", "'a'")

    assert add_column_sql("d", "t", column) == (
        "ALTER TABLE `d`.`t` ADD COLUMN IF NOT EXISTS `x` String DEFAULT 'a'"
        " COMMENT 'it\\'s x'"
    )
